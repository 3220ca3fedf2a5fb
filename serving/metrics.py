"""Prometheus metrics of one service instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from churn.scoring.fallback_rules import FallbackRules

# Latency buckets (seconds) sized for a sub-millisecond to tens-of-milliseconds service.
_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_PROBABILITY = tuple(round(0.1 * i, 1) for i in range(1, 11))
# Answered requests kept before they are counted (ServingMetrics.count_request): one pass of
# counting on the event loop every 1,000 requests, and at each scrape.
_COUNT_EVERY = 1000


class ServingMetrics:
    """Every metric ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "churn_http_requests", "HTTP requests.", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "churn_http_request_duration_seconds",
            "Time to answer a request.",
            ["endpoint"],
            buckets=_LATENCY,
            registry=r,
        )
        self.probability = ArrayHistogram(
            "churn_prediction_probability",
            "Distribution of predicted churn probabilities.",
            _PROBABILITY,
            r,
        )
        self.predictions = Counter(
            "churn_predictions", "Scored records.", ["model_version", "decision"], registry=r
        )
        self.model_info = Gauge(
            "churn_model_info",
            "The served model (value 1): version, where it came from, which scorer serves it "
            "(compiled, predict_proba, pipeline, rules, prior-rate).",
            ["version", "source", "scorer"],
            registry=r,
        )
        self.scorer_one_row = Gauge(
            "churn_scorer_one_row_seconds",
            "The served scorer's median time for one row, measured when the model was loaded.",
            registry=r,
        )
        self.fallbacks = Counter(
            "churn_fallback",
            "Records answered by the fallback rules, by reason.",
            ["reason"],
            registry=r,
        )
        self.fallback_rules = Gauge(
            "churn_fallback_rules_info",
            "What answers when the model cannot (value 1): learned rules (kind 'rules', their "
            "test ROC AUC) or the prior-rate rule (kind 'prior-rate': one score for everyone).",
            ["kind", "test_roc_auc"],
            registry=r,
        )
        self.unseen = Counter(
            "churn_unseen_category",
            "Categorical values that are not a configured level, by column.",
            ["column"],
            registry=r,
        )
        self.reloads = Counter(
            "churn_model_reloads", "Registry checks, by outcome.", ["outcome"], registry=r
        )
        self.swaps_refused = Counter(
            "churn_model_swaps_refused",
            "Registry versions the service refused to serve, each counted once, by the check "
            "that refused it: lineage (another data set's schema), feature_code (fitted with "
            "feature code this service does not run), probe (a row of the request schema could "
            "not be scored). The current model kept answering.",
            ["check"],
            registry=r,
        )
        self.refused_info = Gauge(
            "churn_model_refused_info",
            "The registry's champion the service does not serve (value 1): version and check; "
            "absent when the registry's champion is served.",
            ["version", "check"],
            registry=r,
        )
        self.unanswered = Counter(
            "churn_predict_unanswered",
            "/predict requests answered 503 because nothing could score them, by reason: "
            "rules_error (the model and then the fallback rules failed), log_error (the prediction "
            "log could not take the rows), unservable (no model "
            "or rules this service can run), unexpected (a bug caught by the last-resort "
            "handler; its traceback is in the log).",
            ["reason"],
            registry=r,
        )
        self.log_rows = Counter(
            "churn_prediction_log_rows", "Rows written to the prediction log.", registry=r
        )
        self.log_errors = Counter(
            "churn_prediction_log_errors", "Failed prediction-log writes.", registry=r
        )
        self.log_queue = Gauge(
            "churn_prediction_log_queue",
            "Rows acknowledged and waiting in memory to be journaled.",
            registry=r,
        )
        self.log_journal = Gauge(
            "churn_prediction_log_journal_rows",
            "Rows journaled on local disk and waiting for the store.",
            registry=r,
        )
        self.log_state = Gauge(
            "churn_prediction_log_state",
            "The prediction log's state (value 1): ok, behind, failing or shedding.",
            ["state"],
            registry=r,
        )
        self.log_shed = Counter(
            "churn_prediction_log_shed",
            "Requests refused with a 503 because the prediction log's queue was full.",
            registry=r,
        )
        self.log_lost_rows = Counter(
            "churn_prediction_log_lost_rows",
            "Acknowledged rows that neither the journal nor the store kept.",
            registry=r,
        )
        self.log_journal_max = Gauge(
            "churn_prediction_log_journal_max_rows",
            "The journal's bound (CHURN_PREDICTION_JOURNAL_MAX_ROWS): past it /predict answers "
            "503.",
            registry=r,
        )
        self.log_dead_letters = Gauge(
            "churn_prediction_log_dead_letters",
            "Rows in the dead-letter file: refused by the store as data (churn dead-letters).",
            registry=r,
        )
        self.log_dead_lettered = Counter(
            "churn_prediction_log_dead_lettered_rows",
            "Rows this process set aside in the dead-letter file since it started.",
            registry=r,
        )
        self.role_rows = Counter(
            "churn_role_predictions",
            "Logged predictions by role (champion, challenger: a canary answered, shadow: scored "
            "off the request path, never returned) and model version.",
            ["role", "model_version"],
            registry=r,
        )
        self.challenger_info = Gauge(
            "churn_challenger_info",
            "The challenger loaded beside the champion (value 1): version and live mode "
            "(params.yaml live.mode); absent when none is loaded.",
            ["version", "mode"],
            registry=r,
        )
        self.shadow_failures = Counter(
            "churn_shadow_failures",
            "Requests the shadow challenger did not score, by reason: model_error (it raised), "
            "queue_full (live.shadow_queue requests were waiting), log_full (the prediction log "
            "refused its rows). The answer was never affected.",
            ["reason"],
            registry=r,
        )
        self.canary_fallbacks = Counter(
            "churn_canary_fallback",
            "Canary records the challenger failed on, answered by the champion instead.",
            registry=r,
        )
        r.register(RequestCost(self.probability))
        # The children of the per-request metrics by label values: ``labels()`` validates and
        # looks them up under a lock on every call, a few microseconds of every request. The
        # two metrics are never cleared, so a child once made stays the one exposed.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # Answered requests not yet counted (count_request, count_requests).
        self._answered: list[tuple[str, str, int, float]] = []

    def count_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """One answered request, for ``churn_http_requests_total`` and its duration.

        Kept in a list and counted every ``_COUNT_EVERY`` requests and before each scrape
        (``count_requests``): Prometheus' ``inc`` and ``observe`` take a lock each and loop
        over the buckets in Python, several microseconds of every request on the event loop;
        counted together they cost a fraction of that. Called on the event loop only (the
        list is not guarded), like ``count_requests``.
        """
        answered = self._answered
        answered.append((endpoint, method, status, seconds))
        if len(answered) >= _COUNT_EVERY:
            self.count_requests()

    def count_requests(self) -> None:
        """Count the requests ``count_request`` kept (``/metrics`` calls it before it answers)."""
        answered, self._answered = self._answered, []
        children_of = self._request_children
        for endpoint, method, status, seconds in answered:
            children = children_of.get((endpoint, method, status))
            if children is None:
                children = (
                    self.requests.labels(endpoint, method, str(status)),
                    self.latency.labels(endpoint),
                )
                children_of[(endpoint, method, status)] = children
            children[0].inc()
            children[1].observe(seconds)

    def set_log_health(self, health: Any) -> None:
        """The prediction log's state (a ``serving.predlog.LogHealth``) as of now."""
        self.log_state.clear()
        self.log_state.labels(health.state).set(1)
        self.log_queue.set(health.queued_rows)
        self.log_journal.set(health.journal_rows)
        self.log_journal_max.set(health.journal_max_rows)
        self.log_dead_letters.set(health.dead_letters)

    def set_model(
        self,
        version: str,
        source: str,
        scorer: str,
        rules: FallbackRules | None = None,
        one_row_ms: float | None = None,
    ) -> None:
        """Point ``churn_model_info`` at the model now served (``scorer``: compiled,
        predict_proba, pipeline, rules, prior-rate), ``churn_scorer_one_row_seconds`` at its
        one-row time (NaN when not measured) and ``churn_fallback_rules_info`` at its fallback
        ``rules``."""
        self.model_info.clear()
        self.model_info.labels(version=version, source=source, scorer=scorer).set(1)
        self.scorer_one_row.set(float("nan") if one_row_ms is None else one_row_ms / 1000)
        self.fallback_rules.clear()
        if rules is not None:
            auc = "" if rules.test_roc_auc is None else f"{rules.test_roc_auc:.4f}"
            self.fallback_rules.labels(kind=rules.kind, test_roc_auc=auc).set(1)

    def set_refused(self, refusal: Any) -> None:
        """Point ``churn_model_refused_info`` at the refused version (a
        ``serving.model.Refusal``), or clear it (None)."""
        self.refused_info.clear()
        if refusal is not None:
            self.refused_info.labels(version=refusal.version, check=refusal.check).set(1)

    def observe_scores(self, version: str, proba: np.ndarray, decisions: np.ndarray) -> None:
        """Record a batch of scores (called off the request path, by the log writer)."""
        self.probability.observe_many(proba)
        n_churn = int(decisions.sum())
        if n_churn:
            self.predictions.labels(version, "churn").inc(n_churn)
        if len(decisions) - n_churn:
            self.predictions.labels(version, "stay").inc(len(decisions) - n_churn)


