"""The tutorial's real outputs (``make docs-outputs``): its steps run for real in a throw-away
project, each step's command and what it printed written to ``docs/tutorial/outputs/<step>.txt``.

The pages of ``docs/tutorial/`` include these files (``--8<-- "docs/tutorial/outputs/train.txt"``),
so what a page shows is what the command printed on the day the files were made. The project is a
fork (:func:`tools.fork.fork_project`: its own git repository, DVC remote and MLflow store) run
with this environment's interpreter; paths inside it are shown relative to it (``./``). A step
that fails stops the run with its output, so a broken step never ships a page.

Run it from a clone: ``make docs-outputs`` (a few minutes: one training, one service, one
monitoring run). ``generated.txt`` records when, on which commit, and the wall time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tools.fork import CHURN, ROOT, fork_project, free_port, running_service

OUTPUTS = ROOT / "docs" / "tutorial" / "outputs"
# The customer every tutorial call scores: docs/serving.md's example.
CUSTOMER = {
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
}


@dataclass
class Step:
    """One output file: the command the page shows and how to run it in the fork."""

    name: str
    shown: str
    run: Callable[[Path, str], str]


def churn(*args: str) -> Callable[[Path, str], str]:
    """Run ``churn <args>`` in the fork (the command ``make`` runs); return what it printed."""

    def run(project: Path, _url: str) -> str:
        env = {**os.environ, "CHURN_PROJECT_DIR": str(project), "COLUMNS": "100"}
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [*CHURN, *args],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows them
            text=True,
            check=False,
        )
        text = done.stdout
        if done.returncode != 0:
            raise RuntimeError(f"`churn {' '.join(args)}` failed ({done.returncode}):\n{text}")
        return text

    return run


def predict(query: str) -> Callable[[Path, str], str]:
    """POST the tutorial's customer to the running service's ``/predict``; its JSON answer."""

    def run(_project: Path, url: str) -> str:
        answer = httpx.post(f"{url}/predict{query}", json={"records": [CUSTOMER]}, timeout=30)
        answer.raise_for_status()
        return json.dumps(answer.json(), indent=2) + "\n"

    return run


CURL = (
    "curl -s 'localhost:8000/predict{query}' -H 'content-type: application/json' \\\n"
    '  -d \'{{"records": [{{"customerID": "7590-VHVEG", "gender": "Female", ...}}]}}\''
)
# Before the service starts: the training run and the registry.
OFFLINE = [
    Step("train", "make train", churn("train")),
    Step("model-info", "make model-info", churn("model-info", "--json")),
]
# With the service up (on a free port; the pages show the default :8000).
ONLINE = [
    Step("predict", CURL.format(query=""), predict("")),
    Step("explain", CURL.format(query="?explain=true&top_k=3"), predict("?explain=true&top_k=3")),
    Step(
        "simulate",
        "make simulate ROWS=500",
        lambda p, url: churn("simulate", "--url", url, "--rows", "500")(p, url),
    ),
    Step("monitor", "make monitor RETRAIN=0", churn("monitor", "--no-retrain")),
]
AFTER = [Step("history", "make history", churn("history"))]


def shown(text: str, project: Path, url: str) -> str:
    """What a reader would see: the fork's paths as ``./``, the service on :8000, no colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    text = text.replace(str(project) + "/", "./").replace(str(project), ".")
    return text.replace(url, "http://127.0.0.1:8000")


def write(step: Step, text: str, seconds: float) -> None:
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    body = f"$ {step.shown}\n{text.rstrip()}\n"
    (OUTPUTS / f"{step.name}.txt").write_text(body, encoding="utf-8")
    print(f"{step.name:<12} {seconds:6.1f} s  docs/tutorial/outputs/{step.name}.txt", flush=True)


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tutorial-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
        project = fork_project(Path(tmp) / "project")
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        def run(step: Step) -> None:
            began = time.monotonic()
            write(step, shown(step.run(project, url), project, url), time.monotonic() - began)

        for step in OFFLINE:
            run(step)
        with running_service(project, port):
            for step in ONLINE:
                run(step)
        for step in AFTER:
            run(step)
    wall = time.monotonic() - started
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as make has it
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    (OUTPUTS / "generated.txt").write_text(
        f"make docs-outputs on commit {commit or 'unknown'}, {time.strftime('%Y-%m-%d')}: "
        f"{wall:.0f} s wall time ({os.cpu_count()} cores)\n",
        encoding="utf-8",
    )
    print(f"all steps: {wall:.0f} s wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
