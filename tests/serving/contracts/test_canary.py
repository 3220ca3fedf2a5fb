"""A canary challenger (``live.mode: canary``) answers the same customers through every contract
as through ``/predict``: the split is ``answer``'s, not the adapters'."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.serving.conftest import LiveServer, example_records, start_server
from tests.serving.contracts.conftest import ALL, KEY, get, post
from tests.serving.test_live_challenger import _register_challenger

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def canary_server(
    served_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str, str]]:
    root = tmp_path_factory.mktemp("contracts-canary")
    project = root / "project"
    shutil.copytree(
        served_project,
        project,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    champion, challenger = _register_challenger(project, shift=-0.7)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), "mode": "canary", "canary_share": 0.5}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    env = {
        "CHURN_API_KEY": KEY,
        "CHURN_SERVING_CONTRACTS": ALL,
        "CHURN_PREDICTION_LOG_URL": f"sqlite:///{root / 'log.db'}",
    }
    server = start_server(project, root, env)
    yield server, champion, challenger
    server.stop()


def test_each_contract_sends_each_customer_to_the_model_predict_does(
    canary_server: tuple[LiveServer, str, str],
) -> None:
    server, champion, challenger = canary_server
    customers = example_records(40, seed=51)
    expected = post(server, "/predict", {"records": customers}).json()["predictions"]
    versions = [p["model_version"] for p in expected]
    assert set(versions) == {champion, challenger}
    scores = [p["churn_probability"] for p in expected]

    sagemaker = post(server, "/invocations", {"instances": customers}).json()["predictions"]
    assert [(p["model_version"], p["churn_probability"]) for p in sagemaker] == list(
        zip(versions, scores, strict=True)
    )
    vertex = post(server, "/vertex/predict", {"instances": customers}).json()["predictions"]
    assert [(p["model_version"], p["churn_probability"]) for p in vertex] == list(
        zip(versions, scores, strict=True)
    )
    name = get(server, "/version").json()["name"]
    metadata = get(server, f"/v2/models/{name}").json()
    inputs: list[dict[str, Any]] = [
        {
            "name": t["name"],
            "shape": [len(customers)],
            "datatype": t["datatype"],
            "data": [c[t["name"]] for c in customers],
        }
        for t in metadata["inputs"]
    ]
    r = post(server, f"/v2/models/{name}/infer", {"inputs": inputs})
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
    assert outputs["model_version"] == versions
    assert outputs["churn_probability"] == scores
