"""The production profile's monitoring: Prometheus scrapes the API, and every panel of the
provisioned Grafana dashboard queries a metric the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml
from prometheus_client import generate_latest

from serving.metrics import ServingMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "churn-service.json"
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "clamp_min", "le", "e"}


def _exported() -> set[str]:
    """Every series name the service's /metrics shows once it has scored something."""
    metrics = ServingMetrics()
    metrics.set_model("3", "registry", "compiled")
    metrics.observe_scores("3", np.array([0.2, 0.7]), np.array([False, True]))
    metrics.fallbacks.labels("no_model").inc()
    metrics.latency.labels("/predict").observe(0.003)
    metrics.requests.labels("/predict", "POST", "200").inc()
    metrics.log_errors.inc(0)
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def test_the_dashboard_loads_and_every_panel_queries_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 6
    titles = " ".join(p["title"] for p in panels).lower()
    for subject in ("latency", "cost", "version", "predictions", "mean churn score"):
        assert subject in titles, subject
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?=\s*[\[{)\s]|$)", target["expr"]))
            metrics = {n for n in names if n.startswith("churn_")}
            assert metrics, (panel["title"], target["expr"])
            assert metrics <= exported, (panel["title"], metrics - exported)


def test_prometheus_scrapes_the_api_and_grafana_provisions_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    api_port = compose["api"]["ports"][0].rsplit(":", 1)[1]
    assert scrape[0]["metrics_path"] == "/metrics"
    assert scrape[0]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    grafana_volumes = compose["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_volumes
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/churn.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
