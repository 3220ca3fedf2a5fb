"""Smoke ``/predict`` on a deployed service (``make kind-smoke``): standard library only.

Waits until the service serves a registered model (``/version``'s source is the registry: the
champion the training job registered), then posts the request example of its own OpenAPI
document (``/openapi.json``, built from ``params.yaml``) and checks the answer: 200, one score
per record, from the version ``/version`` names. Usage: ``smoke.py URL`` with ``CHURN_API_KEY``
in the environment.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

WAIT_SECONDS = 180


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"{url}: not an http(s) URL")
    headers = {"Content-Type": "application/json", "X-API-Key": os.environ["CHURN_API_KEY"]}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (http(s) only, above)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (http(s) only)
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")[:500]


def main(base: str) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    served: Any = None
    while time.monotonic() < deadline:
        try:
            status, served = call(f"{base}/version")
        except (urllib.error.URLError, ConnectionError) as error:
            status, served = 0, str(error)
        if status == 200 and served.get("source") == "registry":
            break
        time.sleep(5)
    else:
        print(f"the service serves no registered model after {WAIT_SECONDS} s: {served}")
        return 1
    _, document = call(f"{base}/openapi.json")
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    request = body["example"]
    status, answer = call(f"{base}/predict", request)
    if status != 200:
        print(f"/predict answered {status}: {answer}")
        return 1
    scores = [p["churn_probability"] for p in answer["predictions"]]
    if answer["model_version"] != served["version"] or len(scores) != len(request["records"]):
        expected = f"one score per record from v{served['version']}"
        print(f"/predict answered {answer}; expected {expected}")
        return 1
    print(f"/predict: v{answer['model_version']} scored {len(scores)} record(s): {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/")))
