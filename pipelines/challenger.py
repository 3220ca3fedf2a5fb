"""A throw-away service on another alias (the challenger), for the smoke ``/predict`` check.

Wiring only: it starts ``churn serve`` as its own process on a free loopback port with
``CHURN_SERVED_ALIAS`` set, waits until it is ready, and stops it. The service gets its own
prediction log, model cache and keys in a temporary folder, so the smoke requests never reach
the production prediction log (monitoring would count them) and the champion's cached copy is
not touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


class ServiceFailed(RuntimeError):
    """The service did not become ready; the message ends with its log's tail."""


@dataclass(frozen=True)
class SmokeService:
    url: str
    api_key: str
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


@contextlib.contextmanager
def serve_alias(project_dir: Path, alias: str, timeout_s: float = 240.0) -> Iterator[SmokeService]:
    """``churn serve`` on ``alias`` at ``http://127.0.0.1:<free port>`` until the block ends.

    Raises:
        ServiceFailed: when it exits or is not ready within ``timeout_s``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="churn-smoke-"))
    api_key = secrets.token_urlsafe(32)
    store = f"sqlite:///{workdir / 'predictions.db'}"
    # The child inherits this process's environment (the tracking server, object store
    # credentials, CHURN_ENVIRONMENT) with the smoke service's own settings on top.
    env = {
        **os.environ,
        "CHURN_SERVED_ALIAS": alias,
        "CHURN_API_KEY": api_key,
        "CHURN_ID_HASH_KEY": secrets.token_urlsafe(32),
        "CHURN_PREDICTION_LOG_URL": store,
        "CHURN_LABELS_URL": store,
        "CHURN_MODEL_CACHE_DIR": str(workdir / "cache"),
        "CHURN_RELOAD_INTERVAL_SECONDS": "0",
    }
    # A slow registry must not turn the check into a check of the fallback rules.
    env.setdefault("CHURN_REGISTRY_TIMEOUT_SECONDS", "60")
    port = _free_port()
    log = workdir / "serve.log"
    command = [sys.executable, "-m", "pipelines.cli", "-C", str(project_dir), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter and our own module
            command, env=env, cwd=project_dir, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServiceFailed(
                    f"`churn serve` on {alias!r} exited with {proc.returncode}:\n{_tail(log)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    f"`churn serve` on {alias!r} was not ready in {timeout_s:.0f} s:\n{_tail(log)}"
                )
            time.sleep(0.5)
        yield SmokeService(url, api_key, log)
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the service's process group, SIGKILL after 30 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
