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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from churn.prediction_store import PredictionStore
from serving.journal import DeadLetters
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


def row_table(
    fault: str, acked: int, stored: int, dead: int, *, journaled: int = 0, erased: int = 0
) -> None:
    """One row of the fault table (``-s`` shows it): acknowledged, stored, dead-lettered, lost
    (rows still journaled, or erased by ``churn forget``, are not lost: said after)."""
    lost = acked - stored - dead - journaled - erased
    print(
        f"\nFAULT | {fault} | {acked} | {stored} | {dead} | {lost} | journaled {journaled}"
        f", erased {erased}"
    )


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
    return sum(
        int(p.stem.rsplit("-", 1)[1])
        for p in log.journal_root.rglob("*.jsonl")
        if p.parent != log.journal_root and p.parent.name != "stray"
    )


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
        wait_for(
            lambda: log.health().journal_rows == 0 and log.health().queued_rows == 0,
            seconds,
            "the journal to drain",
        )
    except AssertionError:
        return False
    return True


def test_a_row_breaking_not_null_is_dead_lettered_and_the_rows_behind_it_stored(
    tmp_path: Path,
) -> None:
    """SQLite: a NaN latency (JSON null) breaks NOT NULL; the batch goes to the dead letters
    with the store's reason, every other row is stored; one fixed in the file is replayed, and
    ``churn dead-letters list`` shows the other two."""
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
    env = {
        "CHURN_PREDICTION_LOG_URL": url,
        "CHURN_PREDICTION_JOURNAL_DIR": str(tmp_path / "journal"),
    }
    # Fixed in the file (a latency), then replayed: stored, and the file is empty.
    path = log.journal_root / "dead-letters.jsonl"
    fixed = [json.loads(line) for line in path.read_text().splitlines()]
    for letter in fixed[:1]:
        letter["row"][7] = 2.5
    path.write_text("".join(json.dumps(letter) + "\n" for letter in fixed))
    stored_again, kept = DeadLetters(log.journal_root).replay(log.store)
    assert stored_again == 1 and len(kept) == 2 and "NOT NULL" in kept[0].reason
    assert _stored(url)["poison"] == 1
    listed = _churn(env, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 dead letters" in listed.stderr, listed.stderr
    assert listed.stdout.count("poison") == 2 and "NOT NULL" in listed.stdout


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
def test_a_nul_in_a_level_is_dead_lettered_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    """PostgreSQL cannot hold ``\\u0000`` in text: the row (had the contract let it through) is
    dead-lettered with the store's reason, every other row is stored."""
    poison = _batch(2, "poison", seed=9, contract="Month\u0000to-month")
    log = _poison_then_good(pg_database, tmp_path / "journal", poison, "PostgreSQL: NUL in a level")
    stored = _stored(pg_database)
    assert stored == {"before": 300, **{f"after-{i}": 200 for i in range(5)}}
    dead = _dead_letters(log)
    assert len(dead) == 2 and all(
        "Untranslatable" in str(d["reason"]) or "\\u0000" in str(d["reason"]) for d in dead
    ), dead


def test_journal_bound_refuses_new_rows_and_keeps_the_acknowledged(tmp_path: Path) -> None:
    """The store refuses (its table is gone): past ``max_journal_rows`` submit refuses (503),
    /ready's state says why, and every acknowledged row is still journaled."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    metrics = ServingMetrics()
    store = PredictionStore(url, url, KEY, create=True)
    log = PredictionLog(
        store,
        metrics,
        journal_dir=tmp_path / "journal",
        max_journal_rows=10_000,
        retry_seconds=0.05,
    )
    log.start()
    sqlite3.connect(tmp_path / "log.db").execute("DROP TABLE predictions")
    acked = sum(600 for i in range(16) if log.submit(_batch(600, f"r{i}", seed=i)))
    wait_for(lambda: log.health().queued_rows == 0, 10, "the queue journaled")
    refused = not log.submit(_batch(600, "one-too-many"))
    health = log.health()
    text = generate_latest(metrics.registry).decode()
    log.close(timeout=0.2)
    row_table("journal bound (10,000 rows), store refusing", acked, 0, 0, journaled=_journaled(log))
    assert acked == 9600 and refused
    assert health.state == "shedding" and "journal full" in str(health.last_error)
    assert health.journal_max_rows == 10_000
    assert "churn_prediction_log_journal_max_rows 10000.0" in text
    assert _journaled(log) == acked


def _forget(env: dict[str, str], customer: str) -> str:
    done = _churn(env, "forget", "--customer-id", customer)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_forget_during_an_outage_reaches_the_journal_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    """The store is down (its table dropped): rows wait in the journal. ``churn forget`` while
    the service runs leaves a tombstone; ``churn forget`` while it is stopped rewrites the
    segments. After the restart neither customer's rows reach the store; every other row does."""
    db = tmp_path / "log.db"
    url = f"sqlite:///{db}"
    journal = tmp_path / "journal"
    env = {
        "CHURN_PREDICTION_LOG_URL": url,
        "CHURN_PREDICTION_JOURNAL_DIR": str(journal),
        "CHURN_ID_HASH_KEY": KEY.decode(),
    }
    log = _log(url, journal, retry_seconds=0.05)
    log.start()
    sqlite3.connect(db).execute("DROP TABLE predictions")
    assert log.submit(_batch(50, "alpha", seed=1))  # ids alpha-0 ... alpha-49
    wait_for(lambda: log.health().journal_rows == 50, 10, "the rows journaled")
    running = _forget(env, "alpha-7")  # a live process owns the journal: a tombstone
    assert log.submit(_batch(50, "beta", seed=2))
    log.close(timeout=0.2)
    stopped = _forget(env, "beta-9")  # no live process: the segments are rewritten
    again = _log(url, journal, retry_seconds=0.05)
    again.start()  # recreates the table (the outage is over) and replays the journal
    _drains(again)
    again.close(timeout=2)
    hashes = PredictionStore(url, url, KEY).hash_ids(["alpha-7", "beta-9", "alpha-8"])
    with sqlite3.connect(db) as conn:
        stored = [h for (h,) in conn.execute("SELECT customer_hash FROM predictions")]
    row_table("churn forget during an outage, then a restart", 100, len(stored), 0, erased=2)
    assert "tombstone" in running and "1 running service" in running
    assert "from the journal 2 rows" in stopped  # beta-9, and alpha-7 by its tombstone
    assert len(stored) == 98
    assert hashes[0] not in stored and hashes[1] not in stored and hashes[2] in stored
    assert not (again.journal_root / "forgotten.jsonl").exists()  # spent


def _backlog(url: str, journal: Path, rows: int, drop: Callable[[], None]) -> PredictionLog:
    """A process whose store refuses (``drop`` removes its table) leaves ``rows`` journaled."""
    log = _log(url, journal, retry_seconds=0.05)
    log.start()
    drop()
    assert log.submit(_batch(rows, "backlog"))
    wait_for(lambda: log.health().journal_rows == rows, 10, "the rows journaled")
    log.close(timeout=0.2)
    return log


def test_a_changed_spelling_of_a_sqlite_url_finds_its_backlog(tmp_path: Path) -> None:
    """The same SQLite file by another path (``..``), and a journal under the key before #26."""
    db = tmp_path / "store" / "log.db"
    url = f"sqlite:///{db}"
    first = _backlog(url, tmp_path / "journal", 700, lambda: _drop_sqlite(db))
    spelled = f"sqlite:///{tmp_path / 'store' / '..' / 'store' / 'log.db'}"
    again = _log(spelled, tmp_path / "journal")
    assert again.journal_root == first.journal_root
    # A backlog under the old key (the whole URL's digest) is moved under the new one.
    legacy = tmp_path / "journal" / again.store.legacy_journal_key()
    first.journal_root.rename(legacy)
    again.start()
    _drains(again)
    again.close(timeout=2)
    stored = _stored(url)
    row_table("SQLite URL spelled differently (and the pre-#26 key)", 700, sum(stored.values()), 0)
    assert stored == {"backlog": 700}
    assert not legacy.exists()


def _drop_sqlite(db: Path) -> None:
    sqlite3.connect(db).execute("DROP TABLE predictions")


@pytest.mark.production
def test_a_rotated_password_finds_its_backlog_on_postgresql(
    tmp_path: Path, pg_database: str
) -> None:
    """The password changed (and the default port left out) during an outage: the backlog
    journaled under the old URL is replayed into the same database."""
    url = sa.make_url(pg_database)
    old = url.set(password="old-secret", port=5432).render_as_string(hide_password=False)
    new = url.set(password="rotated", port=None).render_as_string(hide_password=False)

    def drop() -> None:
        engine = sa.create_engine(pg_database)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE predictions")
        engine.dispose()

    first = _backlog(old, tmp_path / "journal", 900, drop)
    again = _log(new, tmp_path / "journal")
    assert again.journal_root == first.journal_root
    again.start()
    _drains(again)
    again.close(timeout=2)
    stored = _stored(pg_database)
    row_table("PostgreSQL password rotated during an outage", 900, sum(stored.values()), 0)
    assert stored == {"backlog": 900}


def test_stray_files_in_the_journal_are_moved_aside_and_a_nul_level_is_refused(
    project: Project, tmp_path: Path, servers: list[object]
) -> None:
    """A real ``churn serve`` starts although its journal holds foreign files and folders
    (moved into ``stray/`` with a WARNING; a dead process's segment is still replayed), and
    answers a level with a NUL with a 422 naming the field."""
    store = PredictionStore(f"sqlite:///{project.db}", f"sqlite:///{project.db}", KEY)
    root = project.db.parent / f"{project.db.stem}.journal" / store.journal_key()
    dead = root / "4242-0badf00d"
    dead.mkdir(parents=True)
    (dead / "owner.lock").touch()
    (dead / "n-000000000000-1.jsonl").write_bytes(
        _log("sqlite://", tmp_path / "unused")._entry(_batch(1, "adopted")).line
    )
    (dead / "notes.jsonl").write_text("not a segment\n")
    (root / "README.txt").write_text("someone's notes\n")
    (root / "backup").mkdir()
    server = project.start(tmp_path)
    servers.append(server)
    records = example_records(2, seed=3)
    nul = {**records[0], "Contract": "Month\u0000to-month"}
    refused = httpx.post(server.url + "/predict", json={"records": [nul]}, timeout=30)
    good = httpx.post(
        server.url + "/predict",
        json={"records": records},
        headers={"X-Request-ID": "good"},
        timeout=30,
    )
    ready = httpx.get(server.url + "/ready", timeout=10).json()
    server.proc.send_signal(2)  # SIGINT: uvicorn's graceful stop
    server.proc.wait(60)
    stored = project.stored()
    log_text = server.log.read_text()
    row_table("stray files in the journal (+1 journaled row)", 3, sum(stored.values()), 0)
    assert refused.status_code == 422
    assert any("Contract" in map(str, d["loc"]) for d in refused.json()["detail"])
    assert good.status_code == 200 and ready["prediction_log"]["dead_letters"] == 0
    assert stored == {"adopted": 1, "good": 2}
    assert sorted(p.name.rsplit("-", 1)[0] for p in (root / "stray").iterdir()) == [
        "README.txt",
        "backup",
        "notes.jsonl",
    ]
    assert log_text.count("moved to") == 3 and not dead.exists()
