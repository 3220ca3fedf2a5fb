"""End to end on a real uvicorn server and a real MLflow store: schema fuzzing, hot reload under
load, start-up fallbacks, and the prediction log across a graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from tests.serving.conftest import register_copy_of_champion, start_server

pytestmark = pytest.mark.integration

API_KEY = "live-test-key-0123456789"
HEADERS = {"X-API-Key": API_KEY}
CASES: list[str] = []


# -- property-based tests from /openapi.json ------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(served_project: Path, module_server: Callable[..., Any]) -> Any:
    return module_server(served_project, {"CHURN_API_KEY": API_KEY})


def _fuzz(strategy: Any, examples: int, url: str) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        CASES.append(f"{case.method} {case.path}")
        case.call_and_validate(base_url=url, headers=HEADERS)

    run()


def test_api_matches_its_schema_and_never_answers_5xx(fuzz_server: Any) -> None:
    """At least 500 generated requests, valid and invalid: no 5xx, and every response matches
    the schema (status code, content type, body, headers; auth is checked to be enforced)."""
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    predict = schema["/predict"]["POST"]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        _fuzz(schema.as_strategy(generation_mode=mode, headers=HEADERS), 60, fuzz_server.url)
        _fuzz(predict.as_strategy(generation_mode=mode, headers=HEADERS), 250, fuzz_server.url)
    assert len(CASES) >= 500, len(CASES)
    assert sum(label == "POST /predict" for label in CASES) >= 400
    assert len(set(CASES)) == 6  # every operation was exercised


# -- hot reload under load ------------------------------------------------------------------


async def _hammer(url: str, body: dict[str, Any], seconds: float, workers: int) -> list[Any]:
    """Closed-loop load: ``workers`` clients posting for ``seconds``; returns every outcome."""
    outcomes: list[Any] = []
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30, headers=HEADERS) as client:

        async def worker() -> None:
            while time.monotonic() < end:
                try:
                    r = await client.post(url + "/predict", json=body)
                    outcomes.append((r.status_code, r.json().get("model_version")))
                except httpx.HTTPError as exc:
                    outcomes.append((repr(exc), None))

        await asyncio.gather(*(worker() for _ in range(workers)))
    return outcomes


def test_champion_moves_under_load_without_a_failed_request(
    project_copy: Path, live_server: Callable[..., Any], records: Callable[..., Any]
) -> None:
    """The alias moves mid-load: zero failed requests, and the new version is served after."""
    server = live_server(
        project_copy, {"CHURN_API_KEY": API_KEY, "CHURN_RELOAD_INTERVAL_SECONDS": "0.5"}
    )
    before = httpx.get(server.url + "/version").json()["version"]
    assert before != "fallback-rules", server.output()[-3000:]
    body = {"records": records(5)}

    async def scenario() -> tuple[list[Any], str]:
        load = asyncio.create_task(_hammer(server.url, body, seconds=8, workers=8))
        await asyncio.sleep(2)
        new_version = await asyncio.to_thread(register_copy_of_champion, project_copy)
        return await load, new_version

    outcomes, new_version = asyncio.run(scenario())
    failed = [o for o in outcomes if o[0] != 200]
    assert not failed, failed[:5]
    versions = [v for _, v in outcomes]
    assert versions[0] == before and versions[-1] == new_version != before
    assert len(outcomes) > 100
    assert httpx.get(server.url + "/version").json()["version"] == new_version
    assert (
        'churn_model_reloads_total{outcome="swapped"} 1.0'
        in httpx.get(server.url + "/metrics").text
    )
    # The log says what is served and every swap, without MLflow's download progress bars.
    log = server.output()
    assert f"serving churn v{before} (registry, scorer " in log
    assert f"swapped model v{before} -> v{new_version}" in log
    assert "Downloading artifacts" not in log, log[-3000:]


def test_admin_reload_forces_a_check(project_copy: Path, live_server: Callable[..., Any]) -> None:
    server = live_server(project_copy, {"CHURN_API_KEY": API_KEY})
    assert httpx.get(server.url + "/ready").json()["source"] == "registry", server.output()
    assert httpx.post(server.url + "/admin/reload").status_code == 401
    r = httpx.post(server.url + "/admin/reload", headers=HEADERS).json()
    assert r["outcome"] == "unchanged"
    new_version = register_copy_of_champion(project_copy)
    r = httpx.post(server.url + "/admin/reload", headers=HEADERS).json()
    assert r == {
        "outcome": "swapped",
        "previous": r["previous"],
        "current": new_version,
        "detail": "",
    }


# -- start-up fallbacks ---------------------------------------------------------------------

CLOSED_REGISTRY = {
    "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    "CHURN_REGISTRY_TIMEOUT_SECONDS": "3",
}


def test_registry_unreachable_serves_the_cached_champion_then_the_rules(
    project_copy: Path, live_server: Callable[..., Any], records: Callable[..., Any]
) -> None:
    """First start caches the champion; with the registry unreachable the cache is served,
    and without a cache the rules; /ready says degraded both times."""
    first = live_server(project_copy)
    champion = httpx.get(first.url + "/version").json()["version"]
    assert champion != "fallback-rules", first.output()[-3000:]
    body = {"records": records(3)}
    expected = httpx.post(first.url + "/predict", json=body).json()["predictions"]
    first.stop()

    cached = live_server(project_copy, CLOSED_REGISTRY)
    ready = httpx.get(cached.url + "/ready").json()
    assert ready["status"] == "degraded" and ready["source"] == "cache", ready
    assert ready["model_version"] == champion
    answer = httpx.post(cached.url + "/predict", json=body).json()
    assert answer["model_version"] == champion
    assert answer["predictions"] == expected
    cached.stop()

    shutil.rmtree(project_copy / ".serving-cache")
    rules = live_server(project_copy, CLOSED_REGISTRY)
    ready = httpx.get(rules.url + "/ready").json()
    assert ready["status"] == "degraded" and ready["source"] == "rules", ready
    answer = httpx.post(rules.url + "/predict", json=body).json()
    assert answer["model_version"] == "fallback-rules"


def test_the_port_answers_while_the_model_loads_and_ready_says_loading(
    bare_project: Path, tmp_path: Path, records: Callable[..., Any]
) -> None:
    """The model loads in the background: from the first accepted connection /health is 200,
    /ready and /predict 503 ``loading`` (here: 5 s of waiting for a closed registry), then
    /ready 200."""
    env = {**CLOSED_REGISTRY, "CHURN_REGISTRY_TIMEOUT_SECONDS": "5"}
    server = start_server(bare_project, tmp_path, env, ready=240, wait_for_model=False)
    try:
        seen: list[tuple[int, str]] = []
        predict_while_loading = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert httpx.get(server.url + "/health", timeout=5).status_code == 200
            r = httpx.get(server.url + "/ready", timeout=5)
            seen.append((r.status_code, r.json()["status"]))
            if r.json()["status"] == "loading" and predict_while_loading is None:
                predict_while_loading = httpx.post(
                    server.url + "/predict", json={"records": records(1)}, timeout=5
                )
            if r.status_code == 200:
                break
            time.sleep(0.1)
    finally:
        server.stop()
    assert seen[0] == (503, "loading"), seen[:3]
    assert seen[-1] == (200, "degraded"), seen[-3:]  # no champion: the rules answer
    assert set(seen[:-1]) == {(503, "loading")}, seen
    assert predict_while_loading is not None and predict_while_loading.status_code == 503
    assert "not loaded yet" in predict_while_loading.text


# -- prediction log -------------------------------------------------------------------------


def test_prediction_log_keeps_every_acknowledged_row_across_a_graceful_shutdown(
    served_project: Path,
    tmp_path: Path,
    live_server: Callable[..., Any],
    records: Callable[..., Any],
) -> None:
    db = tmp_path / "log.db"
    server = live_server(
        served_project,
        {"CHURN_PREDICTION_LOG_URL": f"sqlite:///{db}", "CHURN_ID_HASH_KEY": "k" * 32},
    )
    sent = records(7)
    ids = []
    with httpx.Client(base_url=server.url) as client:
        for i in range(60):
            r = client.post("/predict", json={"records": sent[: 1 + i % 7]})
            assert r.status_code == 200
            ids.append((r.json()["request_id"], 1 + i % 7))
    # SIGTERM right after the last answer; uvicorn re-raises it after a graceful shutdown.
    assert server.stop() in (0, -15)
    assert "Application shutdown complete" in server.output()
    rows = (
        sqlite3.connect(db)
        .execute("SELECT request_id, customer_hash, features FROM predictions")
        .fetchall()
    )
    assert len(rows) == sum(n for _, n in ids)
    assert {r[0] for r in rows} == {i for i, _ in ids}
    raw_ids = {rec["customerID"] for rec in sent}
    text = json.dumps(rows)
    assert not any(cid in text for cid in raw_ids)  # never stored in clear
    assert all(len(r[1]) == 64 for r in rows)
    features = json.loads(rows[0][2])
    assert "customerID" not in features and "tenure" in features
