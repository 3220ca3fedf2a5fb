"""The monitoring run reads the service's latency and cost from its real /metrics exposition."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import mlflow
import numpy as np
import pytest
from prometheus_client import start_http_server

from churn.config.settings import get_settings
from monitoring import job, service, workspace
from monitoring.job import MonitoringOutcome
from serving.metrics import ServingMetrics
from tools.fork import free_port


def _served_metrics() -> ServingMetrics:
    """A service's metrics after 90 requests of 2 ms and 10 of 300 ms, 400 records scored."""
    metrics = ServingMetrics()
    for seconds in [0.002] * 90 + [0.3] * 10:
        metrics.latency.labels("/predict").observe(seconds)
    metrics.latency.labels("/health").observe(5.0)  # another endpoint: not counted
    metrics.observe_scores("3", np.full(400, 0.4), np.arange(400) % 2)
    return metrics


@pytest.fixture
def service_url():
    metrics = _served_metrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


def test_quantiles_follow_prometheus_linear_interpolation():
    buckets = [(0.001, 0.0), (0.005, 90.0), (0.5, 100.0), (float("inf"), 100.0)]
    # rank 50 of 100 lies in (0.001, 0.005], 50/90 of the way up.
    assert service.histogram_quantile(0.5, buckets) == pytest.approx(0.001 + 0.004 * 50 / 90)
    # rank 99 lies in (0.005, 0.5], 9/10 of the way up.
    assert service.histogram_quantile(0.99, buckets) == pytest.approx(0.005 + 0.495 * 0.9)
    assert service.histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    # everything above the largest bound: the bound, as PromQL answers.
    assert service.histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 4.0)]) == 0.1


def test_figures_come_from_the_served_metrics_over_http(service_url):
    figures = service.read(service_url)
    assert figures is not None
    assert figures.predict_requests == 100 and figures.predictions == 400
    # 90 requests of 2 ms: the median is inside the bucket holding 2 ms, the p99 in 300 ms's.
    assert 1.0 < figures.predict_p50_ms <= 2.5
    assert 250.0 < figures.predict_p99_ms <= 500.0
    assert figures.cpu_seconds_per_1000_predictions > 0
    assert set(figures.metrics()) == {
        "service.predict_requests",
        "service.predict_p50_ms",
        "service.predict_p99_ms",
        "service.predictions",
        "service.cpu_seconds_per_1000_predictions",
    }


def test_a_service_that_does_not_answer_is_one_warning_and_no_figures(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="monitoring.service"):
        assert service.read(url, timeout=1) is None
    assert "CHURN_SERVICE_URL" in caplog.text and url in caplog.text


def test_the_monitoring_run_records_latency_and_cost(service_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_SERVICE_URL", service_url)
    settings = get_settings(project_dir=tmp_path)
    outcome = MonitoringOutcome(job.no_champion(settings), None, str(tmp_path / "report"))
    (tmp_path / "report").mkdir()
    outcome.service = job.read_service(settings)
    run_id = job.record(settings, outcome, datetime.now(UTC))

    logged = mlflow.MlflowClient(settings.tracking_uri).get_run(run_id).data.metrics
    assert logged["service.predict_requests"] == 100
    assert logged["service.predict_p50_ms"] == pytest.approx(outcome.service.predict_p50_ms)
    (stored,) = workspace.runs(settings.evidently_workspace)
    assert stored["latency_p99_ms"] == pytest.approx(outcome.service.predict_p99_ms)
    assert stored["cpu_per_1000"] == pytest.approx(outcome.service.cpu_seconds_per_1000_predictions)
    assert "/predict p50" in outcome.format()
