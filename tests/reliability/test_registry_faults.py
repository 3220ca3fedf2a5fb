"""Registry faults on a real ``churn serve``: a corrupt newest cached model with the registry down
at start, and the registry coming back after a degraded start.

Registry down at start with a good cache (the cached champion serves, ``/ready`` degraded) is
``tests/serving/test_live.py::test_registry_unreachable_serves_the_cached_champion_then_the_rules``;
these tests add what happens around it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from churn.config.identity import identity
from churn.config.settings import get_settings
from tests.production.conftest import start_service
from tests.serving.conftest import LiveServer, register_copy_of_champion, start_server
from tools.fork import free_port

pytestmark = pytest.mark.integration

KEY = "test-key-0123456789"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture
def project(trained_project: tuple[Path, Any], tmp_path: Path) -> Path:
    """A copy of the session's trained project with its own registry database (no cache)."""
    copy = tmp_path / "copy"
    shutil.copytree(
        trained_project[0],
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    return copy


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in started:
        server.stop()


def _start(project: Path, servers: list[LiveServer], log_dir: Path, **env: str) -> LiveServer:
    server = start_server(project, log_dir, {"CHURN_API_KEY": KEY, **env}, ready=240)
    servers.append(server)
    return server


def _wait_ready(server: LiveServer, timeout: float = 240) -> dict[str, Any]:
    """``/ready`` once a model is loaded (the service answers while it loads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(server.url + "/ready", timeout=5)
        if r.json()["status"] != "loading":
            return dict(r.json())
        time.sleep(0.2)
    raise TimeoutError(server.output()[-3000:])


def _cache_two_versions(project: Path, servers: list[LiveServer], log_dir: Path) -> list[str]:
    """Serve the champion, then a newer one (an /admin/reload swap): both are cached."""
    first = _start(project, servers, log_dir)
    ready = _wait_ready(first)
    assert ready["source"] == "registry", first.output()[-3000:]
    newer = register_copy_of_champion(project)
    swap = httpx.post(first.url + "/admin/reload", headers=HEADERS, timeout=300).json()
    assert swap["outcome"] == "swapped" and swap["current"] == newer, swap
    first.stop()
    return [ready["model_version"], newer]


def test_a_corrupt_newest_cached_model_falls_back_to_the_older_cached_copy(
    project: Path, servers: list[LiveServer], tmp_path: Path
) -> None:
    older, newer = _cache_two_versions(project, servers, tmp_path)
    cache = project / ".serving-cache" / identity().model_name
    current = cache / (cache / "current").read_text().strip()
    assert current.name.startswith(f"v{newer}-"), sorted(p.name for p in cache.iterdir())
    files = [p for p in current.iterdir() if p.name.startswith("model.")]  # model.skops
    assert files, sorted(p.name for p in current.iterdir())
    for path in files:  # a fault: the newest copy's serialized model is cut short
        path.write_bytes(path.read_bytes()[:100])

    down = _start(
        project,
        servers,
        tmp_path,
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",
        CHURN_REGISTRY_TIMEOUT_SECONDS="3",
    )
    ready = _wait_ready(down)
    print(
        f"\nFAULT | registry down at start, newest cached model corrupt | cached v{older} "
        f"serves | - | - | {ready['status']} ({ready['source']})"
    )
    assert ready["status"] == "degraded" and ready["source"] == "cache", ready
    assert ready["model_version"] == older, ready
    assert ready["reason"].startswith("registry "), ready  # unavailable, or did not answer
    assert f"of v{older}" in ready["reason"] and current.name in ready["reason"], ready
    answer = httpx.post(
        down.url + "/predict", json={"records": _records()}, headers=HEADERS, timeout=60
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == older
    log = down.output()
    assert "WARNING" in log and f"skipping the cached copy {current}" in log, log[-3000:]


def test_after_a_degraded_start_the_registry_coming_back_is_followed(
    project: Path, servers: list[LiveServer], tmp_path: Path
) -> None:
    """Registry down at start: the cached champion serves (degraded); when the registry answers
    again, the poller loads its champion and ``/ready`` says ready."""
    first = _start(project, servers, tmp_path)  # caches the champion
    champion = _wait_ready(first)["model_version"]
    first.stop()
    port = free_port()  # nothing listens here yet: the registry is down
    server = _start(
        project,
        servers,
        tmp_path,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
        CHURN_REGISTRY_TIMEOUT_SECONDS="3",
        CHURN_RELOAD_INTERVAL_SECONDS="1",
    )
    ready = _wait_ready(server)
    assert ready["status"] == "degraded" and ready["source"] == "cache", ready
    assert ready["model_version"] == champion, ready

    settings = get_settings(project_dir=project)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    mlflow_server = start_service(
        "mlflow-server",
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            settings.tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        port,
        clean,
        tmp_path,
        project,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            ready = httpx.get(server.url + "/ready", timeout=5).json()
            if ready["source"] == "registry":
                break
            time.sleep(0.5)
        print(
            f"\nFAULT | registry down at start, then back | cached v{champion} served, then the "
            f"registry's | - | - | degraded (cache), then {ready['status']} ({ready['source']})"
        )
        assert ready["status"] == "ready" and ready["source"] == "registry", ready
        assert ready["model_version"] == champion
        assert f"swapped model v{champion} -> v{champion}" in server.output()
    finally:
        mlflow_server.stop()


def _records() -> list[dict[str, Any]]:
    from tests.serving.conftest import example_records

    return example_records(3)
