"""SageMaker's contract on a real server: ``GET /ping``, ``POST /invocations`` with JSON and CSV
bodies, answered by ``/predict``'s one path (the same scores, key, validation and log)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from churn.config.params import DatasetConfig, load_params
from serving.contracts.sagemaker import csv_columns
from tests.serving.conftest import LiveServer, example_records
from tests.serving.contracts.conftest import KEY, get, logged, post

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(served_project: Path) -> DatasetConfig:
    """The served project's dataset block: its column order is the CSV's."""
    return load_params(served_project / "params.yaml").dataset


def _csv(records: list[dict[str, Any]], columns: list[str], header: bool = False) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for r in records:
        writer.writerow(["" if r[c] is None else r[c] for c in columns])
    return out.getvalue()


def _scores(body: dict[str, Any]) -> list[tuple[float, bool]]:
    return [(p["churn_probability"], p["churn"]) for p in body["predictions"]]


def test_ping_answers_200_once_the_model_is_loaded(
    contract_server: tuple[LiveServer, Path],
) -> None:
    server, _ = contract_server
    r = get(server, "/ping", headers={"X-API-Key": ""})  # SageMaker's check sends no key
    assert r.status_code == 200, r.text


def test_json_invocations_answer_what_predict_answers_and_are_logged_alike(
    contract_server: tuple[LiveServer, Path],
) -> None:
    """``{"records"}`` and ``{"instances"}`` bodies get ``/predict``'s response for the same
    records, and the log keeps each request's rows as it keeps ``/predict``'s."""
    server, db = contract_server
    records = example_records(5, seed=11)
    expected = post(server, "/predict", {"records": records}, headers={"X-Request-ID": "sm-p"})
    assert expected.status_code == 200, expected.text
    for shape, rid in (("records", "sm-r"), ("instances", "sm-i")):
        r = post(server, "/invocations", {shape: records}, headers={"X-Request-ID": rid})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert set(body) == {"model_version", "request_id", "predictions"}
        assert body["request_id"] == rid
        assert body["model_version"] == expected.json()["model_version"]
        assert _scores(body) == _scores(expected.json())
        assert logged(db, rid, 5) == logged(db, "sm-p", 5)


def test_csv_without_and_with_a_header_scores_as_json(
    contract_server: tuple[LiveServer, Path], dataset: DatasetConfig
) -> None:
    """SageMaker's CSV: one customer per line in the contract's column order (the id first
    when the line has one more cell), or a header naming the columns in any order; ``Accept:
    text/csv`` answers ``probability,churn`` lines."""
    server, _ = contract_server
    records = example_records(4, seed=12)
    expected = _scores(post(server, "/predict", {"records": records}).json())
    features = csv_columns(dataset)
    assert features == list(dataset.feature_columns)
    bodies = {
        "features only": _csv(records, features),
        "id first": _csv(records, [dataset.id_column, *features]),
        "header, reversed": _csv(records, features[::-1], header=True),
    }
    for name, text in bodies.items():
        r = post(server, "/invocations", text, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, (name, r.text)
        assert _scores(r.json()) == expected, name
    r = post(
        server,
        "/invocations",
        bodies["features only"],
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    lines = [line.split(",") for line in r.text.strip().split("\n")]
    assert [(float(p), c == "true") for p, c in lines] == expected


def test_the_key_is_required_as_for_predict_and_read_from_the_custom_attributes(
    contract_server: tuple[LiveServer, Path],
) -> None:
    """``invoke-endpoint`` sends no header of the caller's but ``--custom-attributes``."""
    server, _ = contract_server
    body = {"records": example_records(1, seed=13)}
    for headers in ({"X-API-Key": ""}, {"X-API-Key": "wrong"}):
        r = post(server, "/invocations", body, headers=headers)
        assert r.status_code == 401, r.text
        assert "X-API-Key" in r.json()["error"]
        assert post(server, "/predict", body, headers=headers).status_code == 401
    attributes = f"trace=abc, X-API-Key={KEY}"
    r = post(
        server,
        "/invocations",
        body,
        headers={"X-API-Key": "", "X-Amzn-SageMaker-Custom-Attributes": attributes},
    )
    assert r.status_code == 200, r.text


def test_bad_input_is_a_4xx_naming_the_field(
    contract_server: tuple[LiveServer, Path], dataset: DatasetConfig
) -> None:
    server, _ = contract_server
    good = example_records(2, seed=14)
    bad = [good[0], {**good[1], "tenure": -3}]
    r = post(server, "/invocations", {"instances": bad})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("instances[1].tenure: "), r.text
    r = post(server, "/invocations", {"records": [{**good[0], "Contract": None}]})
    assert r.status_code == 400 and "records[0].Contract" in r.json()["error"], r.text

    features = csv_columns(dataset)
    lines = _csv(good, features).splitlines()
    cells = lines[1].split(",")
    cells[features.index("MonthlyCharges")] = "lots"
    text = "\n".join([lines[0], ",".join(cells)])
    r = post(server, "/invocations", text, headers={"Content-Type": "text/csv"})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("CSV record 2, column MonthlyCharges: "), r.text
    r = post(server, "/invocations", "1,2,3\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "CSV line 1 has 3 cells" in r.json()["error"], r.text
    r = post(server, "/invocations", b"", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "no line" in r.json()["error"], r.text
    r = post(server, "/invocations", b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"], r.text

    r = post(server, "/invocations", "x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/csv" in r.json()["error"], r.text
    r = post(server, "/invocations", {"records": good}, headers={"Accept": "application/xml"})
    assert r.status_code == 406, r.text


def test_explain_in_the_json_body_gives_predicts_reasons(
    contract_server: tuple[LiveServer, Path],
) -> None:
    server, _ = contract_server
    body = {"records": example_records(2, seed=15), "explain": True, "explain_top_k": 2}
    expected = post(server, "/predict", body).json()["predictions"]
    got = post(server, "/invocations", body).json()["predictions"]
    assert [p["explanation"] for p in got] == [p["explanation"] for p in expected]
    assert all(len(p["explanation"]["up"]) <= 2 for p in got)
