"""Issue #26: a row the store rejects, an erasure during an outage, the journal's identity and a
stray file in the journal, each on a real store (SQLite; the machine's PostgreSQL for the NUL
case) and the service's own log writer; the contract and start-up on a real ``churn serve``.

Each test prints ``FAULT | <fault> | acknowledged | stored | dead-lettered | lost``
(``-s`` shows it): the table of issue #26's closing note.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from churn.prediction_store import PredictionStore
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch
from tests.production.conftest import (
    DATABASE_URL,
    SKIP_REASON,
    _create_databases,
    _drop_databases,
    pg_url,
)
from tests.reliability.conftest import Project, wait_for
from tests.serving.conftest import example_records

pytestmark = pytest.mark.integration

KEY = b"a-test-key-of-32-bytes-or-more!!"
ROOT = Path(__file__).resolve().parents[2]


def row_table(fault: str, acked: int, stored: int, dead: int) -> None:
    """One row of the fault table (``-s`` shows it)."""
    print(f"\nFAULT | {fault} | {acked} | {stored} | {dead} | {acked - stored - dead}")


def _batch(n: int, request_id: str, *, seed: int = 0, contract: str = "Two year") -> ScoredBatch:
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0, 1, n)
    return ScoredBatch(
        logged_at=datetime.now(UTC),
        request_id=request_id,
        model_version="3",
        ids=[f"{request_id}-{i}" for i in range(n)],
        columns={"tenure": list(range(n)), "Contract": [contract] * n},
        proba=proba,
        decisions=proba >= 0.5,
        latency_ms=1.5,
        unseen=None,
    )


def _log(url: str, journal: Path, **kwargs: float) -> PredictionLog:
    store = PredictionStore(url, url, KEY, create=True)
    return PredictionLog(store, ServingMetrics(), journal_dir=journal, **kwargs)  # type: ignore[arg-type]


def _stored(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("predictions"):
                return {}
            found = conn.exec_driver_sql(
                "SELECT request_id, count(*) FROM predictions GROUP BY request_id"
            ).fetchall()
    finally:
        engine.dispose()
    return {r: int(n) for r, n in found}


def _journaled(log: PredictionLog) -> int:
    return sum(int(p.stem.rsplit("-", 1)[1]) for p in log.journal_root.rglob("*.jsonl")
               if p.parent != log.journal_root and p.parent.name != "stray")


def _dead_letters(log: PredictionLog) -> list[dict[str, object]]:
    path = log.journal_root / "dead-letters.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _churn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}, **env}
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


# -- 1. a poison row ------------------------------------------------------------------------------


def _poison_then_good(url: str, journal: Path, poison: ScoredBatch, fault: str) -> PredictionLog:
    """Good rows, one poison batch, good rows again; close; then a second process on the store."""
    log = _log(url, journal, retry_seconds=0.05)
    log.start()
    assert log.submit(_batch(300, "before", seed=1))
    assert log.submit(poison)
    for i in range(5):
        assert log.submit(_batch(200, f"after-{i}", seed=2 + i))
    _drains(log)
    log.close(timeout=1)
    again = _log(url, journal, retry_seconds=0.05)  # the next start: the backlog replays
    again.start()
    again.close(timeout=2)
    stored = _stored(url)
    acked = 300 + len(poison.proba) + 5 * 200
    dead = len(_dead_letters(again))
    row_table(fault, acked, sum(stored.values()), dead)
    return again


def _drains(log: PredictionLog, seconds: float = 15) -> bool:
    try:
        wait_for(lambda: log.health().journal_rows == 0 and log.health().queued_rows == 0,
                 seconds, "the journal to drain")
    except AssertionError:
        return False
    return True


def test_a_row_breaking_not_null_is_dead_lettered_and_the_rows_behind_it_stored(
    tmp_path: Path,
) -> None:
    """SQLite: a NaN latency (JSON null) breaks NOT NULL; the batch goes to the dead letters
    with the store's reason, every other row is stored, and ``churn dead-letters list`` shows
    it."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    poison = _batch(3, "poison", seed=9)
    poison.latency_ms = float("nan")  # orjson writes null
    log = _poison_then_good(url, tmp_path / "journal", poison, "SQLite: a row breaking NOT NULL")
    stored = _stored(url)
    assert stored == {"before": 300, **{f"after-{i}": 200 for i in range(5)}}
    dead = _dead_letters(log)
    assert len(dead) == 3 and {d["row"][1] for d in dead} == {"poison"}  # type: ignore[index]
    assert all("NOT NULL" in str(d["reason"]) for d in dead)
    health = log.health()
    assert health.dead_letters == 3 and "NOT NULL" in str(health.last_dead_letter)
    env = {"CHURN_PREDICTION_LOG_URL": url, "CHURN_PREDICTION_JOURNAL_DIR": str(tmp_path / "journal")}
    listed = _churn(env, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert "3 dead letters" in listed.stderr, listed.stderr
    assert listed.stdout.count("poison") == 3 and "NOT NULL" in listed.stdout


def test_a_truncated_segment_is_dead_lettered_and_the_rest_replayed(tmp_path: Path) -> None:
    """SQLite: a segment cut short on disk (its last line is not JSON): the readable lines are
    stored, the cut line goes to the dead letters, the segments behind it are stored."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    journal = tmp_path / "journal"
    log = _log(url, journal)
    log.start()
    log.store.close()
    root = log.journal_root
    log.close(timeout=0)
    dead_process = root / "1-deadbeef"
    dead_process.mkdir(parents=True, exist_ok=True)
    (dead_process / "owner.lock").touch()
    writer = _log("sqlite://", tmp_path / "unused")
    lines = [orjson_line(writer, _batch(100, f"seg-{i}", seed=i)) for i in range(3)]
    cut = lines[1][: len(lines[1]) // 2]
    (dead_process / "n-000000000000-200.jsonl").write_bytes(lines[0] + b"\n" + cut)
    (dead_process / "n-000000000001-100.jsonl").write_bytes(lines[2])
    again = _log(url, journal, retry_seconds=0.05)
    again.start()
    _drains(again)
    again.close(timeout=2)
    stored = _stored(url)
    dead = _dead_letters(again)
    row_table("SQLite: a truncated segment", 300, sum(stored.values()), len(dead) * 100)
    assert stored == {"seg-0": 100, "seg-2": 100}
    assert len(dead) == 1 and "unreadable" in str(dead[0]["reason"])


def orjson_line(log: PredictionLog, batch: ScoredBatch) -> bytes:
    return log._entry(batch).line  # the journal line the service writes


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not DATABASE_URL:
        pytest.skip(SKIP_REASON)
    name = f"churn_poison_{secrets.token_hex(4)}"
    _create_databases(DATABASE_URL, [name])
    try:
        yield pg_url(DATABASE_URL, name)
    finally:
        _drop_databases(DATABASE_URL, [name])


@pytest.mark.production
def test_a_nul_in_a_level_is_dead_lettered_on_postgresql(
    tmp_path: Path, pg_database: str
) -> None:
    """PostgreSQL cannot hold ``\\u0000`` in text: the row (had the contract let it through) is
    dead-lettered with the store's reason, every other row is stored."""
    poison = _batch(2, "poison", seed=9, contract="Month\u0000to-month")
    log = _poison_then_good(pg_database, tmp_path / "journal", poison, "PostgreSQL: NUL in a level")
    stored = _stored(pg_database)
    assert stored == {"before": 300, **{f"after-{i}": 200 for i in range(5)}}
    dead = _dead_letters(log)
    assert len(dead) == 2 and all("Untranslatable" in str(d["reason"]) or "\\u0000" in
                                  str(d["reason"]) for d in dead), dead
