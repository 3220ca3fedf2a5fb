"""The challenger beside the champion (``live`` in params.yaml): its loading, the canary split
and the shadow scorer.

Only built when ``live.mode`` is ``shadow`` or ``canary``: with ``off`` the service holds no
challenger and ``/predict`` does nothing more than before (``ServingState.live`` is None).

* **shadow**: ``/predict`` answers with the champion, logs its rows, then hands the request's
  columns to a bounded queue (``live.shadow_queue`` requests) and returns. A thread scores them
  with the challenger and logs the rows with role ``shadow``; a full queue, a failing challenger
  or a refused log write is counted (``churn_shadow_failures_total``) and logged, never seen by
  the client.
* **canary**: records whose keyed id hash falls below ``live.canary_share``
  (``churn.release.live.in_canary``) are scored by the challenger and logged with role
  ``challenger``;
  the others, and records without an id, by the champion. A challenger that fails on a request
  leaves its records to the champion (``churn_canary_fallback_total``).

The challenger is the version the ``challenger`` alias names, when the gate approved it and it
is not the champion (after a promotion the alias still names the new champion: nothing to
compare). It is followed like the champion: every registry check loads a new one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

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

_STOP = object()


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

    # -- shadow --------------------------------------------------------------------------------

    def start(self) -> None:
        if self.mode == SHADOW:
            self._thread = threading.Thread(
                target=self._shadow_loop, name="shadow-challenger", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued (within ``timeout``), then stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("shadow: the queue did not drain at shutdown; its requests are dropped")
        self._thread.join(timeout)

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
