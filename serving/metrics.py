"""Prometheus metrics of one service instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

# Latency buckets (seconds) sized for a sub-millisecond to tens-of-milliseconds service.
_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_PROBABILITY = tuple(round(0.1 * i, 1) for i in range(1, 11))


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
            "The served model (value 1): version, where it came from, which scorer serves it.",
            ["version", "source", "scorer"],
            registry=r,
        )
        self.fallbacks = Counter(
            "churn_fallback",
            "Records answered by the fallback rules, by reason.",
            ["reason"],
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
        self.log_rows = Counter(
            "churn_prediction_log_rows", "Rows written to the prediction log.", registry=r
        )
        self.log_errors = Counter(
            "churn_prediction_log_errors", "Failed prediction-log writes.", registry=r
        )
        self.log_queue = Gauge(
            "churn_prediction_log_queue", "Batches waiting to be written.", registry=r
        )
        r.register(RequestCost(self.probability))

    def set_model(self, version: str, source: str, scorer: str) -> None:
        """Point ``churn_model_info`` at the model now served (``scorer``: compiled, pipeline,
        rules)."""
        self.model_info.clear()
        self.model_info.labels(version=version, source=source, scorer=scorer).set(1)

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
