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
* A chunk the store refuses while it still takes an empty insert (the store is up: the rows
  are the problem) is split in halves, tried and rolled back, until the rows it refuses as data
  (SQLSTATE classes 22 and 23: ``DataError``, ``IntegrityError``) and the lines that are not
  JSON are found: they go to the dead letters (``serving.journal``) with the store's reason,
  the rest is stored in one transaction. A store that is down, or refuses for any other
  reason, is retried as before: nothing is dead-lettered for it.
* ``submit`` also refuses when the journal holds ``max_journal_rows``: the disk is bounded,
  and what was acknowledged is kept.
* Rows of customers ``churn forget`` erased while this process owned them (its tombstones) are
  dropped when delivered.

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
import shutil
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
import sqlalchemy as sa

from churn.prediction_store import CHAMPION_ROLE, SHADOW_ROLE, PredictionStore
from serving.journal import (
    KNOWN_FILES,
    OWNER_LOCK,
    PROCESS_FOLDER,
    STRAY,
    DeadLetter,
    DeadLetters,
    Tombstones,
    drop_forgotten,
    segment_rows,
    store_reason,
)
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

_ORJSON = orjson.OPT_SERIALIZE_NUMPY
_STOP = object()
_LOCK = OWNER_LOCK
# The errors by which a store names the rows as the problem (SQLSTATE 22 data exception, 23
# integrity constraint violation): only these send a row to the dead letters.
_DATA_ERRORS = (sa.exc.DataError, sa.exc.IntegrityError)
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
    journal_max_rows: int = 0
    dead_letters: int = 0  # rows in the dead-letter file (this store's journal)
    last_dead_letter: str | None = None  # the store's reason for the last one

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queued_rows": self.queued_rows,
            "journal_rows": self.journal_rows,
            "journal_max_rows": self.journal_max_rows,
            "dead_letters": self.dead_letters,
            "last_dead_letter": self.last_dead_letter,
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
        journal_dir: where segments wait for the store (in a folder per store identity,
            without credentials: ``serving.journal``); default ``store.journal_dir()``.
        max_queued_rows: rows waiting in memory above which ``submit`` refuses.
        max_journal_rows: rows journaled (plus queued) above which ``submit`` refuses.
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
        max_journal_rows: int = 2_000_000,
        flush_seconds: float = 0.1,
        batch_rows: int = 2000,
        deliver_rows: int = 20_000,
        retry_seconds: float = 1.0,
        inline_rows: int = 32,
    ) -> None:
        self.store = store
        self._metrics = metrics
        self._journal_dir = journal_dir or store.journal_dir()
        self.journal_root = self._journal_dir / store.journal_key()
        self._max_queued_rows = max_queued_rows
        self._max_journal_rows = max_journal_rows
        self._dead_letters = DeadLetters(self.journal_root)
        self._dead_count = 0
        self._last_dead: str | None = None
        self._tombstones = Tombstones(self.journal_root)
        self._shed_reason: str | None = None
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
                return self._shed(None)
            if self._journal_rows + self._queued_rows + rows > self._max_journal_rows:
                return self._shed(
                    f"journal full: {self._journal_rows} rows journaled, the bound is "
                    f"{self._max_journal_rows} (CHURN_PREDICTION_JOURNAL_MAX_ROWS)"
                )
            self._queued_rows += rows
        self._queue.put(item)
        return True

    def _shed(self, reason: str | None) -> bool:
        self._refused_at = time.monotonic()
        self._shed_reason = reason
        self._metrics.log_shed.inc()
        return False

    def health(self) -> LogHealth:
        """The log's state now (for ``/ready`` and ``/metrics``)."""
        queued, journal = self._queued_rows, self._journal_rows
        error = self._journal_error or self._store_error
        state: Literal["ok", "behind", "failing", "shedding"] = "ok"
        if time.monotonic() - self._refused_at < _SHED_MEMORY_SECONDS:
            state = "shedding"
            error = self._shed_reason or error
        elif error is not None:
            state = "failing"
        elif journal > self._deliver_rows:
            state = "behind"
        return LogHealth(
            state,
            queued,
            journal,
            error,
            self._max_journal_rows,
            self._dead_count,
            self._last_dead,
        )

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
                with self._tombstones.shared() as forgotten:
                    lines = drop_forgotten(pending, forgotten)[0] if forgotten else pending
                    self.store.insert_rows(_payload(lines).decode())
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
        """One transaction for the chunk's segments (the rows the store refuses as data set
        aside in the dead letters); delete them once committed.

        The tombstones' shared lock is held from reading them until the commit (``churn
        forget`` waits for it before erasing from the store).
        """
        with self._tombstones.shared() as forgotten:
            lines: list[bytes] = []
            try:
                lines = [line for s in chunk for line in _segment_bytes(s).split(b"\n")]
                if forgotten:
                    lines, dropped = drop_forgotten(lines, forgotten)
                    if dropped:
                        log.info("prediction log: %d rows of erased customers dropped", dropped)
                self.store.insert_rows(_payload(lines).decode())
            except Exception as exc:
                if not lines:  # a segment could not be read (the disk)
                    self._failed("journal", exc)
                    return False
                if not self._set_aside(lines, exc):
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

    def _set_aside(self, lines: list[bytes], exc: BaseException) -> bool:
        """After a refused chunk: if the store is up, find the rows it refuses as data (halves
        tried and rolled back), dead-letter them, store the rest in one transaction; True when
        done. False (the chunk waits and is retried) when the store is down, refuses an empty
        insert, or refuses a single row for another reason than its data."""
        try:
            self.store.insert_rows("[]")  # the store is up and has its table
        except Exception:
            self._failed("store", exc)
            return False
        rows: list[bytes] = []
        letters: list[DeadLetter] = []
        for line in lines:
            if len(line) <= 2:
                continue
            try:
                parsed = orjson.loads(line)
                if not isinstance(parsed, list):
                    raise TypeError(f"a JSON {type(parsed).__name__}, not an array of rows")
            except (orjson.JSONDecodeError, TypeError) as bad:
                letters.append(DeadLetter.of_line(line, f"unreadable journal line: {bad}"))
                continue
            rows.extend(orjson.dumps(row) for row in parsed)
        try:
            refused = self._refused(rows, 0, len(rows))
            for index, reason in refused:
                letters.append(DeadLetter.of_row(rows[index], reason))
            self._dead_letters.append(letters)  # on disk before the segments are deleted
            set_aside = {index for index, _ in refused}
            good = [row for i, row in enumerate(rows) if i not in set_aside]
            self.store.insert_rows((b"[" + b",".join(good) + b"]").decode())
        except Exception as failed:  # the dead-letter file (the disk) or the store
            self._failed("journal" if isinstance(failed, OSError) else "store", failed)
            return False
        if letters:
            log.error(
                "prediction log: %d rows the store refused set aside in %s (%s); %d stored "
                "(churn dead-letters list)",
                len(letters),
                self._dead_letters.path,
                letters[-1].reason,
                len(rows) - len(refused),
            )
            self._dead_count += len(letters)
            self._last_dead = letters[-1].reason
            self._metrics.log_dead_lettered.inc(len(letters))
            self._metrics.log_dead_letters.set(self._dead_count)
        return True

    def _refused(self, rows: list[bytes], start: int, end: int) -> list[tuple[int, str]]:
        """The rows in ``rows[start:end]`` the store refuses as data, with its reason (each
        half tried in a transaction rolled back). Raises what the store said when it refuses
        one row for another reason (it is not the row's fault: the chunk waits)."""
        if end <= start:
            return []
        try:
            self.store.insert_rows(
                (b"[" + b",".join(rows[start:end]) + b"]").decode(), commit=False
            )
            return []
        except Exception as exc:
            if end - start > 1:
                middle = (start + end) // 2
                return self._refused(rows, start, middle) + self._refused(rows, middle, end)
            if not isinstance(exc, _DATA_ERRORS):
                raise
            return [(start, store_reason(exc))]

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
        with the segments of folders whose owner is gone moved in first, oldest first.

        A journal written under the key before issue #26 (the whole URL's digest) is moved
        under the store's identity first. Whatever else is in the root or in a dead process's
        folder (not a segment, a lock or a dead-letter file) is moved into ``stray/`` with a
        WARNING: start-up never fails on it. Folders of dead processes are removed once
        emptied.
        """
        root = self.journal_root
        self._migrate_legacy()
        mine = root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        mine.mkdir(parents=True)
        self._lock_fh = (mine / _LOCK).open("wb")
        fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        adopted = 0
        for other in sorted(root.iterdir()):
            if other == mine or other.name in KNOWN_FILES or other.name == STRAY:
                continue
            if not (other.is_dir() and PROCESS_FOLDER.match(other.name)):
                _stray(root, other, "not a journal folder")
                continue
            with (other / _LOCK).open("ab") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                for entry in sorted(other.iterdir()):
                    rows = segment_rows(entry) if entry.is_file() else None
                    if entry.name == _LOCK:
                        continue
                    if entry.suffix == ".tmp" and entry.is_file():
                        entry.unlink()  # a segment cut by kill -9 before its rename
                        continue
                    if rows is None:
                        _stray(root, entry, f"not a segment of {other.name}")
                        continue
                    target = mine / f"a-{other.name}-{entry.name}"
                    entry.rename(target)
                    self._backlog.append(_Segment(target, rows))
                    adopted += rows
                with contextlib.suppress(OSError):
                    (other / _LOCK).unlink()
                    other.rmdir()
        self._journal_rows = adopted
        self._metrics.log_journal.set(adopted)
        if adopted:
            log.warning("prediction log: replaying %d journaled rows of an earlier run", adopted)
        letters = self._dead_letters.read()
        self._dead_count = len(letters)
        self._last_dead = letters[-1].reason if letters else None
        self._metrics.log_dead_letters.set(self._dead_count)
        self._metrics.log_journal_max.set(self._max_journal_rows)
        if letters:
            log.warning(
                "prediction log: %d dead letters in %s (churn dead-letters list)",
                len(letters),
                self._dead_letters.path,
            )
        return mine

    def _migrate_legacy(self) -> None:
        """Move a backlog journaled under the URL's digest (before issue #26) under the store's
        identity: its process folders and dead letters join this store's root."""
        legacy = self._journal_dir / self.store.legacy_journal_key()
        if legacy == self.journal_root or not legacy.is_dir():
            return
        self.journal_root.mkdir(parents=True, exist_ok=True)
        for entry in legacy.iterdir():
            target = self.journal_root / entry.name
            if entry.name == DeadLetters(legacy).path.name and target.exists():
                with target.open("ab") as fh:
                    fh.write(entry.read_bytes())
                entry.unlink()
            elif not target.exists():
                entry.rename(target)
        with contextlib.suppress(OSError):
            legacy.rmdir()
        log.warning(
            "prediction log: moved the journal of %s (the name before issue #26) to %s",
            legacy,
            self.journal_root,
        )


def _stray(root: Path, entry: Path, why: str) -> None:
    """Move a foreign file or folder out of the journal's way, into ``stray/``."""
    target = root / STRAY / f"{entry.name}-{uuid.uuid4().hex[:6]}"
    target.parent.mkdir(exist_ok=True)
    try:
        shutil.move(str(entry), str(target))
    except OSError as exc:
        log.warning(
            "prediction log: skipped %s (%s) and could not move it aside: %s", entry, why, exc
        )
        return
    log.warning("prediction log: skipped %s (%s): moved to %s", entry, why, target)


def _segment_bytes(segment: _Segment) -> bytes:
    """A segment's lines; nothing (said at ERROR) if someone removed it from the disk."""
    try:
        return segment.path.read_bytes()
    except FileNotFoundError:
        log.error(
            "prediction log: segment %s (%d rows) vanished from the disk",
            segment.path,
            segment.rows,
        )
        return b""


def _payload(lines: Sequence[bytes]) -> bytes:
    """One JSON array of every row in ``lines`` (each a JSON array of rows)."""
    return b"[" + b",".join(line[1:-1] for line in lines if len(line) > 2) + b"]"
