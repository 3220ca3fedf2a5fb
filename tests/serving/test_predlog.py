"""The prediction log's writer: what it stores, and that it keeps up while requests hold the GIL."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from churn.prediction_store import PredictionStore, predictions_table
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch

KEY = b"a-test-key-of-32-bytes-or-more!!"


def _log(url: str, metrics: ServingMetrics | None = None) -> PredictionLog:
    store = PredictionStore(url, url, KEY, create=True)  # the service's store: the writer
    return PredictionLog(store, metrics or ServingMetrics())


def _hashes(ids: list[str | None]) -> list[str | None]:
    return PredictionStore("sqlite://", "sqlite://", KEY).hash_ids(ids)


def _batch(n: int, seed: int = 0, request_id: str = "req") -> ScoredBatch:
    rng = np.random.default_rng(seed)
    proba = rng.uniform(0, 1, n)
    return ScoredBatch(
        logged_at=datetime.now(UTC),
        request_id=request_id,
        model_version="3",
        ids=[f"cust-{seed}-{i}" if i % 5 else None for i in range(n)],
        columns={
            "tenure": rng.integers(0, 72, n).tolist(),
            "TotalCharges": [None if i % 7 == 0 else float(i) for i in range(n)],
            "Contract": ["Month-to-month"] * n,
        },
        proba=proba,
        decisions=proba >= 0.5,
        latency_ms=1.5,
        unseen=[["Contract"] if i % 3 == 0 else [] for i in range(n)],
    )


def test_rows_are_stored_as_submitted(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    log = _log(f"sqlite:///{db}")
    log.start()
    batch = _batch(12, seed=1)
    log.submit(batch)
    log.close()
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT request_id, model_version, customer_hash, features, churn_probability, churn,"
            " latency_ms, unseen_categories FROM predictions ORDER BY id"
        )
        .fetchall()
    )
    assert len(rows) == 12
    for i, row in enumerate(rows):
        request_id, version, digest, features, proba, churn, latency, unseen = row
        assert (request_id, version, latency) == ("req", "3", 1.5)
        assert digest == _hashes(list(batch.ids))[i]  # None stays NULL
        assert json.loads(features) == {c: batch.columns[c][i] for c in batch.columns}
        assert proba == batch.proba[i] and bool(churn) == batch.decisions[i]
        assert (json.loads(unseen) if unseen else []) == batch.unseen[i]  # type: ignore[index]


def test_logged_at_reads_back_as_the_submitted_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = _log(url)
    log.start()
    batch = _batch(2)
    log.submit(batch)
    log.close()
    with sa.create_engine(url).connect() as conn:
        stored = conn.execute(sa.select(predictions_table.c.logged_at)).scalars().all()
    assert stored == [batch.logged_at.replace(tzinfo=None)] * 2  # naive UTC in SQLite


@pytest.fixture
def busy_gil() -> Iterator[None]:
    """A thread that runs Python without pause, as the event loop does under load."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_the_writer_keeps_up_while_another_thread_holds_the_gil(
    tmp_path: Path, busy_gil: None
) -> None:
    """20 requests of 1000 rows are written within seconds although Python is never idle.

    A per-row executemany hands the GIL back and forth for every row and needed several
    seconds for each 1000 rows here; the writer now sends a batch as one statement.
    """
    db = tmp_path / "log.db"
    metrics = ServingMetrics()
    log = _log(f"sqlite:///{db}", metrics)
    log.start()
    started = time.perf_counter()
    for i in range(20):
        log.submit(_batch(1000, seed=i, request_id=f"r{i}"))
    log.close()
    elapsed = time.perf_counter() - started
    (count,) = sqlite3.connect(db).execute("SELECT count(*) FROM predictions").fetchone()
    assert count == 20_000
    assert elapsed < 15, f"the writer needed {elapsed:.1f} s for 20,000 rows"


def test_the_probability_histogram_counts_every_logged_score(tmp_path: Path) -> None:
    metrics = ServingMetrics()
    log = _log(f"sqlite:///{tmp_path / 'log.db'}", metrics)
    log.start()
    batches = [_batch(n, seed=n) for n in (1, 10, 333)]
    for batch in batches:
        log.submit(batch)
    log.close()
    proba = np.concatenate([b.proba for b in batches])
    text = generate_latest(metrics.registry).decode()

    def sample(name: str, le: str | None = None) -> float:
        label = f'{{le="{le}"}}' if le else ""
        line = next(x for x in text.splitlines() if x.startswith(f"{name}{label} "))
        return float(line.split()[-1])

    for le in ("0.1", "0.5", "0.9", "1.0"):
        expected = int(np.sum(proba <= float(le)))
        assert sample("churn_prediction_probability_bucket", le) == expected, le
    assert sample("churn_prediction_probability_count") == len(proba)
    assert sample("churn_prediction_probability_sum") == pytest.approx(proba.sum())
    churned = int(np.sum(proba >= 0.5))
    assert f'churn_predictions_total{{decision="churn",model_version="3"}} {churned}.0' in text


