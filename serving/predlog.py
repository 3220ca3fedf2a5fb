"""The prediction log: every scored record, appended off the request path for monitoring to read."""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

TABLE = "predictions"
REQUEST_ID_MAX = 64  # characters of a client's X-Request-ID that the log (and the API) accept
_metadata = sa.MetaData()
predictions_table = sa.Table(
    TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(REQUEST_ID_MAX), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("customer_hash", sa.String(64)),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("churn_probability", sa.Float, nullable=False),
    sa.Column("churn", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("unseen_categories", sa.JSON),
)


_COLUMNS = (
    "logged_at",
    "request_id",
    "model_version",
    "customer_hash",
    "features",
    "churn_probability",
    "churn",
    "latency_ms",
    "unseen_categories",
)
_ORJSON = orjson.OPT_SERIALIZE_NUMPY


def hash_id(key: bytes, customer_id: str | None) -> str | None:
    """Keyed HMAC-SHA256 of a customer id: stable for joins with labels, useless without the key."""
    if customer_id is None:
        return None
    return hash_ids(key, [customer_id])[0]


def hash_ids(key: bytes, customer_ids: Sequence[str | None]) -> list[str | None]:
    """``hash_id`` of each id; the keyed state is set up once, not once per id."""
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    out: list[str | None] = []
    for customer_id in customer_ids:
        if customer_id is None:
            out.append(None)
            continue
        h = keyed.copy()
        h.update(customer_id.encode())
        out.append(h.hexdigest())
    return out


@dataclass
class ScoredBatch:
    """What one request scored; turned into log rows by the writer thread, not the request."""

    logged_at: datetime
    request_id: str
    model_version: str
    ids: Sequence[str | None]
    columns: Mapping[str, Sequence[Any]]
    proba: np.ndarray
    decisions: np.ndarray
    latency_ms: float
    unseen: list[list[str]] | None


_STOP = object()


class PredictionLog:
    """A background writer: ``submit`` only enqueues; a thread inserts in batches.

    ``close`` drains the queue before it returns, so a graceful shutdown loses nothing that was
    acknowledged. Rows that cannot be written even then are spilled to a JSON-lines file next to
    the SQLite database (or in the working directory) so they can be replayed.
    """

    def __init__(
        self,
        url: str,
        hash_key: bytes,
        metrics: ServingMetrics,
        *,
        batch_rows: int = 2000,
        flush_seconds: float = 0.25,
    ) -> None:
        self.url = url
        self._key = hash_key
        self._metrics = metrics
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._engine: sa.Engine | None = None
        # Rows waiting to be written: one JSON array of rows per scored batch, and their count.
        self._pending: list[bytes] = []
        self._pending_rows = 0
        self._sqlite = True
        self._insert = ""

    def start(self) -> None:
        """Create the table if needed and start the writer thread."""
        self._engine = make_engine(self.url)
        _metadata.create_all(self._engine)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._insert = insert_statement(self._engine.dialect.name)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, batch: ScoredBatch) -> None:
        """Enqueue a scored batch (never blocks)."""
        self._queue.put(batch)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far, then stop the writer."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a database that hangs for 30 s
            log.error("prediction log writer did not finish within %.0f s", timeout)
        self._thread = None
        if self._engine is not None:
            self._engine.dispose()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                stopping = self._cycle()
            except Exception:
                # A batch that cannot be turned into rows must not end the writer: later
                # acknowledged predictions still have to be written.
                log.exception("prediction log writer: a batch failed and was dropped")
                self._metrics.log_errors.inc()

    def _cycle(self) -> bool:
        """Turn queued batches into rows for one flush interval, then write them in one
        transaction; True at stop.

        Rows are built as batches arrive (a few microseconds each) and written together: a
        commit per request would cost the process far more CPU, taken from the requests.
        """
        stopping = False
        deadline = time.monotonic() + self._flush_seconds
        while self._pending_rows < self._batch_rows:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if item is _STOP:
                stopping = True
                break
            # Serialised here, batch by batch: a batch that cannot be is dropped on its own
            # (see _run) instead of failing every write after it.
            rows = self._rows(item)
            self._pending.append(orjson.dumps(rows, option=_ORJSON))
            self._pending_rows += len(rows)
        self._metrics.log_queue.set(self._queue.qsize())
        if self._pending:
            self._write(final=stopping)
        return stopping

    def _rows(self, batch: ScoredBatch) -> list[tuple[Any, ...]]:
        """Rows as tuples in ``_COLUMNS`` order."""
        self._metrics.observe_scores(batch.model_version, batch.proba, batch.decisions)
        names = list(batch.columns)
        values = zip(*(batch.columns[c] for c in names), strict=True)
        at = self._timestamp(batch.logged_at)
        proba = batch.proba.tolist()
        decisions = batch.decisions.tolist()
        unseen = batch.unseen
        hashes = hash_ids(self._key, batch.ids)
        rows = []
        for i, row in enumerate(values):
            rows.append(
                (
                    at,
                    batch.request_id,
                    batch.model_version,
                    hashes[i],
                    dict(zip(names, row, strict=True)),
                    proba[i],
                    decisions[i],
                    batch.latency_ms,
                    unseen[i] if unseen and unseen[i] else None,
                )
            )
        return rows

    def _timestamp(self, at: datetime) -> str:
        # SQLite has no time zones: naive UTC text that SQLAlchemy's DateTime reads back.
        if self._sqlite:
            return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        return at.isoformat()

    def _write(self, final: bool) -> None:
        assert self._engine is not None
        for attempt in range(3 if final else 1):
            try:
                # One statement for everything pending, its rows as one JSON array. An
                # executemany gives the GIL up and takes it back once per row: with a busy event
                # loop each take waits for the switch interval, and 1000 rows took seconds.
                payload = b"[" + b",".join(rows[1:-1] for rows in self._pending) + b"]"
                with self._engine.begin() as conn:
                    conn.exec_driver_sql(self._insert, (payload.decode(),))
            except Exception:
                log.exception("prediction log write failed (attempt %d)", attempt + 1)
                self._metrics.log_errors.inc()
                time.sleep(0.2 * (attempt + 1))
                continue
            self._metrics.log_rows.inc(self._pending_rows)
            self._pending, self._pending_rows = [], 0
            return
        if final or self._pending_rows > 1_000_000:  # keep memory bounded while the DB is down
            self._spill()

    def _spill(self) -> None:
        target = spill_path(self.url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab") as fh:
            for rows in self._pending:
                for row in orjson.loads(rows):
                    fh.write(orjson.dumps(dict(zip(_COLUMNS, row, strict=True))) + b"\n")
        log.error("spilled %d prediction-log rows to %s", self._pending_rows, target)
        self._pending, self._pending_rows = [], 0


def insert_statement(dialect: str) -> str:
    """One INSERT of every row in a JSON array of ``_COLUMNS``-ordered arrays (one parameter)."""
    names = ", ".join(_COLUMNS)
    if dialect == "sqlite":
        # json_extract gives objects and arrays back as JSON text, true/false as 1/0.
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_COLUMNS)))
        return f"INSERT INTO {TABLE} ({names}) SELECT {values} FROM json_each(?)"
    if dialect == "postgresql":
        values = (
            "(r->>0)::timestamptz, r->>1, r->>2, r->>3, r->4, (r->>5)::float8, "
            "(r->>6)::boolean, (r->>7)::float8, "
            "CASE WHEN json_typeof(r->8) = 'null' THEN NULL ELSE r->8 END"
        )
        rows = "json_array_elements(%s::json) AS r"
        return f"INSERT INTO {TABLE} ({names}) SELECT {values} FROM {rows}"
    raise ValueError(f"the prediction log supports SQLite and PostgreSQL, not {dialect}")


def make_engine(url: str) -> sa.Engine:
    """An engine for the log; SQLite gets its folder created and WAL so readers never block it."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # Parameters stay out of error messages: a failed batch would print rows of features.
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)


def spill_path(url: str) -> Path:
    """Where rows go when the database refuses them at shutdown."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).parent / f"undelivered-{stamp}.jsonl"
    return Path.cwd() / f"undelivered-predictions-{stamp}.jsonl"
