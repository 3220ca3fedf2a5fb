"""Serving fixtures: apps on throw-away projects, and real uvicorn servers on loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.fork import free_port

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "test-key-0123456789"


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI, which ``Settings`` then reads:
    an app loaded in-process would point every later project (the session's training run
    included) at its store. Tests here start without it and leave without it."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    yield
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)


@pytest.fixture
def bare_project(tmp_path: Path) -> Path:
    """A project with params.yaml and an empty MLflow store: no champion, so rules are served."""
    project = tmp_path / "bare"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    return project


@pytest.fixture
def bare_settings(bare_project: Path) -> Callable[..., Any]:
    from churn.config.settings import get_settings

    def make(**overrides: Any) -> Any:
        values: dict[str, Any] = {
            "project_dir": bare_project,
            "reload_interval_seconds": 0,
            "registry_timeout_seconds": 10,
            "MLFLOW_TRACKING_URI": f"sqlite:///{bare_project / 'empty-mlflow.db'}",
        }
        values.update(overrides)
        return get_settings(**values)

    return make


@contextlib.contextmanager
def loaded_client(app: Any, **kwargs: Any) -> Iterator[Any]:
    """A ``TestClient`` on ``app`` once its model is loaded (the service loads it in the
    background: ``/ready`` is 503 ``loading`` until then)."""
    from fastapi.testclient import TestClient

    with TestClient(app, **kwargs) as client:
        deadline = time.monotonic() + 240
        while client.get("/ready").json()["status"] == "loading":
            if time.monotonic() > deadline:
                raise TimeoutError("the model did not load in 240 s")
            time.sleep(0.05)
        yield client


@dataclass
class LiveServer:
    """A real ``churn serve`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM, as a container runtime sends); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    project: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    ready: float = 240,  # a cold start on a busy 2-core machine has taken more than 90 s
    python: str | Path = sys.executable,
    wait_for_model: bool = True,
) -> LiveServer:
    """Start ``churn serve`` on a free loopback port; wait until ``/health`` answers and (with
    ``wait_for_model``) until ``/ready`` is past ``loading``: the model loads in the background."""
    port = free_port()
    log = log_dir / f"server-{port}.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
        "CHURN_PROJECT_DIR": str(project),
        "CHURN_RELOAD_INTERVAL_SECONDS": "0",
        # Generous: a first MLflow load on a busy CI machine can take many seconds.
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "90",
        **(env or {}),
    }
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                str(python),
                "-m",
                "pipelines.cli",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "info",
            ],
            env=full_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=project,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + ready
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()[-3000:]}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                if not wait_for_model:
                    return server
                if httpx.get(server.url + "/ready", timeout=1).json()["status"] != "loading":
                    return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"server not up after {ready} s:\n{server.output()[-3000:]}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers (``env`` holds CHURN_* settings); all are stopped at teardown."""
    started: list[LiveServer] = []

    def start(
        project: Path,
        env: dict[str, str] | None = None,
        python: str | Path = sys.executable,
        ready: float = 90,
    ) -> LiveServer:
        server = start_server(project, tmp_path, env, ready, python=python)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """Like ``live_server``, but the servers live for the whole test module."""
    started: list[LiveServer] = []
    log_dir = tmp_path_factory.mktemp("servers")

    def start(project: Path, env: dict[str, str] | None = None) -> LiveServer:
        server = start_server(project, log_dir, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def served_project(trained_project: tuple[Path, Any]) -> Path:
    """The session's trained project (champion registered by the real training flow)."""
    return trained_project[0]


@pytest.fixture
def project_copy(served_project: Path, tmp_path: Path) -> Path:
    """A copy of the trained project whose registry can be changed without touching others.

    The copy's MLflow database is its own; artefacts stay where training wrote them.
    """
    copy = tmp_path / "copy"
    shutil.copytree(
        served_project,
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    return copy


def register_copy_of_champion(project: Path) -> str:
    """A new registry version with the champion's artefacts and tags; the alias moves to it."""
    from churn.config.settings import get_settings
    from churn.release import registry, tracking

    settings = get_settings(project_dir=project)
    client = tracking.connect(settings)
    champion = registry.current_champion(client, settings.model_name)
    assert champion is not None
    new = registry.register_challenger(
        client, settings.model_name, champion.source, champion.run_id, dict(champion.tags)
    )
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, new.version)
    return str(new.version)


def example_records(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """Realistic raw records from the project's generator, as a client would send them."""
    import json

    import pandas as pd

    from churn.data.generator import generate_customers

    frame = generate_customers(n, seed).drop(columns=["Churn"])
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    return list(json.loads(frame.to_json(orient="records")))


@pytest.fixture(scope="session")
def records() -> Callable[..., list[dict[str, Any]]]:
    return example_records
