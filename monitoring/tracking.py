"""Monitoring runs in MLflow: drift figures as metrics over time, reports as artefacts, cooldown."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from churn.config.settings import Settings
from churn.release.tracking import experiment_id
from monitoring.decision import MonitoringDecision
from monitoring.report import Checks

RETRAIN_TAG = "retrain_started"  # set on a monitoring run that started the training flow


def log_monitoring_run(
    client: MlflowClient,
    settings: Settings,
    decision: MonitoringDecision,
    checks: Checks | None,
    *,
    started_at: datetime,
    tags: Mapping[str, str],
    report_dir: Path,
    summary: Callable[[str], dict[str, Any]],
    extra_metrics: Mapping[str, float] | None = None,
) -> str:
    """One run in the monitoring experiment per monitoring job; returns its id.

    ``summary(run_id)`` gives the run's summary, written once to ``report_dir/summary.json``
    (so it names the run it is logged in) and logged with the HTML reports of ``report_dir``.

    Metrics are single values stamped with the run's time, so the MLflow UI plots each of them
    (``drifted_share``, ``drift.<column>``, ``roc_auc`` ...) across runs as a time series;
    ``extra_metrics`` (the service's ``service.*`` latency and cost) are logged with them.
    """
    exp = experiment_id(client, settings, settings.monitoring_experiment_name)
    metrics: dict[str, float] = {
        "window_rows": float(decision.window_rows),
        "labelled_rows": float(decision.labelled_rows),
        "drifted_share": decision.drifted_share,
        "drifted_columns": float(len(decision.drifted_columns)),
    }
    if decision.quality_drop is not None:
        metrics["quality_drop"] = decision.quality_drop
    if checks is not None:
        data = checks.data
        metrics["prediction_drift_score"] = data.prediction.score
        metrics.update({f"drift.{c}": d.score for c, d in data.columns.items()})
        metrics.update({f"missing_share.{c}": v for c, v in data.missing_share.items() if v})
        metrics.update({f"unseen_share.{c}": v for c, v in data.unseen_share.items() if v})
        if checks.quality is not None:
            metrics["roc_auc"] = checks.quality.roc_auc
            metrics["recall"] = checks.quality.recall
            metrics["reference_roc_auc"] = checks.quality.reference_roc_auc
            for column, gaps in (checks.quality.segments or {}).get("gaps", {}).items():
                if gaps.get("recall") is not None:
                    metrics[f"recall_gap.{column}"] = gaps["recall"]
    metrics.update(extra_metrics or {})
    run_tags: dict[str, Any] = {
        "action": decision.action,
        "reason": decision.reason[:5000],
        "drift_detected": str(decision.drift_detected).lower(),
        "drifted_columns": ", ".join(decision.drifted_columns),
        **tags,
    }
    if decision.action == "retrain":
        run_tags[RETRAIN_TAG] = started_at.isoformat()
    with mlflow.start_run(experiment_id=exp, run_name=f"monitor-{started_at:%Y%m%dT%H%M%S}") as run:
        mlflow.log_metrics(metrics, timestamp=int(started_at.timestamp() * 1000))
        mlflow.set_tags(run_tags)
        summary_path = report_dir / "summary.json"
        summary_path.write_text(json.dumps(summary(run.info.run_id), indent=2, default=str))
        for path in [summary_path, *sorted(report_dir.glob("*.html"))]:
            mlflow.log_artifact(str(path))
    return str(run.info.run_id)


def last_retrain_at(client: MlflowClient, settings: Settings) -> datetime | None:
    """When the monitoring job last started a retrain (the cooldown's clock), or None."""
    experiment = client.get_experiment_by_name(settings.monitoring_experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.action = 'retrain'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    stamp = runs[0].data.tags.get(RETRAIN_TAG)
    if stamp:
        return datetime.fromisoformat(stamp)
    return datetime.fromtimestamp(runs[0].info.start_time / 1000, UTC)
