"""Without a champion the fallback rules answer every contract as they answer ``/predict``: the
same scores and version, the health routes ready (``/ready`` says degraded), the rows logged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.conftest import LiveServer, example_records
from tests.serving.contracts.conftest import get, logged, post

pytestmark = pytest.mark.integration


def test_every_contract_answers_with_the_rules_as_predict_does(
    rules_server: tuple[LiveServer, Path],
) -> None:
    server, db = rules_server
    ready = get(server, "/ready").json()
    assert ready["status"] == "degraded" and ready["source"] == "rules", ready
    for path in ("/ping", "/vertex/health", "/v2/health/ready"):
        assert get(server, path, headers={"X-API-Key": ""}).status_code == 200, path

    records = example_records(3, seed=41)
    expected = post(server, "/predict", {"records": records}, headers={"X-Request-ID": "fb-p"})
    assert expected.status_code == 200, expected.text
    version = expected.json()["model_version"]
    assert version == "fallback-rules"
    scores = [p["churn_probability"] for p in expected.json()["predictions"]]

    r = post(server, "/invocations", {"instances": records}, headers={"X-Request-ID": "fb-s"})
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == version
    assert [p["churn_probability"] for p in r.json()["predictions"]] == scores

    r = post(server, "/vertex/predict", {"instances": records}, headers={"X-Request-ID": "fb-v"})
    assert r.status_code == 200, r.text
    assert [(p["model_version"], p["churn_probability"]) for p in r.json()["predictions"]] == [
        (version, s) for s in scores
    ]

    name = get(server, "/version").json()["name"]
    metadata = get(server, f"/v2/models/{name}").json()
    inputs = [
        {
            "name": t["name"],
            "shape": [3],
            "datatype": t["datatype"],
            "data": [x[t["name"]] for x in records],
        }
        for t in metadata["inputs"]
    ]
    r = post(
        server, f"/v2/models/{name}/infer", {"inputs": inputs}, headers={"X-Request-ID": "fb-o"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == version
    assert r.json()["outputs"][0]["data"] == scores

    logged_rows = logged(db, "fb-p", 3)
    assert logged_rows and all(row[0] == version for row in logged_rows)
    for rid in ("fb-s", "fb-v", "fb-o"):
        assert logged(db, rid, 3) == logged_rows, rid
