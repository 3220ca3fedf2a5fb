"""What one running service holds: the served model (swapped atomically), the log, the metrics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from churn.config.params import Params
from churn.config.settings import Settings
from churn.prediction_store import PredictionStore
from churn.scoring import UnseenLevels
from serving.live import LiveChallenger
from serving.metrics import ServingMetrics
from serving.model import (
    LOAD_TIMEOUT_FACTOR,
    RegistryUnavailable,
    ServedModel,
    champion_record,
    load_from_registry,
    load_initial,
    rules_model,
    with_timeout,
)
from serving.predlog import PredictionLog
from serving.swap_checks import NotRunnable, Refusal

log = logging.getLogger(__name__)


@dataclass
class ReloadResult:
    """What a registry check did."""

    outcome: str  # "unchanged" | "swapped" | "failed" | "refused"
    previous: str | None
    current: str | None
    detail: str = ""


class ServingState:
    """Shared by every request of one app. ``model`` is replaced whole, never mutated.

    A request reads ``state.model`` once and uses that object to the end, so a swap in the
    middle of a request cannot mix two models; the old one is garbage-collected afterwards.
    """

    def __init__(self, settings: Settings, params: Params, api_key: str | None, hash_key: bytes):
        self.settings = settings
        self.params = params
        self.dataset = params.dataset
        # The model's input columns, once (the config's property builds the list at each call).
        self.feature_columns: tuple[str, ...] = tuple(params.dataset.feature_columns)
        self.api_key = api_key
        self.metrics = ServingMetrics()
        store = PredictionStore(
            settings.prediction_log_url, settings.labels_url, hash_key, create=True
        )
        self.predlog = PredictionLog(
            store,
            self.metrics,
            journal_dir=settings.prediction_journal_dir,
            max_queued_rows=settings.prediction_log_max_queued_rows,
            max_journal_rows=settings.prediction_journal_max_rows,
        )
        self.unseen = UnseenLevels(params.dataset)
        # What answers a request the served model fails on: its own fallback rules, else the
        # prior-rate rule (replaced with the model, in ``set_model``).
        self.rules = rules_model(settings, params, "per-request fallback")
        self.model: ServedModel | None = None
        # The challenger beside the champion (params.yaml live); None when live.mode is off,
        # so /predict pays nothing for it.
        self.live = (
            LiveChallenger(settings, params, self.metrics, self.predlog)
            if params.live.mode != "off"
            else None
        )
        self.last_check: dict[str, Any] = {}
        # The registry's champion this service will not serve (a swap check refused it), while
        # the registry names it: /ready's ``refused``, the metrics' refused gauge.
        self.refused: Refusal | None = None
        # Versions (and runs) the probe refused: not downloaded again at every poll.
        self._probe_refused: dict[tuple[str, str | None], Refusal] = {}
        # Refusals already logged at WARNING: each refused version is logged once.
        self._warned: set[tuple[str, str | None, str]] = set()
        self._lock = asyncio.Lock()

    def set_model(self, model: ServedModel) -> None:
        if model.source == "rules":
            self.rules = model
        else:
            self.rules = rules_model(
                self.settings, self.params, f"v{model.version} failed on a request", model.rules
            )
        self.model = model
        self.metrics.set_model(
            model.version, model.source, model.scorer.kind, self.rules.rules, model.one_row_ms
        )

    def set_refused(self, refusal: Refusal | None) -> None:
        """Name (or clear) the registry's champion that is not served; a new refusal is counted
        and logged at WARNING once per version, however many polls see it again."""
        self.refused = refusal
        self.metrics.set_refused(refusal)
        if refusal is None:
            return
        key = (refusal.version, refusal.run_id, refusal.check)
        if key in self._warned:
            return
        self._warned.add(key)
        self.metrics.swaps_refused.labels(refusal.check).inc()
        current = self.model
        log.warning(
            "not serving v%s (%s check): %s; still serving %s",
            refusal.version,
            refusal.check,
            refusal.reason,
            f"v{current.version} ({current.source})" if current is not None else "nothing yet",
        )

    async def load_initial(self) -> None:
        """Start-up load (registry, else cache, else rules) without blocking the event loop."""
        model = await asyncio.to_thread(load_initial, self.settings, self.params)
        if self.live is not None:  # before the champion is set: /ready means both are loaded
            status = await asyncio.to_thread(self.live.load, model.version)
            log.info("live %s: %s", self.live.mode, status)
        self.set_model(model)
        if model.refused is not None:
            self._warned.add((model.refused.version, model.refused.run_id, model.refused.check))
            self.metrics.swaps_refused.labels(model.refused.check).inc()
            if model.refused.check == "probe":
                self._probe_refused[(model.refused.version, model.refused.run_id)] = model.refused
        self.refused = model.refused
        self.metrics.set_refused(model.refused)
        if model.source == "none":
            log.warning("serving nothing (/predict answers 503): %s", model.degraded_reason)
            return
        log.info(
            "serving %s v%s (%s, scorer %s); fallback: %s",
            model.name,
            model.version,
            model.source,
            model.scorer.kind,
            self.rules.rules_summary,
        )

    async def reload_challenger(self) -> None:
        """Load, keep or drop the challenger (live.mode shadow or canary) against the champion."""
        if self.live is None:
            return
        champion = self.model.version if self.model is not None else None
        status = await asyncio.to_thread(self.live.load, champion)
        if status != "unchanged":
            log.info("live %s: %s", self.live.mode, status)

    async def reload(self) -> ReloadResult:
        """Check the registry once; load and swap in the champion when it changed (and the
        challenger, when live.mode runs one)."""
        result = await self._reload_champion()
        await self.reload_challenger()
        return result

    async def _reload_champion(self) -> ReloadResult:
        async with self._lock:
            current = self.model
            previous = current.version if current else None
            try:
                timeout = self.settings.registry_timeout_seconds
                champion = await asyncio.to_thread(
                    with_timeout, champion_record, timeout, self.settings
                )
                version = champion.version
                if current is not None and current.source == "registry" and version == previous:
                    self.set_refused(None)
                    return self._checked(ReloadResult("unchanged", previous, previous))
                known = self._probe_refused.get((str(version), champion.run_id))
                if known is not None:  # its artefact does not change: not downloaded again
                    raise NotRunnable(known)
                new = await asyncio.to_thread(
                    with_timeout,
                    load_from_registry,
                    LOAD_TIMEOUT_FACTOR * timeout,
                    self.settings,
                    self.params,
                    champion,
                )
            except NotRunnable as exc:  # the current model stays; checked again next poll
                refusal = exc.refusal
                if refusal.check == "probe":
                    self._probe_refused[(refusal.version, refusal.run_id)] = refusal
                self.set_refused(refusal)
                return self._checked(ReloadResult("refused", previous, previous, refusal.reason))
            except (RegistryUnavailable, TimeoutError) as exc:
                detail = str(exc) or "registry did not answer in time"
                return self._checked(ReloadResult("failed", previous, previous, detail))
            except Exception as exc:  # a broken new version leaves the current one in place
                log.exception("loading the new champion failed")
                return self._checked(ReloadResult("failed", previous, previous, repr(exc)))
            self.set_model(new)
            self.set_refused(None)
            log.info(
                "swapped model v%s -> v%s; fallback: %s",
                previous,
                new.version,
                self.rules.rules_summary,
            )
            return self._checked(ReloadResult("swapped", previous, new.version))

    def _checked(self, result: ReloadResult) -> ReloadResult:
        self.metrics.reloads.labels(result.outcome).inc()
        self.last_check = {"outcome": result.outcome, "detail": result.detail}
        return result

    async def poll_registry(self) -> None:
        """Check the registry every ``reload_interval_seconds`` until cancelled."""
        interval = self.settings.reload_interval_seconds
        while True:
            await asyncio.sleep(interval)
            await self.reload()
