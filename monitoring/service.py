"""The prediction service's latency and cost, as the monitoring run records them.

The service exports Prometheus metrics on ``/metrics`` (``serving/metrics.py``): a histogram of
request durations per endpoint and the CPU-seconds its process spent per 1,000 predictions. When
``CHURN_SERVICE_URL`` names the service, each monitoring run reads them once and records them with
the run (MLflow metrics, the Evidently dashboard, ``summary.json``), so "accuracy, latency, cost"
each have a figure per run and a plot over runs. The figures are the service process's own, since
it started (a Prometheus server keeps the per-minute view: ``docker-compose.yml``'s Grafana).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

LATENCY = "churn_http_request_duration_seconds"
COST = "churn_cpu_seconds_per_1000_predictions"
PREDICTIONS = "churn_predictions"
ENDPOINT = "/predict"


@dataclass(frozen=True)
class ServiceFigures:
    """Latency of ``/predict`` and cost per prediction, since the service process started."""

    url: str
    predict_requests: int
    predict_p50_ms: float | None
    predict_p99_ms: float | None
    predictions: int
    cpu_seconds_per_1000_predictions: float | None

    def metrics(self) -> dict[str, float]:
        """The figures as MLflow metrics (``service.*``); a figure without a value is left out."""
        values = {k: v for k, v in asdict(self).items() if k != "url"}
        return {f"service.{k}": float(v) for k, v in values.items() if v is not None}


def read(url: str, timeout: float = 5.0) -> ServiceFigures | None:
    """The service's figures from ``<url>/metrics``, or None (logged at WARNING) when it does
    not answer: monitoring goes on without them."""
    endpoint = url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(endpoint, timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning(
            "monitoring: the service at %s did not give its metrics (%s: %s); this run records "
            "no latency or cost. Check CHURN_SERVICE_URL and that the service is up.",
            endpoint,
            type(exc).__name__,
            exc,
        )
        return None
    return parse(url, response.text)


def parse(url: str, text: str) -> ServiceFigures:
    """The figures from a Prometheus text exposition of the service's registry."""
    buckets: list[tuple[float, float]] = []
    requests = 0.0
    predictions = 0.0
    cost: float | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{LATENCY}_bucket" and sample.labels.get("endpoint") == ENDPOINT:
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name == f"{LATENCY}_count" and sample.labels.get("endpoint") == ENDPOINT:
                requests = sample.value
            elif sample.name == f"{PREDICTIONS}_total":
                predictions += sample.value
            elif sample.name == COST:
                cost = sample.value
    buckets.sort()
    return ServiceFigures(
        url=url,
        predict_requests=int(requests),
        predict_p50_ms=_ms(histogram_quantile(0.5, buckets)),
        predict_p99_ms=_ms(histogram_quantile(0.99, buckets)),
        predictions=int(predictions),
        cpu_seconds_per_1000_predictions=cost,
    )


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, ``[(upper bound, count), ...]`` sorted by
    bound and ending at ``+Inf``: linear within the bucket, as PromQL's ``histogram_quantile``.

    None without observations; the largest finite bound when the quantile is in ``+Inf``'s bucket.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000
