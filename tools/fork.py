"""A throw-away fork of the template and a real service on it: what the demo, the benchmarks and
the tests run against."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from churn.config.settings import Settings
from churn.prediction_store import PredictionStore

ROOT = Path(__file__).resolve().parents[1]
# The ``churn`` command line of this interpreter's environment, always as a process of its own
# (``python -m pipelines.cli`` never hands a command to the warm process).
CHURN = [sys.executable, "-m", "pipelines.cli"]
# The installed ``churn`` command (``pipelines.cli:main``, what ``make`` runs), which hands
# ``train`` and ``monitor`` to the warm process of the PREFECT_HOME in its environment when one is
# up (pipelines/warm.py), else runs them itself.
CHURN_COMMAND = [str(Path(sys.executable).parent / "churn")]


def warm_env(project: Path) -> dict[str, str]:
    """This environment with the fork's own PREFECT_HOME, where its warm process's socket lives."""
    return {**os.environ, "PREFECT_HOME": str(project / ".prefect")}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def fork_project(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A throw-away copy of the template with its own git repo, DVC remote and MLflow store."""
    from dvc.repo import Repo

    from churn.data.versioning import dvc_logs_once

    dvc_logs_once()

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    # The project's identity (churn.config.identity reads [tool.churn.identity] beside src/).
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(deep_merge(params, overrides or {})))
    (dest / ".gitignore").write_text(
        "/data/\n/mlruns/\n/.dvcstore/\n/reports/\n/.serving-cache/\n/evidently-workspace/\n"
        "/prediction-journal/\n"
    )
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)  # noqa: S603
    with Repo.init(str(dest)) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = "false"
        conf["core"]["remote"] = "local"
        conf["remote"]["local"] = {"url": str(dest / ".dvcstore")}
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)  # noqa: S603
    subprocess.run([*git, "commit", "-qm", "fork"], cwd=dest, check=True)  # noqa: S603
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_service(
    project: Path, port: int, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[str]:
    """The serving app under uvicorn on 127.0.0.1 (a real process); stopped with SIGINT."""
    environment = {
        **os.environ,
        "CHURN_PROJECT_DIR": str(project),
        "CHURN_RELOAD_INTERVAL_SECONDS": "2",
        **(env or {}),
    }
    log_path = project / "reports" / "serving.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*CHURN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=project,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited early; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the service was not ready in {timeout_s:.0f} s")
                time.sleep(0.3)
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_log(settings: Settings, rows: int, version: str, timeout_s: float = 30.0) -> None:
    """Wait until the service's log writer (it flushes every 0.25 s) has ``rows`` of ``version``."""
    store = PredictionStore.from_settings(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while store.read_window(rows, max_rows=1, model_version=version).total_rows < rows:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{rows} predictions of v{version} were not logged in time")
            time.sleep(0.2)
    finally:
        store.close()


def served_version(url: str) -> str:
    return str(httpx.get(f"{url}/version", timeout=5).json()["version"])


def wait_for_version(url: str, version: str, timeout_s: float = 60.0) -> float:
    """Seconds until the service answers with ``version`` (it polls the registry)."""
    started = time.monotonic()
    while served_version(url) != version:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the service did not move to v{version} in {timeout_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def register_approved_challenger(project: Path) -> str:
    """A new registry version with the champion's artefacts and record under the
    ``challenger`` alias, approved by the gate against the champion (what `churn train
    --no-promote` leaves when the gate approves): a challenger that costs what the champion
    costs to score, for the shadow benchmark."""
    from churn.config.settings import get_settings
    from churn.release import registry, tracking

    settings = get_settings(project_dir=project)
    client = tracking.connect(settings)
    champion = registry.current_champion(client, settings.model_name)
    if champion is None:
        raise LookupError(f"{project} has no champion to copy")
    tags = {k: v for k, v in champion.tags.items() if not k.startswith("promotion.")}
    new = registry.register_challenger(
        client, settings.model_name, str(champion.source), str(champion.run_id), tags
    )
    decision = registry.PromotionDecision(
        True, "a copy of the champion, for a benchmark", 0.0, 0.0, str(champion.version)
    )
    registry.record_decision(
        client, settings.model_name, new.version, decision, move_champion=False
    )
    return str(new.version)
