"""The two ``/predict`` routes (``CHURN_PREDICT_ROUTE``: ``direct``, ``fastapi``) give the same
answers, status and body, to the same requests on the session's real champion: one row and
many, explain (body and query), an unseen level, a canary split with a real challenger, 401,
413, 415 (a body not declared JSON), 422 (a field, the query, the record count) and 503 (the
registry hangs: no model yet)."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.serving.conftest import API_KEY, example_records, loaded_client
from tools.fork import register_approved_challenger

pytestmark = pytest.mark.integration

ROUTES = ("direct", "fastapi")
Request = tuple[str, dict[str, Any] | bytes, dict[str, str]]


def _requests() -> list[Request]:
    """What a client sends: the requests both routes must answer alike."""
    records = example_records(40, seed=5)
    one = {"records": records[:1]}
    key = {"X-API-Key": API_KEY}
    return [
        ("/predict", one, key),
        ("/predict", {"records": records}, key),
        ("/predict", {"records": records[:3], "explain": True, "explain_top_k": 2}, key),
        ("/predict?explain=true&top_k=3", {"records": records[:2]}, key),
        ("/predict?top_k=2", {"records": records[:2], "explain": True}, key),  # both given
        ("/predict", {"records": [{**records[0], "Contract": "Weekly"}]}, key),  # unseen level
        ("/predict", one, {}),  # 401
        ("/predict", one, {"X-API-Key": "wrong"}),  # 401
        ("/predict", {"records": [{**records[0], "tenure": -1}]}, key),  # 422, a field
        ("/predict", {"records": [{k: v for k, v in records[0].items() if k != "tenure"}]}, key),
        ("/predict", {"records": []}, key),  # 422, too few records
        ("/predict?explain=maybe", one, key),  # 422, the query
        ("/predict?top_k=0", one, key),  # 422, the query
        ("/predict", {"records": records[:1] * 120}, key),  # 413 (max_body_bytes below)
        ("/predict", json.dumps(one).encode(), {**key, "Content-Type": "text/plain"}),  # 415
        ("/predict", json.dumps(one).encode(), key),  # 415, no Content-Type
    ]


def _answers(client: Any, requests: list[Request]) -> list[tuple[int, Any]]:
    """Status and body of each request, without what differs by request (its id)."""
    out = []
    for path, body, headers in requests:
        if isinstance(body, bytes):
            response = client.post(path, content=body, headers=headers)
        else:
            response = client.post(path, json=body, headers=headers)
        answer = response.json()
        if isinstance(answer, dict):
            answer.pop("request_id", None)
        out.append((response.status_code, answer))
    return out


@pytest.fixture
def app_for(tmp_path: Path) -> Callable[..., Any]:
    from churn.config.settings import get_settings
    from serving.app import create_app

    def make(project: Path, route: str, **overrides: Any) -> Any:
        settings = get_settings(
            project_dir=project,
            predict_route=route,
            api_key=API_KEY,
            reload_interval_seconds=0,
            max_body_bytes=48 * 1024,
            prediction_log_url=f"sqlite:///{tmp_path / f'{route}-{time.monotonic_ns()}.db'}",
            **overrides,
        )
        return create_app(settings)

    return make


def _same_answers(app_for: Callable[..., Any], project: Path, requests: list[Request]) -> Any:
    answers = {}
    for route in ROUTES:
        with loaded_client(app_for(project, route)) as client:
            answers[route] = _answers(client, requests)
    for i, (direct, fastapi) in enumerate(zip(answers["direct"], answers["fastapi"], strict=True)):
        assert direct == fastapi, f"request {i} ({requests[i][0]}): {direct} != {fastapi}"
    return answers["direct"]


def test_both_routes_answer_every_request_alike(
    served_project: Path, app_for: Callable[..., Any]
) -> None:
    answers = _same_answers(app_for, served_project, _requests())
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 6 + [401, 401, 422, 422, 422, 422, 422, 413, 415, 415]
    assert answers[14][1]["detail"] == (
        "the body must be JSON: send it with Content-Type: application/json (got 'text/plain')"
    )
    assert answers[15][1]["detail"].endswith("(got none)")
    assert "explanation" in answers[2][1]["predictions"][0]
    assert answers[5][1]["predictions"][0]["unseen_categories"] == ["Contract"]
    assert [e["loc"] for e in answers[11][1]["detail"]] == [["query", "explain"]]


@pytest.fixture
def canary_project(served_project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "canary"
    shutil.copytree(
        served_project,
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    register_approved_challenger(copy)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), "mode": "canary", "canary_share": 0.5}
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    return copy


def test_both_routes_split_a_canary_request_alike(
    canary_project: Path, app_for: Callable[..., Any]
) -> None:
    records = example_records(30, seed=9)
    key = {"X-API-Key": API_KEY}
    requests: list[Request] = [
        ("/predict", {"records": records}, key),
        ("/predict?explain=true", {"records": records[:6]}, key),
    ]
    answers = _same_answers(app_for, canary_project, requests)
    versions = {p["model_version"] for p in answers[0][1]["predictions"]}
    assert len(versions) == 2, "a 50 % canary of 30 customers uses both models"


@pytest.fixture
def hanging_registry() -> Iterator[str]:
    """An MLflow tracking URI whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


def test_both_routes_answer_503_before_the_model_is_loaded(
    bare_project: Path, app_for: Callable[..., Any], hanging_registry: str
) -> None:
    from fastapi.testclient import TestClient

    records = example_records(1)
    answers = {}
    for route in ROUTES:
        app = app_for(
            bare_project, route, tracking_uri=hanging_registry, registry_timeout_seconds=30
        )
        with TestClient(app) as client:
            assert client.get("/ready").json()["status"] == "loading"
            answers[route] = _answers(
                client, [("/predict", {"records": records}, {"X-API-Key": API_KEY})]
            )
    assert answers["direct"] == answers["fastapi"]
    assert answers["direct"][0] == (503, {"detail": "the model is not loaded yet"})


@pytest.mark.parametrize(
    ("body", "fastapi_status"),
    [(b"{not json", 422), (b"", 422), (b"[1]", 422), (b'{"records": [{"gender": "\xff"}]}', 400)],
)
def test_the_routes_differ_only_in_the_wording_for_a_body_that_is_no_json_object(
    bare_project: Path, app_for: Callable[..., Any], body: bytes, fastapi_status: int
) -> None:
    """The documented difference (docs/serving.md, "The /predict decision"): pydantic-core
    parses the direct route's body, FastAPI the other's; both refuse it and name the body."""
    answers = {}
    for route in ROUTES:
        empty = f"sqlite:///{bare_project / 'empty-mlflow.db'}"
        with loaded_client(app_for(bare_project, route, tracking_uri=empty)) as client:
            headers = {"X-API-Key": API_KEY, "Content-Type": "application/json"}
            answers[route] = client.post("/predict", content=body, headers=headers)
    assert answers["direct"].status_code == 422
    assert answers["direct"].json()["detail"][0]["loc"] == ["body"]
    assert answers["fastapi"].status_code == fastapi_status
    if fastapi_status == 422:
        assert answers["fastapi"].json()["detail"][0]["loc"][0] == "body"
