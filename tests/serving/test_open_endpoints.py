"""What a caller without the API key gets, on real servers: ``/predict`` takes only a body
declared JSON (415 otherwise: a page in a browser cannot post ``text/plain`` or a form to a
development service and have it scored and logged), and ``/ready`` and ``/version`` name no
host, port or credential in their error texts unless the caller sends the key."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from churn.config.redact import redact
from tests.serving.conftest import ROOT, example_records

pytestmark = pytest.mark.integration

KEY = "open-endpoints-key-0123456789"
# Any password: the machine's PostgreSQL trusts local connections; the database does not exist,
# so every write fails with an error that names the server's address and port.
PASSWORD = "s3cret-i26"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No champion anywhere (a registry that refuses connections): the rules answer at once."""
    root = tmp_path_factory.mktemp("open") / "project"
    root.mkdir()
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return root


def _env(**extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@127.0.0.1:9",
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "2",
        **extra,
    }


@pytest.fixture(scope="module")
def dev_server(project: Path, module_server: Callable[..., Any]) -> Any:
    """Development: no API key, a SQLite prediction log."""
    return module_server(project, _env(CHURN_PREDICTION_LOG_URL=f"sqlite:///{project / 'l.db'}"))


def _stored(db: Path, request_id: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            query = "SELECT count(*) FROM predictions WHERE request_id = ?"
            return int(conn.execute(query, (request_id,)).fetchone()[0])
        except sqlite3.OperationalError:  # no table yet
            return 0


def test_a_body_not_declared_json_is_refused_with_415_and_never_logged(
    dev_server: Any, project: Path
) -> None:
    """Fault 12: without an API key a cross-site ``text/plain`` POST (no CORS preflight) was
    scored and logged. Now it, a form and a body without a type get 415 saying what to send;
    JSON, with parameters or as an ``application/*+json`` type, is scored."""
    body = orjson.dumps({"records": example_records(2, seed=3)})
    refused = {
        "text/plain;charset=UTF-8": "'text/plain'",
        "application/x-www-form-urlencoded": "'application/x-www-form-urlencoded'",
        "multipart/form-data; boundary=x": "'multipart/form-data'",
        None: "none",
    }
    for content_type, said in refused.items():
        headers = {"X-Request-ID": f"refused-{said.strip(chr(39)).replace('/', '-')}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        r = httpx.post(dev_server.url + "/predict", content=body, headers=headers, timeout=30)
        assert r.status_code == 415, (content_type, r.text)
        assert r.json()["detail"] == (
            f"the body must be JSON: send it with Content-Type: application/json (got {said})"
        )
    for content_type in ("application/json; charset=utf-8", "application/vnd.churn+json"):
        headers = {"Content-Type": content_type, "X-Request-ID": "accepted"}
        r = httpx.post(dev_server.url + "/predict", content=body, headers=headers, timeout=30)
        assert r.status_code == 200, (content_type, r.text)
    db = project / "l.db"
    deadline = time.monotonic() + 30
    while _stored(db, "accepted") < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stored(db, "accepted") == 4
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT DISTINCT request_id FROM predictions")}
    assert ids == {"accepted"}
    schema = httpx.get(dev_server.url + "/openapi.json", timeout=10).json()
    assert "415" in schema["paths"]["/predict"]["post"]["responses"]


def test_ready_redacts_hosts_ports_and_credentials_for_callers_without_the_key(
    project: Path, live_server: Callable[..., Any]
) -> None:
    """Fault 15b: ``/ready`` showed the database's host and port in ``last_error`` to anyone.
    A failing PostgreSQL prediction log: without the key (or with a wrong one) the error says
    what failed but not where; with the key it is whole. A development service (no key) shows
    it whole to everyone."""
    database = f"no_such_db_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432/{database}"
    server = live_server(project, _env(CHURN_PREDICTION_LOG_URL=url, CHURN_API_KEY=KEY), ready=240)

    def ready(headers: dict[str, str]) -> dict[str, Any]:
        return dict(httpx.get(server.url + "/ready", headers=headers, timeout=10).json())

    deadline = time.monotonic() + 60
    while (ready({})["prediction_log"] or {}).get("state") != "failing":
        assert time.monotonic() < deadline, ready({})
        time.sleep(0.3)
    whole = ready({"X-API-Key": KEY})
    assert '"127.0.0.1", port 5432' in whole["prediction_log"]["last_error"]
    for headers in ({}, {"X-API-Key": "wrong"}):
        shown = ready(headers)
        for text in (shown["prediction_log"]["last_error"], shown["reason"]):
            assert f'database "{database}" does not exist' in text  # what failed, still said
            assert "<redacted>" in text
            for secret in ("127.0.0.1", "5432", PASSWORD, "alice"):
                assert secret not in text, text
        assert {k: v for k, v in shown.items() if k not in ("reason", "prediction_log")} == {
            k: v for k, v in whole.items() if k not in ("reason", "prediction_log")
        }
    version = httpx.get(server.url + "/version", timeout=10).json()
    assert "127.0.0.1" not in str(version) and PASSWORD not in str(version)


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (
            'connection to server at "10.0.3.7", port 5432 failed: FATAL:  password '
            'authentication failed for user "svc_churn"',
            "password authentication failed",
        ),
        (
            "MlflowException: API request to http://bob:hunter2@mlflow.internal:5000/api/2.0/"
            "mlflow/registered-models/alias failed with exception HTTPConnectionPool("
            "host='mlflow.internal', port=5000): Max retries exceeded",
            "Max retries exceeded",
        ),
        ('could not translate host name "pg.prod.example" to address', "could not translate"),
        ("postgresql://svc_churn:hunter2@[fd00::7]:6432/churn refused", "refused"),
        ("timed out talking to db.example.com:6432 and 192.168.1.20", "timed out"),
    ],
)
def test_the_redaction_keeps_what_failed_and_drops_where_and_who(error: str, kept: str) -> None:
    text = redact(error)
    assert text is not None and kept in text and "<redacted>" in text
    for secret in (
        "10.0.3.7", "5432", "svc_churn", "hunter2", "bob", "mlflow.internal", "5000",
        "pg.prod.example", "fd00::7", "6432", "db.example.com", "192.168.1.20",
    ):  # fmt: skip
        assert secret not in text, text
