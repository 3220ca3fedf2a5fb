"""The cloud contracts' servers: real ``churn serve`` processes, one for the whole session per
kind (the champion of the session's trained project; the rules of a project without one), with
every contract on, shared by the contract modules."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from churn.prediction_store import SCORE_COLUMN
from tests.serving.conftest import ROOT, LiveServer, start_server

KEY = "contracts-key-0123456789-abcdefghij"
ALL = "sagemaker,vertex,oip"
# Vertex AI's own routes, as it sets them for a deployed model (the defaults of a model uploaded
# without --container-health-route/--container-predict-route).
VERTEX_HEALTH = "/v1/endpoints/1234/deployedModels/5678"
VERTEX_PREDICT = "/v1/endpoints/1234/deployedModels/5678:predict"


@pytest.fixture(scope="session")
def contract_server(
    served_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """The trained champion behind ``/predict`` and every contract; the API key on; its
    prediction log (a SQLite file, returned beside the server) its own."""
    logs = tmp_path_factory.mktemp("contracts")
    db = logs / "predictions.db"
    env = {
        "CHURN_API_KEY": KEY,
        "CHURN_SERVING_CONTRACTS": ALL,
        "CHURN_PREDICTION_LOG_URL": f"sqlite:///{db}",
        "CHURN_MODEL_CACHE_DIR": str(logs / "cache"),
        "AIP_HEALTH_ROUTE": VERTEX_HEALTH,
        "AIP_PREDICT_ROUTE": VERTEX_PREDICT,
    }
    server = start_server(served_project, logs, env)
    yield server, db
    server.stop()


@pytest.fixture(scope="session")
def rules_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """No champion anywhere (a registry that refuses connections): the rules answer, and
    ``/ready`` says degraded."""
    root = tmp_path_factory.mktemp("contracts-rules")
    project = root / "project"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    db = root / "predictions.db"
    env = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "2",
        "CHURN_API_KEY": KEY,
        "CHURN_SERVING_CONTRACTS": ALL,
        "CHURN_PREDICTION_LOG_URL": f"sqlite:///{db}",
    }
    server = start_server(project, root, env)
    yield server, db
    server.stop()


def post(server: LiveServer, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    """A POST with the key (unless ``headers`` says otherwise) and a JSON or raw body."""
    headers = {"X-API-Key": KEY, **kwargs.pop("headers", {})}
    if isinstance(body, bytes | str):
        return httpx.post(server.url + path, content=body, headers=headers, timeout=30, **kwargs)
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30, **kwargs)


def get(server: LiveServer, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"X-API-Key": KEY, **kwargs.pop("headers", {})}
    return httpx.get(server.url + path, headers=headers, timeout=30, **kwargs)


def logged(db: Path, request_id: str, rows: int, timeout: float = 15) -> list[tuple[Any, ...]]:
    """The prediction log's rows of one request, ``(model_version, probability)`` in input
    order, once ``rows`` of them are written (the writer is off the request path)."""
    deadline = time.monotonic() + timeout
    found: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    found = conn.execute(
                        f"SELECT model_version, {SCORE_COLUMN} FROM predictions "
                        "WHERE request_id = ? ORDER BY id",
                        (request_id,),
                    ).fetchall()
                except sqlite3.OperationalError:  # no table yet
                    found = []
            if len(found) >= rows:
                return found
        time.sleep(0.1)
    return found