class RequestCost(Collector):
    """What predictions cost, from the process's own counters: CPU-seconds used so far
    (``time.process_time``: user + system, every thread) and per 1,000 predictions scored.

    The ratio is over the process's life, start-up, polling and the log writer included: the
    cost of running the service per prediction, not only of the scoring call.
    """

    def __init__(self, scores: ArrayHistogram) -> None:
        self._scores = scores

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cpu = time.process_time()
        yield CounterMetricFamily(
            "churn_process_cpu_seconds", "CPU time of the service process (user + system).", cpu
        )
        predictions = self._scores.count()
        if predictions:
            yield GaugeMetricFamily(
                "churn_cpu_seconds_per_1000_predictions",
                "CPU-seconds of the process per 1,000 predictions scored since it started.",
                cpu / predictions * 1000,
            )


class ArrayHistogram(Collector):
    """A Prometheus histogram fed a whole array at a time.

    ``Histogram.observe`` takes one value (and a lock) per call: for a 1000-row request that is
    a millisecond of the log writer holding the GIL that requests need. Here a batch is one
    ``searchsorted`` and one ``bincount``; the exposition is the same as ``Histogram``'s.
    """

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        """Count each value in the first bucket whose upper bound (``le``) it does not exceed."""
        counts = np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self._counts)
        )
        total = float(np.sum(values))
        with self._lock:
            self._counts += counts
            self._sum += total

    def count(self) -> int:
        """Values observed so far."""
        with self._lock:
            return int(self._counts.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        bounds = [floatToGoString(b) for b in self._bounds.tolist()] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(bounds, cumulative, strict=True)),
            sum_value=total,
        )
