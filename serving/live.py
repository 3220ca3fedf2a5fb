"""The challenger beside the champion (``live`` in params.yaml): its loading, the canary split
and the shadow scorer.

Only built when ``live.mode`` is ``shadow`` or ``canary``: with ``off`` the service holds no
challenger and ``/predict`` does nothing more than before (``ServingState.live`` is None).

* **shadow**: ``/predict`` answers with the champion, logs its rows, then hands the request's
  columns to a bounded queue (``live.shadow_queue`` requests) and returns. A thread scores them
  with the challenger and logs the rows with role ``shadow``; a full queue, a failing challenger
  or a refused log write is counted (``churn_shadow_failures_total``) and logged (a failing
  challenger at each request; drops as one WARNING per ``DROP_LOG_SECONDS`` at most, with the
  count since the last line), never seen by the client.
* **canary**: records whose keyed id hash falls below ``live.canary_share``
  (``churn.release.live.in_canary``) are scored by the challenger and logged with role
  ``challenger``;
  the others, and records without an id, by the champion. A challenger that fails on a request
  leaves its records to the champion (``churn_canary_fallback_total``).

The challenger never scores on the event loop, whatever the request's size: the shadow in its
thread, the canary's records (and their reasons) in a bounded executor of its own
(:data:`CANARY_THREADS` threads, :meth:`LiveChallenger.run`), so a slow challenger makes its own
customers wait, not the champion's.

The challenger is the version the ``challenger`` alias names, when the gate approved it and it
is not the champion (after a promotion the alias still names the new champion: nothing to
compare). It is followed like the champion: every registry check loads a new one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np

from churn.champion import ChampionInfo
from churn.config.params import Params
from churn.config.settings import Settings
from churn.prediction_store import SHADOW_ROLE
from churn.release import registry, tracking
from churn.release.live import CANARY, SHADOW, in_canary
from serving.metrics import ServingMetrics
from serving.model import LOAD_TIMEOUT_FACTOR, ServedModel, load_from_registry, with_timeout
from serving.predlog import PredictionLog, ScoredBatch

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP = object()
# Threads that score the canary's records: a bounded pool of its own, so a slow challenger
# neither blocks the event loop nor takes the threads the champion's large requests use.
CANARY_THREADS = 2
# Shadow drops (a full queue, a refused log write) are logged at most once per this many
# seconds, with the count since the last line: a flood of them must not flood the log.
DROP_LOG_SECONDS = 10.0


class NoChallenger(LookupError):
    """No version may run live as the challenger; the message says why."""


def approved_challenger(settings: Settings, champion_version: str | None) -> ChampionInfo:
    """The record of the version the ``challenger`` alias names, if it may run live.

    Raises:
        NoChallenger: no alias, a version the gate did not approve, or the champion itself.
    """
    client = tracking.connect(settings)
    try:
        version = registry.aliased_version(client, settings.model_name, registry.CHALLENGER)
    except LookupError as exc:
        raise NoChallenger(
            f"no {registry.CHALLENGER!r} version in the registry (`churn train --no-promote` "
            "registers one)"
        ) from exc
    number = str(version.version)
    if number == champion_version:
        raise NoChallenger(f"the challenger v{number} is the champion now: nothing to compare")
    decision = registry.RecordedDecision.from_version(version)
    if not decision.gate_approved:
        raise NoChallenger(
            f"the challenger v{number} was not approved by the gate (decision "
            f"{decision.decision!r}: {decision.reason or 'none recorded'}): not run live"
        )
    return ChampionInfo.from_version(version)


class LiveChallenger:
    """The challenger, the canary split and the shadow queue of one service (see the module)."""

    def __init__(
        self, settings: Settings, params: Params, metrics: ServingMetrics, predlog: PredictionLog
    ) -> None:
        self.mode = params.live.mode
        self.share = params.live.canary_share
        self.params = params
        # The challenger's own cache folder (model@challenger) and alias, by the same loader.
        self.settings = settings.model_copy(update={"served_alias": registry.CHALLENGER})
        self.metrics = metrics
        self.predlog = predlog
        self.model: ServedModel | None = None
        self.status = "not loaded yet"
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=params.live.shadow_queue)
        self._thread: threading.Thread | None = None
        self._executor = (
            ThreadPoolExecutor(CANARY_THREADS, thread_name_prefix="canary-challenger")
            if self.mode == CANARY
            else None
        )
        self.drops = DropLog(DROP_LOG_SECONDS)

    # -- loading -------------------------------------------------------------------------------

    def load(self, champion_version: str | None) -> str:
        """Load (or keep, or drop) the challenger; returns what happened, for the log. Never
        raises: a challenger that cannot load leaves the service serving the champion alone."""
        timeout = self.settings.registry_timeout_seconds
        try:
            record = with_timeout(approved_challenger, timeout, self.settings, champion_version)
        except NoChallenger as exc:
            return self._set(None, str(exc))
        except Exception as exc:  # the registry is down: keep what we have
            return f"challenger not checked ({type(exc).__name__}: {str(exc)[:200]})"
        current = self.model
        if current is not None and current.version == str(record.version):
            return "unchanged"
        try:
            model = with_timeout(
                load_from_registry,
                LOAD_TIMEOUT_FACTOR * timeout,
                self.settings,
                self.params,
                record,
            )
        except Exception as exc:
            log.exception("loading the challenger v%s failed", record.version)
            return self._set(None, f"v{record.version} failed to load ({type(exc).__name__})")
        return self._set(model, f"v{model.version} in {self.mode}")

    def _set(self, model: ServedModel | None, status: str) -> str:
        before = self.model.version if self.model else None
        self.model = model
        self.status = status
        self.metrics.challenger_info.clear()
        if model is not None:
            self.metrics.challenger_info.labels(version=model.version, mode=self.mode).set(1)
        after = model.version if model else None
        if before != after:
            log.info("live %s: challenger v%s -> v%s (%s)", self.mode, before, after, status)
        return status

    def describe(self) -> dict[str, Any]:
        """``/version``'s ``live`` block."""
        model = self.model
        return {
            "mode": self.mode,
            "canary_share": self.share if self.mode == CANARY else None,
            "challenger": None if model is None else model.describe(),
            "status": self.status,
        }

    # -- canary --------------------------------------------------------------------------------

    def canary_rows(self, hashes: Sequence[str | None]) -> list[int]:
        """Indices of the records the challenger answers (empty without a challenger)."""
        if self.model is None:
            return []
        share = self.share
        return [i for i, h in enumerate(hashes) if in_canary(h, share)]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the canary's executor, off the event loop (the challenger's scores
        and reasons of a canary request)."""
        if self._executor is None:  # a bug: only canary mode scores on the request path
            raise RuntimeError(f"live.mode {self.mode!r} has no canary executor")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- shadow --------------------------------------------------------------------------------

    def start(self) -> None:
        if self.mode == SHADOW:
            self._thread = threading.Thread(
                target=self._shadow_loop, name="shadow-challenger", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued (within ``timeout``), then stop the thread (and the canary's
        executor); the shadow drops not logged yet are logged."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("shadow: the queue did not drain at shutdown; its requests are dropped")
        self._thread.join(timeout)
        self.drops.flush()

    def shadow(
        self, request_id: str, ids: Sequence[str | None], columns: dict[str, list[Any]], n: int
    ) -> None:
        """Queue a request for the challenger (never blocks, never raises)."""
        if self.model is None:
            return
        try:
            self._queue.put_nowait((request_id, ids, columns, n))
        except queue.Full:
            self.metrics.shadow_failures.labels("queue_full").inc()
            self.drops.note("queue_full")

    def _shadow_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._score_shadow(*item)
            except Exception:  # never let one request stop the shadow
                log.exception("shadow: a request could not be scored")
                self.metrics.shadow_failures.labels("model_error").inc()

    def _score_shadow(
        self, request_id: str, ids: Sequence[str | None], columns: dict[str, Any], n: int
    ) -> None:
        model = self.model
        if model is None:
            return
        started = time.perf_counter()
        try:
            proba = model.scorer.score(columns, n)
            if proba.shape != (n,) or not np.all(np.isfinite(proba)):
                raise ValueError(f"the challenger returned {proba.shape} scores, or non-finite")
        except Exception:
            log.exception("shadow: challenger v%s failed on request %s", model.version, request_id)
            self.metrics.shadow_failures.labels("model_error").inc()
            return
        kept = self.predlog.submit(
            ScoredBatch(
                logged_at=datetime.now(UTC),
                request_id=request_id,
                model_version=model.version,
                ids=ids,
                columns=columns,
                proba=proba,
                decisions=proba >= model.threshold,
                latency_ms=(time.perf_counter() - started) * 1e3,
                unseen=None,
                role=SHADOW_ROLE,
            )
        )
        if not kept:
            self.metrics.shadow_failures.labels("log_full").inc()
            self.drops.note("log_full")


class DropLog:
    """Shadow drops, logged as one WARNING per ``every`` seconds at most: the first drop at
    once, later ones counted and said in the next line (or at shutdown, :meth:`flush`).

    Called from the event loop (a full queue) and the shadow thread (a refused log write).
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._first = 0.0  # the first drop counted since the last line
        self._last: float | None = None  # when the last line was written

    def note(self, reason: str) -> None:
        """One request the shadow dropped, for ``reason`` (``queue_full``, ``log_full``)."""
        now = time.monotonic()
        with self._lock:
            if not self._counts:
                self._first = now
            self._counts[reason] = self._counts.get(reason, 0) + 1
            if self._last is not None and now - self._last < self.every:
                return
            line = self._take(now)
        log.warning("%s", line)

    def flush(self) -> None:
        """Log the drops counted since the last line, if any."""
        with self._lock:
            line = self._take(time.monotonic()) if self._counts else None
        if line is not None:
            log.warning("%s", line)

    def _take(self, now: float) -> str:
        counts, self._counts, self._last = self._counts, {}, now
        total = sum(counts.values())
        why = ", ".join(f"{n} {_DROP_REASONS[r]}" for r, n in sorted(counts.items()))
        return (
            f"shadow: dropped {total} request{'s' if total != 1 else ''} in "
            f"{now - self._first:.1f} s ({why}); the answers were not affected "
            "(churn_shadow_failures_total counts them; raise live.shadow_queue, or see the "
            "prediction log's state on /ready)"
        )


_DROP_REASONS = {
    "queue_full": "with the shadow queue full (live.shadow_queue)",
    "log_full": "refused by the prediction log",
}
