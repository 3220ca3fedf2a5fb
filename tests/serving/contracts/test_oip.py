"""The Open Inference Protocol V2 on a real server: health, metadata and a columnar ``infer``
answered by ``/predict``'s one path, with the protocol's error shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from churn.config.params import load_params
from tests.serving.conftest import ROOT, LiveServer, example_records
from tests.serving.contracts.conftest import get, logged, post

pytestmark = pytest.mark.integration

DATASET = load_params(ROOT / "params.yaml").dataset


def _name(server: LiveServer) -> str:
    return str(get(server, "/version").json()["name"])


def _inputs(records: list[dict[str, Any]], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """One tensor per column, as the metadata declares it (KServe's pandas codec layout)."""
    return [
        {
            "name": spec["name"],
            "shape": [len(records)],
            "datatype": spec["datatype"],
            "data": [r[spec["name"]] for r in records],
        }
        for spec in metadata["inputs"]
    ]


@pytest.fixture(scope="module")
def metadata(contract_server: tuple[LiveServer, Path]) -> dict[str, Any]:
    server, _ = contract_server
    r = get(server, f"/v2/models/{_name(server)}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_health_and_metadata(
    contract_server: tuple[LiveServer, Path], metadata: dict[str, Any]
) -> None:
    server, _ = contract_server
    open_ = {"X-API-Key": ""}
    assert get(server, "/v2/health/live", headers=open_).json() == {"live": True}
    assert get(server, "/v2/health/ready", headers=open_).json() == {"ready": True}
    name = _name(server)
    assert get(server, f"/v2/models/{name}/ready", headers=open_).status_code == 200
    assert get(server, "/v2").json()["extensions"] == []
    version = get(server, "/version").json()["version"]
    assert metadata["name"] == name and metadata["versions"] == [version]
    types = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    assert types["tenure"] == "INT64" and types["MonthlyCharges"] == "FP64"
    assert types["Contract"] == "BYTES" and types["SeniorCitizen"] == "INT64"
    assert set(types) == {DATASET.id_column, *DATASET.feature_columns}
    assert all(t["shape"] == [-1] for t in metadata["inputs"])
    outputs = {t["name"]: t["datatype"] for t in metadata["outputs"]}
    assert outputs["churn_probability"] == "FP64" and outputs["churn"] == "BOOL"
    assert get(server, f"/v2/models/{name}/versions/{version}").status_code == 200


def test_unknown_model_or_version_is_404(contract_server: tuple[LiveServer, Path]) -> None:
    server, _ = contract_server
    name = _name(server)
    for path in ("/v2/models/nope", "/v2/models/nope/ready", f"/v2/models/{name}/versions/999"):
        r = get(server, path)
        assert r.status_code == 404, (path, r.text)
        assert "error" in r.json()
    r = post(server, "/v2/models/nope/infer", {"inputs": []})
    assert r.status_code == 404 and "nope" in r.json()["error"], r.text


def test_infer_answers_what_predict_answers_and_is_logged_alike(
    contract_server: tuple[LiveServer, Path], metadata: dict[str, Any]
) -> None:
    server, db = contract_server
    name = _name(server)
    records = example_records(7, seed=31)
    expected = post(server, "/predict", {"records": records}, headers={"X-Request-ID": "oip-p"})
    assert expected.status_code == 200, expected.text
    request = {"id": "my-request", "inputs": _inputs(records, metadata)}
    r = post(server, f"/v2/models/{name}/infer", request, headers={"X-Request-ID": "oip-i"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == name and body["id"] == "my-request"
    assert body["model_version"] == expected.json()["model_version"]
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["churn_probability"]["datatype"] == "FP64"
    assert outputs["churn_probability"]["shape"] == [7]
    predictions = expected.json()["predictions"]
    assert outputs["churn_probability"]["data"] == [p["churn_probability"] for p in predictions]
    assert outputs["churn"] == {
        "name": "churn",
        "datatype": "BOOL",
        "shape": [7],
        "data": [p["churn"] for p in predictions],
    }
    assert logged(db, "oip-i", 7) == logged(db, "oip-p", 7)
    # Without an id the answer's is the request id the log keeps; [n, 1] tensors are columns.
    for tensor in request["inputs"]:
        tensor["shape"] = [7, 1]
        tensor["data"] = [[v] for v in tensor["data"]]
    del request["id"]
    r = post(server, f"/v2/models/{name}/infer", request, headers={"X-Request-ID": "oip-n"})
    assert r.status_code == 200 and r.json()["id"] == "oip-n", r.text


def test_parameters_explain_and_requested_outputs(
    contract_server: tuple[LiveServer, Path], metadata: dict[str, Any]
) -> None:
    server, _ = contract_server
    records = example_records(2, seed=32)
    expected = post(server, "/predict", {"records": records, "explain": True}).json()
    request = {
        "inputs": _inputs(records, metadata),
        "parameters": {"explain": True},
        "outputs": [{"name": "explanation"}],
    }
    r = post(server, f"/v2/models/{_name(server)}/infer", request)
    assert r.status_code == 200, r.text
    (only,) = r.json()["outputs"]
    assert only["name"] == "explanation" and only["datatype"] == "BYTES"
    assert [json.loads(e) for e in only["data"]] == [
        p["explanation"] for p in expected["predictions"]
    ]


def test_errors_are_the_protocols_and_name_the_tensor(
    contract_server: tuple[LiveServer, Path], metadata: dict[str, Any]
) -> None:
    server, _ = contract_server
    path = f"/v2/models/{_name(server)}/infer"
    records = example_records(3, seed=33)

    def with_(change: Any) -> dict[str, Any]:
        inputs = _inputs(records, metadata)
        change({t["name"]: t for t in inputs})
        return {"inputs": inputs}

    cases: dict[str, tuple[Any, str]] = {
        "bad value": (
            with_(lambda t: t["tenure"]["data"].__setitem__(1, -5)),
            "input 'tenure' element 1: ",
        ),
        "missing column": (
            {"inputs": [t for t in _inputs(records, metadata) if t["name"] != "Contract"]},
            "input 'Contract' element 0: Field required",
        ),
        "shape vs data": (
            with_(lambda t: t["tenure"].__setitem__("shape", [4])),
            "input 'tenure': shape [4] holds 4 elements, data has 3",
        ),
        "ragged": (
            with_(lambda t: t["gender"].update(shape=[2], data=["Male", "Female"])),
            "input 'gender' has 2 elements",
        ),
        "matrix": (
            with_(lambda t: t["tenure"].__setitem__("shape", [1, 3])),
            "input 'tenure': shape must be [n] or [n, 1]",
        ),
        "datatype": (with_(lambda t: t["tenure"].__setitem__("datatype", "INT128")), "INT128"),
        "no inputs": ({"inputs": []}, "inputs: must be a non-empty list"),
        "output": (
            {"inputs": _inputs(records, metadata), "outputs": [{"name": "score"}]},
            "outputs: 'score' is not an output",
        ),
    }
    for case, (request, said) in cases.items():
        r = post(server, path, request)
        assert r.status_code == 400, (case, r.text)
        assert said in r.json()["error"], (case, r.text)
    r = post(server, path, {"inputs": _inputs(records, metadata)}, headers={"X-API-Key": ""})
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"], r.text
    assert get(server, path.removesuffix("/infer"), headers={"X-API-Key": ""}).status_code == 401
