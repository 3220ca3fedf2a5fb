"""Issue #26's faults measured on the log writer of any checkout, with real stores (SQLite and
the machine's PostgreSQL, ``PG_ADMIN``): the *before* column of docs/serving.md's table.

It uses only the API the code before issue #26 had. From a checkout of that code::

    PYTHONPATH=<checkout>:<checkout>/src .venv/bin/python tests/reliability/measure_issue26.py

prints ``FAULT | fault | acknowledged | stored | dead-lettered | lost`` rows (run from this
checkout, the same faults after the change).
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from churn.prediction_store import PredictionStore
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch

KEY = b"a-test-key-of-32-bytes-or-more!!"
PG = os.environ.get("PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def batch(n, rid, contract="Two year", latency=1.5):
    p = np.random.default_rng(0).uniform(0, 1, n)
    return ScoredBatch(
        datetime.now(UTC),
        rid,
        "3",
        [f"{rid}-{i}" for i in range(n)],
        {"tenure": list(range(n)), "Contract": [contract] * n},
        p,
        p >= 0.5,
        latency,
        None,
    )


def mk(url, j):
    return PredictionLog(
        PredictionStore(url, url, KEY, create=True),
        ServingMetrics(),
        journal_dir=j,
        retry_seconds=0.05,
    )


def stored(url):
    e = sa.create_engine(url)
    with e.connect() as c:
        if not sa.inspect(c).has_table("predictions"):
            return 0
        n = c.exec_driver_sql("SELECT count(*) FROM predictions").scalar()
    e.dispose()
    return n


def dead(j):
    return sum(len(p.read_text().splitlines()) for p in Path(j).rglob("dead-letters.jsonl"))


def settle(log, s=8):
    end = time.monotonic() + s
    while time.monotonic() < end and (log.health().journal_rows or log.health().queued_rows):
        time.sleep(0.05)


def row(name, acked, st, dl, erased=0):
    print(
        f"FAULT | {name} | {acked} | {st} | {dl} | {acked - st - dl - erased}"
        + (f" (erased {erased})" if erased else ""),
        flush=True,
    )


def poison(url, j, bad, name):
    log = mk(url, j)
    log.start()
    log.submit(batch(300, "before"))
    log.submit(bad)
    for i in range(5):
        log.submit(batch(200, f"after{i}"))
    settle(log)
    log.close(timeout=1)
    again = mk(url, j)
    again.start()
    settle(again)
    again.close(timeout=1)
    row(name, 1300 + len(bad.proba), stored(url), dead(j))


def pgdb():
    name = f"churn_m26_{os.getpid()}"
    e = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    e.dispose()
    return str(sa.make_url(PG).set(database=name).render_as_string(hide_password=False)), name


def dropdb(name):
    e = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    e.dispose()


d = Path(tempfile.mkdtemp())
poison(
    f"sqlite:///{d / 'a.db'}",
    d / "ja",
    batch(3, "poison", latency=float("nan")),
    "SQLite: a row breaking NOT NULL",
)
pg, name = pgdb()
try:
    poison(
        pg,
        d / "jb",
        batch(2, "poison", contract="Month\x00to-month"),
        "PostgreSQL: NUL in a level (past the contract)",
    )
finally:
    dropdb(name)
# forget during an outage, then restart
url = f"sqlite:///{d / 'f.db'}"
log = mk(url, d / "jf")
log.start()
sqlite3.connect(d / "f.db").execute("DROP TABLE predictions")
log.submit(batch(50, "alpha"))
settle(log, 2)
env = {
    **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
    "CHURN_PREDICTION_LOG_URL": url,
    "CHURN_PREDICTION_JOURNAL_DIR": str(d / "jf"),
    "CHURN_ID_HASH_KEY": KEY.decode(),
}
log.close(timeout=0.2)
sqlite3.connect(d / "f.db").execute("CREATE TABLE IF NOT EXISTS x (a)")
done = subprocess.run(
    [sys.executable, "-m", "pipelines.cli", "forget", "--customer-id", "alpha-7"],
    env=env,
    capture_output=True,
    text=True,
)
again = mk(url, d / "jf")
again.start()
settle(again)
again.close(timeout=1)
h = PredictionStore(url, url, KEY).hash_id("alpha-7")
with sqlite3.connect(d / "f.db") as c:
    back = c.execute("SELECT count(*) FROM predictions WHERE customer_hash=?", (h,)).fetchone()[0]
print(
    f"FAULT | churn forget (stopped service, store down), restart | 50 | {stored(url)} | 0 "
    f"| forgotten rows back in the store: {back} | {done.stderr.strip()[-80:]}"
)
# URL spelling
db = d / "s" / "log.db"
url = f"sqlite:///{db}"
log = mk(url, d / "js")
log.start()
sqlite3.connect(db).execute("DROP TABLE predictions")
log.submit(batch(700, "backlog"))
settle(log, 2)
log.close(timeout=0.2)
spelled = f"sqlite:///{d / 's' / '..' / 's' / 'log.db'}"
again = mk(spelled, d / "js")
again.start()
settle(again)
again.close(timeout=1)
row("SQLite URL spelled differently", 700, stored(url), 0)
pg, name = pgdb()
try:
    u = sa.make_url(pg)
    old = u.set(password="old", port=5432).render_as_string(hide_password=False)
    new = u.set(password="rotated", port=None).render_as_string(hide_password=False)
    log = mk(old, d / "jp")
    log.start()
    e = sa.create_engine(pg)
    with e.begin() as c:
        c.exec_driver_sql("DROP TABLE predictions")
    e.dispose()
    log.submit(batch(900, "backlog"))
    settle(log, 2)
    log.close(timeout=0.2)
    again = mk(new, d / "jp")
    again.start()
    settle(again)
    again.close(timeout=1)
    row("PostgreSQL password rotated during an outage", 900, stored(pg), 0)
finally:
    dropdb(name)
# stray file
url = f"sqlite:///{d / 't.db'}"
log = mk(url, d / "jt")
root = log.journal_root
root.mkdir(parents=True)
(root / "README.txt").write_text("x")
(root / "1-deadbeef").mkdir()
(root / "1-deadbeef" / "notes.jsonl").write_text("x")
try:
    log.start()
    log.submit(batch(10, "x"))
    settle(log)
    log.close()
    print(f"FAULT | stray file in the journal | started, stored {stored(url)}")
except Exception as exc:
    print(f"FAULT | stray file in the journal | start-up failed: {type(exc).__name__}: {exc}")