@pytest.mark.parametrize("rows", [3, 100], ids=["small, in submit", "large, in the thread"])
def test_a_batch_that_cannot_be_written_is_dropped_alone(tmp_path: Path, rows: int) -> None:
    """A value JSON cannot hold fails its own batch, counted; the batches around it land.

    A small batch becomes its journal line in ``submit`` (inline_rows): there the caller hears
    of it (an exception: the request is not acknowledged); a large one is dropped by the
    journal thread and counted as lost.
    """
    db = tmp_path / "log.db"
    metrics = ServingMetrics()
    log = PredictionLog(
        PredictionStore(f"sqlite:///{db}", f"sqlite:///{db}", KEY, create=True),
        metrics,
        inline_rows=10,
    )
    log.start()
    bad = _batch(rows, seed=1, request_id="bad")
    bad.columns["Contract"] = [object()] * rows  # type: ignore[index]
    log.submit(_batch(4, seed=0, request_id="before"))
    if rows <= 10:
        with pytest.raises(TypeError, match="not JSON serializable"):
            log.submit(bad)
    else:
        assert log.submit(bad)
    log.submit(_batch(50, seed=2, request_id="after"))
    log.close()
    stored = sqlite3.connect(db).execute("SELECT request_id FROM predictions").fetchall()
    assert sorted(r for (r,) in stored) == ["after"] * 50 + ["before"] * 4
    text = generate_latest(metrics.registry).decode()
    assert "churn_prediction_log_errors_total 1.0" in text
    lost = 0 if rows <= 10 else rows  # refused before it was acknowledged: not lost
    assert f"churn_prediction_log_lost_rows_total {lost}.0" in text
    assert log.health().queued_rows == 0


def _stored(db: Path) -> list[str]:
    rows = sqlite3.connect(db).execute("SELECT request_id FROM predictions").fetchall()
    return sorted(r for (r,) in rows)


def test_rows_the_database_refuses_stay_journaled_and_the_next_start_replays_them(
    tmp_path: Path,
) -> None:
    """The store refuses every write, then shutdown: nothing is lost, the next start stores it."""
    db = tmp_path / "log.db"
    metrics = ServingMetrics()
    log = PredictionLog(
        PredictionStore(f"sqlite:///{db}", f"sqlite:///{db}", KEY, create=True),
        metrics,
        retry_seconds=0.05,
    )
    log.start()
    sqlite3.connect(db).execute("DROP TABLE predictions")  # every insert fails from now on
    for i in range(5):
        assert log.submit(_batch(600, seed=i, request_id=f"r{i}"))
    deadline = time.monotonic() + 10
    while log.health().state != "failing" and time.monotonic() < deadline:
        time.sleep(0.05)
    health = log.health()
    assert health.state == "failing" and "no such table" in str(health.last_error)
    log.close(timeout=0.5)
    assert (
        not sqlite3.connect(db)
        .execute("SELECT name FROM sqlite_master WHERE name = 'predictions'")
        .fetchall()
    )
    assert len(list(log.journal_root.rglob("*.jsonl"))) >= 1
    text = generate_latest(metrics.registry).decode()
    assert "churn_prediction_log_lost_rows_total 0.0" in text

    again = _log(f"sqlite:///{db}")  # a new process on the same store: replays the journal
    again.start()
    again.close()
    assert _stored(db) == sorted(f"r{i}" for i in range(5) for _ in range(600))
    assert not list(again.journal_root.rglob("*.jsonl"))


def test_a_full_queue_refuses_the_batch_and_says_so(tmp_path: Path) -> None:
    """Nothing drains the queue (not started): past max_queued_rows, submit refuses."""
    metrics = ServingMetrics()
    log = PredictionLog(
        PredictionStore("sqlite://", "sqlite://", KEY), metrics, max_queued_rows=1000
    )
    assert log.submit(_batch(600)) and log.submit(_batch(400))
    assert not log.submit(_batch(1))
    assert log.health().state == "shedding" and log.health().queued_rows == 1000
    assert "churn_prediction_log_shed_total 1.0" in generate_latest(metrics.registry).decode()


def test_a_journal_disk_that_refuses_writes_falls_back_to_the_store(tmp_path: Path) -> None:
    """ENOSPC on the journal: rows go straight to the store, and /ready hears of the failure."""
    db = tmp_path / "log.db"
    log = _log(f"sqlite:///{db}")
    log.start()
    assert log._dir is not None
    journal = log._dir  # the journal's folder becomes a file: every segment write fails
    shutil.rmtree(journal)
    journal.write_text("not a folder")
    log.submit(_batch(50, request_id="direct"))
    deadline = time.monotonic() + 10
    while log.health().last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "journal" in str(log.health().last_error)
    log.close()
    journal.unlink()
    journal.mkdir()
    assert _stored(db) == ["direct"] * 50
