"""Prometheus metrics of one service instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.probability = Histogram(
            "churn_prediction_probability",
            "Distribution of predicted churn probabilities.",
            buckets=_PROBABILITY,
            registry=r,
        )
        self.predictions = Counter(
            "churn_predictions", "Scored records.", ["model_version", "decision"], registry=r
        )
        self.model_info = Gauge(
            "churn_model_info",
            "The served model (value 1): version and where it came from.",
            ["version", "source"],
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

    def set_model(self, version: str, source: str) -> None:
        """Point ``churn_model_info`` at the model now served."""
        self.model_info.clear()
        self.model_info.labels(version=version, source=source).set(1)

    def observe_scores(self, version: str, proba: np.ndarray, decisions: np.ndarray) -> None:
        """Record a batch of scores (called off the request path, by the log writer)."""
        hist = self.probability
        for p in proba.tolist():
            hist.observe(p)
        n_churn = int(decisions.sum())
        if n_churn:
            self.predictions.labels(version, "churn").inc(n_churn)
        if len(decisions) - n_churn:
            self.predictions.labels(version, "stay").inc(len(decisions) - n_churn)
