"""The compose file's MLflow server requires a login: its command and deploy/mlflow/basic_auth.ini
run on a real ``mlflow server`` (loopback, SQLite instead of PostgreSQL and the volume)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import mlflow
import pytest
import yaml

from churn.config.identity import identity
from tests.production.conftest import start_service
from tools.fork import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN, PASSWORD = "churn-admin", "a-test-password-0123456789abcdef"
SEARCH = "/api/2.0/mlflow/registered-models/search"

pytestmark = pytest.mark.integration


def test_the_compose_tracking_server_refuses_calls_without_the_login(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["mlflow"]
    assert "--app-name=basic-auth" in service["command"]
    env = service["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    for name in ("api", "prefect-flows"):  # the clients sign in
        client_env = compose["services"][name]["environment"]
        assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(client_env)
    ini = (ROOT / "deploy/mlflow/basic_auth.ini").read_text()
    assert "admin_password" not in ini.replace("MLFLOW_AUTH_ADMIN_PASSWORD", "")
    (tmp_path / "auth.ini").write_text(
        ini.replace("sqlite:////app/mlflow-auth/", f"sqlite:///{tmp_path}/")
    )

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    server = start_service(
        "mlflow-auth",
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--app-name=basic-auth",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        port,
        {
            **clean,
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp_path / "auth.ini"),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
            "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-test-csrf-key-0123456789abcdef",
        },
        tmp_path,
        tmp_path,
    )
    try:
        server.wait_ready("/health", 180, lambda r: r.status_code == 200)  # the probe stays open
        http = httpx.Client(base_url=server.url, timeout=60)  # a loaded 2-core machine
        assert http.get(SEARCH).status_code == 401
        assert http.get(SEARCH, auth=(ADMIN, "wrong")).status_code == 401
        assert http.get(SEARCH, auth=(ADMIN, PASSWORD)).status_code == 200
        os.environ.update(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=PASSWORD)
        # Both URIs given: a registry URI set by an earlier test in this process must not win.
        client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        client.create_registered_model(identity().model_name)
        assert [m.name for m in client.search_registered_models()] == [identity().model_name]
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
        server.stop()
