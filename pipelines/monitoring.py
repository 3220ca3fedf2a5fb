"""The monitoring flow: the steps of ``monitoring.job`` as Prefect tasks, and the retrain."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from churn.config.identity import identity
from churn.config.params import load_params
from churn.config.settings import Settings, get_settings
from churn.data import versioning
from churn.prediction_store import PredictionStore
from churn.release.live import NotProven
from churn.release.registry import PromotionRefused
from monitoring import job, report
from monitoring import live as mlive
from monitoring import summary as report_summary
from monitoring.job import MonitoringOutcome
from pipelines import artifacts
from pipelines.timing import StageTimer, unless_data_error
from pipelines.training import TrainingSummary, training_flow

# Inputs are frames and reports: Prefect's input-hash caching is off (NO_CACHE).
read_window_task = task(
    name="read-window",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=unless_data_error,
    cache_policy=NO_CACHE,
)(job.read_window)
load_reference_task = task(name="load-reference", cache_policy=NO_CACHE)(job.load_reference)
check_data_task = task(name="check-data", cache_policy=NO_CACHE)(job.check_data)
check_data_at_scale_task = task(name="check-data", cache_policy=NO_CACHE)(job.check_data_at_scale)
check_quality_task = task(name="check-quality", cache_policy=NO_CACHE)(job.check_quality)
decide_task = task(name="decide", cache_policy=NO_CACHE)(job.judge)
export_feedback_task = task(name="export-feedback", cache_policy=NO_CACHE)(job.export_feedback)
record_task = task(name="record", retries=1, cache_policy=NO_CACHE)(job.record)
read_service_task = task(name="read-service", cache_policy=NO_CACHE)(job.read_service)


@task(name="compare-live", cache_policy=NO_CACHE)
def compare_live_task(
    settings: Settings,
    params: Any,
    store: PredictionStore,
    now: datetime,
    champion: str,
    promote: bool,
) -> dict[str, Any]:
    """Champion against challenger on the window's labelled traffic; with ``promote``, the
    promotion that evidence allows. What is missing is reported, never raised."""
    try:
        comparison = mlive.compare_live(settings, params, store, now, champion)
    except mlive.NoLiveEvidence as exc:
        return {"text": f"live: {exc}", "comparison": None, "promoted": False}
    out: dict[str, Any] = {"comparison": comparison.as_dict(), "promoted": False}
    text = comparison.format()
    if promote:
        try:
            previous, new = mlive.promote_from_live(settings, comparison, by="monitoring flow")
        except (NotProven, PromotionRefused) as exc:
            text += f"\n  not promoted: {exc}"
        else:
            out["promoted"] = True
            text += f"\n  PROMOTED from live evidence: champion v{previous} -> v{new}"
    out["text"] = text
    return out


def start_training(
    settings: Settings, project_dir: Path, deployment: str | None = None
) -> dict[str, Any]:
    """Run the training flow: through a Prefect deployment when one is named, else as a subflow.

    The retrain re-ingests (``force_ingest``) so that the feedback just exported is read; the
    promotion gate of the training flow decides, as for any other run.
    """
    params = {"project_dir": str(project_dir), "force_ingest": True}
    deployment = deployment or settings.training_deployment
    if deployment:
        from prefect.deployments import run_deployment

        run: Any = run_deployment(deployment, parameters=params, timeout=3600)
        state = run.state
        return {
            "via": f"deployment {deployment}",
            "flow_run_id": str(run.id),
            "state": state.name if state else "unknown",
            "promoted": None,
        }
    # The retrain's data version lives on its model version, its MLflow run and the DVC remote;
    # the clone's dvc.lock stays as committed (docs/monitoring.md, "Where a retrain's data lives").
    # retrain=True: the job decided to retrain, so the gate answers even when the re-read data
    # is what the champion saw (churn.training.cache would otherwise name the old version).
    with versioning.lock_kept(project_dir):
        summary: TrainingSummary = training_flow(str(project_dir), force_ingest=True, retrain=True)
    return {"via": "subflow", **asdict(summary)}


@flow(name=identity().monitoring_name, log_prints=True)
def monitoring_flow(
    project_dir: str = ".",
    retrain: bool | None = None,
    training_deployment: str | None = None,
    promote_from_live: bool = False,
    current: str | None = None,
) -> MonitoringOutcome:
    """Compare recent traffic with the champion's training data; retrain when it drifted.

    Args:
        project_dir: the project root (holds ``params.yaml``; the prediction store is found
            through the settings).
        retrain: override ``monitor.retrain`` (False: report and decide, never train).
        training_deployment: run a retrain through this Prefect deployment (``flow/name``)
            instead of ``CHURN_TRAINING_DEPLOYMENT``; with neither, training runs as a subflow.
        promote_from_live: promote the live challenger (``live`` in params.yaml) when the
            window's labelled traffic proves it better (``churn promote --from-live``).
        current: a Parquet window (exported predictions: a file, a directory of parts or a
            glob) instead of the prediction store's (default: ``monitor.current_path``); with
            ``engine.kind: dask`` it is judged whole on the cluster (docs/monitoring.md).
    """
    settings = get_settings(project_dir=Path(project_dir))
    params = job.with_retrain(load_params(settings.params_path), retrain)
    store = PredictionStore.from_settings(settings)
    now = datetime.now(UTC)
    out_dir = job.report_dir(settings, now)
    timed = StageTimer()

    champion = job.champion_version(settings)
    outcome = MonitoringOutcome(
        job.no_champion(settings), champion, str(out_dir), seconds=timed.seconds
    )
    if champion is not None:
        window = timed("read-window", read_window_task, store, params, now, champion, current)
        scale_window = job.at_scale(params, current)
        outcome.window = window
        small = job.too_small(window, params)
        if small is not None:
            outcome.decision = small
        else:
            reference = timed("load-reference", load_reference_task, settings, params, champion)
            outcome.reference_tags = job.reference_tags(reference)
            if scale_window is not None:
                data, window = timed(
                    "check-data",
                    check_data_at_scale_task,
                    settings,
                    reference,
                    scale_window,
                    params,
                    out_dir / "data_drift.html",
                )
                outcome.window = window
            else:
                data = timed(
                    "check-data",
                    check_data_task,
                    reference,
                    window,
                    params,
                    out_dir / "data_drift.html",
                )
            quality, labelled = timed(
                "check-quality",
                check_quality_task,
                store,
                reference,
                window,
                params,
                out_dir / "classification.html",
            )
            outcome.checks = report.Checks(data, quality, html=report.html_files(out_dir))
            outcome.decision = timed(
                "decide",
                decide_task,
                settings,
                params,
                data,
                quality,
                window=window,
                labelled_rows=labelled,
                now=now,
                store=store,
            )
    if params.live.mode != "off" and champion is not None:
        live_args = (settings, params, store, now, champion, promote_from_live)
        outcome.live = timed("compare-live", compare_live_task, *live_args)
    if outcome.decision.action == "retrain":
        outcome.feedback_rows = timed(
            "export-feedback", export_feedback_task, settings, params, store
        )
        outcome.training = timed(
            "retrain", start_training, settings, settings.project_dir, training_deployment
        )
    if outcome.checks is not None:
        report_summary.add_to_reports(
            outcome.checks.html,
            outcome.decision,
            outcome.checks,
            champion,
            outcome.summary()["window"],
        )
    if settings.service_url:
        outcome.service = timed("read-service", read_service_task, settings)
    timed("record", record_task, settings, outcome, now)
    store.close()
    text = outcome.format()
    print(text)
    html = outcome.checks.html if outcome.checks else {}
    artifacts.publish(
        lambda: artifacts.monitoring_links(settings, outcome.mlflow_run_id, html),
        f"```\n{text}\n```",
        key="monitoring",
    )
    return outcome


if __name__ == "__main__":
    monitoring_flow()
