"""Fault injection on a real ``churn serve`` (loopback only): load clients that remember what was
acknowledged, the prediction log read back, and the one-line figure each fault test prints.

Each test prints ``FAULT | <fault> | acknowledged | stored or journaled | lost | /ready seen``;
``uv run --frozen pytest tests/reliability -q -s | grep '^FAULT'`` gives the table of
docs/serving.md ("What a fault costs"); with ``FAULTS_PYTHON=<other checkout>/.venv/bin/python``
the servers run that checkout's code (the tests then fail where it breaks the guarantee, after
printing their row).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import LiveServer, example_records, start_server

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    """A project without a champion (the rules answer: start-up takes seconds) and its log."""

    root: Path
    db: Path
    env: dict[str, str]

    def start(self, log_dir: Path, **env: str) -> LiveServer:
        # Generous: on a loaded 2-core machine importing the service alone took 45 s.
        # FAULTS_PYTHON runs another checkout's service (the "before" column of the table).
        python = os.environ.get("FAULTS_PYTHON", sys.executable)
        return start_server(self.root, log_dir, {**self.env, **env}, ready=300, python=python)

    def stored(self) -> dict[str, int]:
        """Rows in the prediction log per request id (empty when the table is missing)."""
        if not self.db.exists():
            return {}
        with sqlite3.connect(self.db) as conn:
            try:
                found = conn.execute(
                    "SELECT request_id, count(*) FROM predictions GROUP BY request_id"
                ).fetchall()
            except sqlite3.OperationalError:  # no such table
                return {}
        return dict(found)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    db = root / "log" / "predictions.db"
    env = {
        # A registry that refuses connections: the rules answer after 2 s (an empty SQLite
        # store would first spend many seconds creating MLflow's schema at every start).
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "2",
        "CHURN_PREDICTION_LOG_URL": f"sqlite:///{db}",
    }
    return Project(root, db, env)


@pytest.fixture(scope="session")
def bodies() -> Callable[[int], bytes]:
    import orjson

    records = example_records(1000, seed=11)
    cache: dict[int, bytes] = {}

    def body(n: int) -> bytes:
        if n not in cache:
            cache[n] = orjson.dumps({"records": records[:n]})
        return cache[n]

    return body


@dataclass
class Load:
    """Clients posting ``rows``-record requests with their own X-Request-ID until stopped."""

    url: str
    body: bytes
    rows: int
    clients: int
    prefix: str
    acked: dict[str, float] = field(default_factory=dict)  # request id -> when the 200 arrived
    statuses: dict[int | str, int] = field(default_factory=dict)
    ready_seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for c in range(self.clients):
            self._threads.append(threading.Thread(target=self._client, args=(c,), daemon=True))
        self._threads.append(threading.Thread(target=self._poll_ready, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _count(self, key: int | str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1

    def _client(self, c: int) -> None:
        headers = {"Content-Type": "application/json"}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                request_id = f"{self.prefix}-{c}-{i}"
                i += 1
                try:
                    r = client.post(
                        "/predict",
                        content=self.body,
                        headers={**headers, "X-Request-ID": request_id},
                    )
                except httpx.HTTPError as exc:
                    self._count(type(exc).__name__)
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    self.acked[request_id] = time.monotonic()
                self._count(r.status_code)

    def _poll_ready(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self._stop.is_set():
                try:
                    r = client.get("/ready")
                    body = r.json()
                    log = body.get("prediction_log") or {}
                    self.ready_seen.add(f"{r.status_code} {body['status']}/{log.get('state')}")
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                time.sleep(0.2)


def report(
    fault: str, acked_rows: int, kept_rows: int, lost_rows: int, ready: set[str], extra: str = ""
) -> None:
    """One row of the table (``-s`` shows it)."""
    seen = ", ".join(sorted(ready)) or "-"
    print(
        f"\nFAULT | {fault} | {acked_rows} | {kept_rows} | {lost_rows} | {seen}"
        + (f" | {extra}" if extra else "")
    )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[LiveServer]]:
    """Servers a test started; killed at teardown if still running."""
    started: list[LiveServer] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")
