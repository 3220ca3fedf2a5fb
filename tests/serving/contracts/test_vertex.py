"""Vertex AI's custom-container contract on a real server: the routes the environment names
(``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``), ``{"instances"}`` in, ``{"predictions"}`` out,
answered by ``/predict``'s one path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.conftest import LiveServer, example_records
from tests.serving.contracts.conftest import VERTEX_HEALTH, VERTEX_PREDICT, get, logged, post

pytestmark = pytest.mark.integration


def test_the_health_route_is_the_one_vertex_set(contract_server: tuple[LiveServer, Path]) -> None:
    server, _ = contract_server
    r = get(server, VERTEX_HEALTH, headers={"X-API-Key": ""})
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("ready", "degraded")
    assert get(server, "/vertex/health").status_code == 404  # the default is not served too


def test_instances_get_predicts_predictions_and_are_logged_alike(
    contract_server: tuple[LiveServer, Path],
) -> None:
    server, db = contract_server
    records = example_records(6, seed=21)
    expected = post(server, "/predict", {"records": records}, headers={"X-Request-ID": "vx-p"})
    assert expected.status_code == 200, expected.text
    r = post(server, VERTEX_PREDICT, {"instances": records}, headers={"X-Request-ID": "vx-i"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["predictions"]
    version = expected.json()["model_version"]
    assert body["predictions"] == [
        {"model_version": version, **p} for p in expected.json()["predictions"]
    ]
    assert logged(db, "vx-i", 6) == logged(db, "vx-p", 6)


def test_parameters_carry_predicts_explain_options(
    contract_server: tuple[LiveServer, Path],
) -> None:
    server, _ = contract_server
    records = example_records(2, seed=22)
    expected = post(
        server, "/predict", {"records": records, "explain": True, "explain_top_k": 1}
    ).json()["predictions"]
    r = post(
        server,
        VERTEX_PREDICT,
        {"instances": records, "parameters": {"explain": True, "explain_top_k": 1}},
    )
    assert r.status_code == 200, r.text
    assert [p["explanation"] for p in r.json()["predictions"]] == [
        p["explanation"] for p in expected
    ]
    r = post(server, VERTEX_PREDICT, {"instances": records, "parameters": {"explain_top_k": 0}})
    assert r.status_code == 400 and r.json()["error"].startswith("parameters.explain_top_k: ")


def test_errors_are_vertex_shaped_and_name_the_field(
    contract_server: tuple[LiveServer, Path],
) -> None:
    server, _ = contract_server
    good = example_records(3, seed=23)
    r = post(server, VERTEX_PREDICT, {"instances": [*good[:2], {**good[2], "gender": 7}]})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("instances[2].gender: "), r.text
    r = post(server, VERTEX_PREDICT, {"records": good})
    assert r.status_code == 400 and '{"instances"' in r.json()["error"], r.text
    r = post(server, VERTEX_PREDICT, {"instances": []})
    assert r.status_code == 400 and r.json()["error"].startswith("instances: "), r.text
    r = post(server, VERTEX_PREDICT, {"instances": good}, headers={"X-API-Key": ""})
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"], r.text
    r = post(server, VERTEX_PREDICT, "a=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415, r.text
