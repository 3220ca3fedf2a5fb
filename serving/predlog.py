"""The prediction log: every acknowledged prediction, journaled on local disk, then appended to
the store, off the request path.

The guarantee (docs/serving.md, "Prediction log"):

* ``submit`` refuses a batch (the request gets a 503) when the rows waiting in memory would pass
  ``max_queued_rows``: the service never acknowledges what it cannot keep, and memory is bounded
  whatever the store does.
* ``submit`` turns a small batch (up to ``inline_rows``, e.g. a one-record request) into its
  journal line at once, in the caller's thread; larger batches are turned into lines by the
  journal thread. Either way the per-row Python runs once, in small pieces: a journal thread
  that converted every request's rows at each flush held the GIL for milliseconds at a time,
  and the event loop's requests waited behind it (the single-row p99, docs/serving.md).
* The journal thread writes what was submitted to a segment file in the journal directory every
  ``flush_seconds`` (a whole file, renamed into place): from then on a crash of the process
  (``kill -9``) loses nothing. Only the rows of the last ``flush_seconds`` (plus the time to write
  them) live in memory alone.
* The store thread moves segments into the store, oldest first, and deletes each once its
  transaction committed. When the store refuses, the segments wait on disk and the thread retries;
  a restart replays them (the next process adopts the segments of a dead one).
* ``close`` (the lifespan's exit, after SIGTERM) journals everything still queued, delivers what
  the store takes within its timeout and leaves the rest journaled for the next start.

Rows are lost only when the journal disk *and* the store both refuse them at shutdown: then the
count is logged at ERROR and counted in ``churn_prediction_log_lost_rows_total``.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import itertools
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson

from churn.prediction_store import CHAMPION_ROLE, SHADOW_ROLE, PredictionStore
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

_ORJSON = orjson.OPT_SERIALIZE_NUMPY
_STOP = object()
_LOCK = "owner.lock"
# How recently a refused submit keeps the log in the "shedding" state on /ready.
_SHED_MEMORY_SECONDS = 2.0


@dataclass
class ScoredBatch:
    """What one request scored; turned into log rows by the writer thread, not the request."""

    logged_at: datetime
    request_id: str
    model_version: str
    ids: Sequence[str | None]
    columns: Mapping[str, Sequence[Any]]
    proba: np.ndarray | list[float]  # a list for one record (the request's floats)
    decisions: np.ndarray | list[bool]
    latency_ms: float
    unseen: list[list[str]] | None
    role: str = CHAMPION_ROLE  # who scored it: champion, challenger (canary) or shadow


class _Entry(NamedTuple):
    """A submitted batch as its journal line (a JSON array of its rows), with what the metrics
    count of it."""

    line: bytes
    rows: int
    role: str
    version: str
    proba: np.ndarray | list[float]
    decisions: np.ndarray | list[bool]


@dataclass(frozen=True)
class LogHealth:
    """What ``/ready`` and ``/metrics`` say about the log.

    ``state``: ``ok``; ``behind`` (rows journaled, waiting for the store); ``failing`` (the last
    store or journal write failed: rows wait on disk, or in memory if the journal failed);
    ``shedding`` (the queue is full: ``/predict`` answers 503).
    """

    state: Literal["ok", "behind", "failing", "shedding"]
    queued_rows: int
    journal_rows: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queued_rows": self.queued_rows,
            "journal_rows": self.journal_rows,
            "last_error": self.last_error,
        }


@dataclass
class _Segment:
    path: Path
    rows: int


class PredictionLog:
    """A bounded queue, a journal on local disk and a writer into the store (see the module).

    Args:
        store: where rows end up.
        metrics: the service's metrics.
        journal_dir: where segments wait for the store (in a folder per store URL); default
            ``store.journal_dir()``.
        max_queued_rows: rows waiting in memory above which ``submit`` refuses.
        flush_seconds: how often queued rows are journaled (the ``kill -9`` window).
        batch_rows: rows per journal segment (passed by at most one request's rows).
        deliver_rows: rows per store transaction at most when segments have piled up.
        retry_seconds: the wait after a failed store write.
        inline_rows: batches up to this many rows become journal lines in ``submit``.
    """

    def __init__(
        self,
        store: PredictionStore,
        metrics: ServingMetrics,
        *,
        journal_dir: Path | None = None,
        max_queued_rows: int = 100_000,
        flush_seconds: float = 0.1,
        batch_rows: int = 2000,
        deliver_rows: int = 20_000,
        retry_seconds: float = 1.0,
        inline_rows: int = 32,
    ) -> None:
        self.store = store
        self._metrics = metrics
        self.journal_root = (journal_dir or store.journal_dir()) / store.journal_key()
        self._max_queued_rows = max_queued_rows
        self._flush_seconds = flush_seconds
        self._batch_rows = batch_rows
        self._deliver_rows = deliver_rows
        self._retry_seconds = retry_seconds
        self._inline_rows = inline_rows
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()  # close() cuts the journal thread's wait short
        self._counts = threading.Lock()
        self._queued_rows = 0  # submitted, not yet journaled (or stored)
        self._refused_at = -1e9
        self._journal_error: str | None = None
        self._store_error: str | None = None
        self._backlog: collections.deque[_Segment] = collections.deque()
        self._backlog_changed = threading.Condition()
        self._journal_rows = 0
        self._seq = itertools.count()
        self._dir: Path | None = None
        self._lock_fh: Any = None
        self._stop_delivery_at: float | None = None
        self._journal_thread: threading.Thread | None = None
        self._store_thread: threading.Thread | None = None

    # -- the service's side -----------------------------------------------------------------------

    def start(self) -> None:
        """Take a journal directory, adopt the segments of dead processes, start both threads.

        Creating the tables may fail (the store is down): the service starts anyway, rows wait
        in the journal, and ``/ready`` says so.
        """
        self._dir = self._claim_journal()
        try:
            self.store.create_tables()
        except Exception as exc:
            self._failed("store", exc)
        self._journal_thread = threading.Thread(
            target=self._journal_loop, name="prediction-journal", daemon=True
        )
        self._store_thread = threading.Thread(
            target=self._store_loop, name="prediction-log", daemon=True
        )
        self._journal_thread.start()
        self._store_thread.start()

    def submit(self, batch: ScoredBatch) -> bool:
        """Enqueue a scored batch (never blocks); False, keeping nothing, if the queue is full.

        Raises:
            TypeError: a small batch holds a value JSON cannot (the request contract makes
                this unreachable); nothing is kept, and the caller must not acknowledge it.
        """
        rows = len(batch.proba)
        item: _Entry | ScoredBatch = batch
        if rows <= self._inline_rows:
            try:
                item = self._entry(batch)
            except Exception:
                self._metrics.log_errors.inc()
                raise
        with self._counts:
            if self._queued_rows + rows > self._max_queued_rows:
                self._refused_at = time.monotonic()
                self._metrics.log_shed.inc()
                return False
            self._queued_rows += rows
        self._queue.put(item)
        return True

    def health(self) -> LogHealth:
        """The log's state now (for ``/ready`` and ``/metrics``)."""
        queued, journal = self._queued_rows, self._journal_rows
        error = self._journal_error or self._store_error
        state: Literal["ok", "behind", "failing", "shedding"] = "ok"
        if time.monotonic() - self._refused_at < _SHED_MEMORY_SECONDS:
            state = "shedding"
        elif error is not None:
            state = "failing"
        elif journal > self._deliver_rows:
            state = "behind"
        return LogHealth(state, queued, journal, error)

    def close(self, timeout: float = 5.0) -> None:
        """Journal everything submitted, deliver what the store takes within ``timeout``
        seconds, and stop; what the store did not take stays journaled for the next start."""
        if self._journal_thread is None or self._store_thread is None:
            return
        self._queue.put(_STOP)
        self._wake.set()
        self._journal_thread.join()
        with self._backlog_changed:
            self._stop_delivery_at = time.monotonic() + timeout
            self._backlog_changed.notify_all()
        self._store_thread.join(timeout + 60)  # a transaction already sent may take a while
        if self._journal_rows:
            log.warning(
                "prediction log: %d rows stay journaled in %s (the store did not take them: "
                "%s); the next start replays them",
                self._journal_rows,
                self._dir,
                self._store_error,
            )
        self._journal_thread = self._store_thread = None
        if self._lock_fh is not None:
            self._lock_fh.close()  # releases the flock: another process may adopt what is left
        self.store.close()

    # -- the journal thread -----------------------------------------------------------------------

    def _journal_loop(self) -> None:
        pending: list[bytes] = []  # journal lines (JSON arrays of rows) of the next segment
        pending_rows = 0
        stopping = False
        while True:
            if not stopping:
                # One wake-up per flush interval (or when close() asks), taking everything
                # queued at once. Blocking on the queue instead woke this thread at every
                # request, and each wake-up took the GIL from the event loop in the middle of
                # the next request (measured: a third of /predict's time, docs/serving.md).
                self._wake.wait(self._retry_seconds if pending else self._flush_seconds)
            entries: list[_Entry] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, ScoredBatch):  # a large batch: its lines are made here
                    try:
                        item = self._entry(item)
                    except Exception:  # the contract makes this unreachable; keep the rest
                        self._lost(item)
                        continue
                entries.append(item)
            self._count(entries)
            failed = False
            for entry in entries:
                pending.append(entry.line)
                pending_rows += entry.rows
                if pending_rows >= self._batch_rows and not failed:
                    failed = not self._keep(pending, pending_rows)
                    if not failed:
                        self._release(pending_rows)
                        pending, pending_rows = [], 0
            if pending and not failed and self._keep(pending, pending_rows):
                self._release(pending_rows)
                pending, pending_rows = [], 0
            self._metrics.log_queue.set(self._queued_rows)
            if stopping:
                for _ in range(3):  # the journal and the store both refused: last attempts
                    if not pending:
                        break
                    time.sleep(self._retry_seconds)
                    if self._keep(pending, pending_rows):
                        self._release(pending_rows)
                        pending, pending_rows = [], 0
                if pending:
                    self._give_up(pending_rows)
                    self._release(pending_rows)
                return

    def _entry(self, batch: ScoredBatch) -> _Entry:
        """The batch's journal line and what the metrics count of it."""
        line = orjson.dumps(self._rows(batch), option=_ORJSON)
        rows = len(batch.proba)
        return _Entry(line, rows, batch.role, batch.model_version, batch.proba, batch.decisions)

    def _lost(self, batch: ScoredBatch) -> None:
        log.exception("prediction log: a batch could not be serialised: lost")
        self._metrics.log_errors.inc()
        self._metrics.log_lost_rows.inc(len(batch.proba))
        self._release(len(batch.proba))

    def _count(self, entries: list[_Entry]) -> None:
        """The entries' rows in /metrics: once per role and version, not per request."""
        groups: dict[tuple[str, str], list[_Entry]] = {}
        for entry in entries:
            groups.setdefault((entry.role, entry.version), []).append(entry)
        for (role, version), group in groups.items():
            proba = np.concatenate([e.proba for e in group])
            self._metrics.role_rows.labels(role, version).inc(len(proba))
            if role != SHADOW_ROLE:  # a shadow score was never answered: not served
                decisions = np.concatenate([e.decisions for e in group])
                self._metrics.observe_scores(version, proba, decisions)

    def _keep(self, pending: list[bytes], rows: int) -> bool:
        """Journal the batches (or, if the disk refuses, store them directly); True if kept."""
        assert self._dir is not None
        seq = next(self._seq)
        path = self._dir / f"n-{seq:012d}-{rows}.jsonl"
        tmp = path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(b"\n".join(pending))
            tmp.rename(path)  # a segment is whole or absent, even after kill -9
        except Exception as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._failed("journal", exc)
            try:
                self.store.insert_rows(_payload(pending).decode())
            except Exception as store_exc:
                self._failed("store", store_exc)
                return False
            self._metrics.log_rows.inc(rows)
            return True
        self._journal_error = None
        with self._backlog_changed:
            self._backlog.append(_Segment(path, rows))
            self._journal_rows += rows
            self._metrics.log_journal.set(self._journal_rows)
            self._backlog_changed.notify_all()
        return True

    def _give_up(self, rows: int) -> None:
        log.error(
            "prediction log: %d acknowledged rows LOST: neither the journal (%s) nor the store "
            "(%s) took them at shutdown",
            rows,
            self._journal_error,
            self._store_error,
        )
        self._metrics.log_lost_rows.inc(rows)

    def _release(self, rows: int) -> None:
        with self._counts:
            self._queued_rows -= rows

    def _rows(self, batch: ScoredBatch) -> list[tuple[Any, ...]]:
        """Rows as tuples in the store's ``ROW_COLUMNS`` order."""
        at = self.store.timestamp(batch.logged_at)
        if len(batch.ids) == 1:  # the common request, in the request: no lists of one
            (customer,) = batch.ids
            unseen_one = batch.unseen[0] if batch.unseen else None
            return [
                (
                    at,
                    batch.request_id,
                    batch.model_version,
                    None if customer is None else self.store.hash_id(customer),
                    {c: v[0] for c, v in batch.columns.items()},
                    float(batch.proba[0]),
                    bool(batch.decisions[0]),
                    batch.latency_ms,
                    unseen_one or None,
                    batch.role,
                )
            ]
        hashes = self.store.hash_ids(batch.ids)
        proba = np.asarray(batch.proba).tolist()
        decisions = np.asarray(batch.decisions).tolist()
        unseen = batch.unseen
        names = list(batch.columns)
        values = zip(*(batch.columns[c] for c in names), strict=True)
        features = [dict(zip(names, row, strict=True)) for row in values]
        return [
            (
                at,
                batch.request_id,
                batch.model_version,
                hashes[i],
                features[i],
                proba[i],
                decisions[i],
                batch.latency_ms,
                unseen[i] if unseen and unseen[i] else None,
                batch.role,
            )
            for i in range(len(proba))
        ]

    # -- the store thread -------------------------------------------------------------------------

    def _store_loop(self) -> None:
        while True:
            with self._backlog_changed:
                while not self._backlog and self._stop_delivery_at is None:
                    self._backlog_changed.wait()
                if not self._backlog:
                    return
                if self._stop_delivery_at and time.monotonic() > self._stop_delivery_at:
                    return
                chunk = [self._backlog[0]]
                for segment in itertools.islice(self._backlog, 1, None):
                    if sum(s.rows for s in chunk) + segment.rows > self._deliver_rows:
                        break
                    chunk.append(segment)
            if self._deliver(chunk):
                continue
            with self._backlog_changed:  # wait before retrying; close() wakes us up
                self._backlog_changed.wait(self._retry_seconds)

    def _deliver(self, chunk: list[_Segment]) -> bool:
        """One transaction for the chunk's segments; delete them once committed."""
        try:
            payload = _payload([line for s in chunk for line in s.path.read_bytes().split(b"\n")])
            self.store.insert_rows(payload.decode())
        except Exception as exc:
            self._failed("store", exc)
            return False
        self._store_error = None
        rows = sum(s.rows for s in chunk)
        for segment in chunk:
            with contextlib.suppress(OSError):
                segment.path.unlink()
        with self._backlog_changed:
            for _ in chunk:
                self._backlog.popleft()
            self._journal_rows -= rows
            self._metrics.log_journal.set(self._journal_rows)
        self._metrics.log_rows.inc(rows)
        return True

    def _failed(self, where: str, exc: BaseException) -> None:
        message = f"{where}: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        if where == "journal":
            self._journal_error = message
        else:
            self._store_error = message
        log.error("prediction log write failed (%s)", message)
        self._metrics.log_errors.inc()

    # -- the journal directory --------------------------------------------------------------------

    def _claim_journal(self) -> Path:
        """This process's own folder under the journal root (held by a flock while it lives),
        with the segments of folders whose owner is gone moved in first, oldest first."""
        root = self.journal_root
        mine = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        mine.mkdir(parents=True)
        self._lock_fh = (mine / _LOCK).open("wb")
        fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        adopted = 0
        for other in sorted(p for p in root.iterdir() if p.is_dir() and p != mine):
            with (other / _LOCK).open("ab") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                for segment in sorted(other.glob("*.jsonl")):
                    target = mine / f"a-{other.name}-{segment.name}"
                    segment.rename(target)
                    rows = int(segment.stem.rsplit("-", 1)[1])
                    self._backlog.append(_Segment(target, rows))
                    adopted += rows
                for leftover in other.iterdir():
                    leftover.unlink()
                other.rmdir()
        self._journal_rows = adopted
        self._metrics.log_journal.set(adopted)
        if adopted:
            log.warning("prediction log: replaying %d journaled rows of an earlier run", adopted)
        return mine


def _payload(lines: Sequence[bytes]) -> bytes:
    """One JSON array of every row in ``lines`` (each a JSON array of rows)."""
    return b"[" + b",".join(line[1:-1] for line in lines if len(line) > 2) + b"]"
