"""The prediction log writer: every scored record, appended to the store off the request path."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from churn.prediction_store import ROW_COLUMNS, PredictionStore
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

_ORJSON = orjson.OPT_SERIALIZE_NUMPY


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
        store: PredictionStore,
        metrics: ServingMetrics,
        *,
        batch_rows: int = 2000,
        flush_seconds: float = 0.25,
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # Rows waiting to be written: one JSON array of rows per scored batch, and their count.
        self._pending: list[bytes] = []
        self._pending_rows = 0

    def start(self) -> None:
        """Create the tables if needed and start the writer thread."""
        self.store.create_tables()
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
        self.store.close()

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
        """Rows as tuples in the store's ``ROW_COLUMNS`` order."""
        self._metrics.observe_scores(batch.model_version, batch.proba, batch.decisions)
        names = list(batch.columns)
        values = zip(*(batch.columns[c] for c in names), strict=True)
        at = self.store.timestamp(batch.logged_at)
        proba = batch.proba.tolist()
        decisions = batch.decisions.tolist()
        unseen = batch.unseen
        hashes = self.store.hash_ids(batch.ids)
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

    def _write(self, final: bool) -> None:
        for attempt in range(3 if final else 1):
            try:
                # Everything pending as one JSON array: one statement (see insert_statement).
                payload = b"[" + b",".join(rows[1:-1] for rows in self._pending) + b"]"
                self.store.insert_rows(payload.decode())
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
        target = self.store.spill_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab") as fh:
            for rows in self._pending:
                for row in orjson.loads(rows):
                    fh.write(orjson.dumps(dict(zip(ROW_COLUMNS, row, strict=True))) + b"\n")
        log.error("spilled %d prediction-log rows to %s", self._pending_rows, target)
        self._pending, self._pending_rows = [], 0
