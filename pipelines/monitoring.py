"""The monitoring flow: log window vs champion's data -> Evidently -> decision -> maybe retrain."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from churn import registry, tracking
from churn.params import Params, load_params
from churn.settings import Settings, get_settings
from monitoring import data as mdata
from monitoring import report
from monitoring.decision import MonitoringDecision, decide, insufficient, no_judgement
from monitoring.tracking import last_retrain_at, log_monitoring_run
from pipelines.training import TrainingSummary, training_flow


@task(name="read-window", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def read_window_task(
    settings: Settings, params: Params, now: datetime, model_version: str
) -> mdata.Window:
    m = params.monitor
    return mdata.read_window(
        settings.prediction_log_uri,
        m.window,
        max_rows=m.max_current_rows,
        seed=m.sample_seed,
        now=now,
        model_version=model_version,
    )


@task(name="load-reference", cache_policy=NO_CACHE)
def load_reference_task(settings: Settings, params: Params, version: str) -> mdata.Reference:
    client = tracking.connect(settings)
    return mdata.load_reference(
        client,
        settings.model_name,
        settings.project_dir,
        params.dataset,
        max_rows=params.monitor.max_reference_rows,
        seed=params.monitor.sample_seed,
        version=version,
    )


@task(name="check-data", cache_policy=NO_CACHE)
def check_data_task(
    reference: mdata.Reference, window: mdata.Window, params: Params, html: Path
) -> report.DataChecks:
    current = mdata.features_frame(window.frame, params.dataset)
    current[report.PREDICTION] = window.frame[report.PREDICTION].to_numpy()
    return report.check_data(reference.train, current, params.dataset, params.monitor, html)


@task(name="check-quality", cache_policy=NO_CACHE)
def check_quality_task(
    settings: Settings, reference: mdata.Reference, window: mdata.Window, params: Params, html: Path
) -> tuple[report.QualityChecks | None, int]:
    labelled = mdata.join_labels(window, settings.labels_uri)
    if len(labelled) < params.monitor.min_labelled_rows or labelled[report.TARGET].nunique() < 2:
        return None, len(labelled)
    return report.check_quality(reference.test, labelled, reference.threshold, html), len(labelled)


@task(name="export-feedback", cache_policy=NO_CACHE)
def export_feedback_task(settings: Settings, params: Params) -> int:
    """Write the newly labelled traffic where ``ingest.feedback.path`` makes training read it."""
    feedback = params.ingest.feedback
    if not feedback.path:
        return 0
    rows = mdata.feedback_rows(
        settings.prediction_log_uri, settings.labels_uri, params.dataset, feedback.max_rows
    )
    path = Path(feedback.path)
    path = path if path.is_absolute() else settings.project_dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows.to_parquet(tmp, index=False)
    tmp.replace(path)
    return len(rows)


@dataclass
class MonitoringOutcome:
    """What one monitoring run found, decided and did."""

    decision: MonitoringDecision
    champion_version: str | None
    report_dir: str
    mlflow_run_id: str
    feedback_rows: int = 0
    training: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    window_sampled: bool = False

    @property
    def retrained(self) -> bool:
        return self.training is not None

    @property
    def promoted(self) -> bool:
        return bool(self.training and self.training.get("promoted"))


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
    summary: TrainingSummary = training_flow(str(project_dir), force_ingest=True)
    return {"via": "subflow", **asdict(summary)}


@flow(name="churn-monitoring", log_prints=True)
def monitoring_flow(
    project_dir: str = ".", retrain: bool | None = None, training_deployment: str | None = None
) -> MonitoringOutcome:
    """Compare recent traffic with the champion's training data; retrain when it drifted.

    Args:
        project_dir: the project root (holds ``params.yaml``; the prediction log and labels are
            found through the settings).
        retrain: override ``monitor.retrain`` (False: report and decide, never train).
        training_deployment: run a retrain through this Prefect deployment (``flow/name``)
            instead of ``CHURN_TRAINING_DEPLOYMENT``; with neither, training runs as a subflow.
    """
    settings = get_settings(project_dir=Path(project_dir))
    params = load_params(settings.params_path)
    if retrain is not None:
        params = params.model_copy(
            update={"monitor": params.monitor.model_copy(update={"retrain": retrain})}
        )
    client = tracking.connect(settings)
    now = datetime.now(UTC)
    out_dir = settings.monitoring_reports_dir / "monitoring" / f"{now:%Y%m%dT%H%M%S%f}"
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = time.perf_counter() - clock
        clock = time.perf_counter()

    checks: report.Checks | None = None
    tags: dict[str, str] = {}
    reference: mdata.Reference | None = None
    window = mdata.Window(pd.DataFrame(), 0, False, None, None)
    current = registry.current_champion(client, settings.model_name)
    champion = None if current is None else str(current.version)
    if champion is None:
        decision = no_judgement(
            "no-champion", f"model {settings.model_name!r} has no champion to monitor", 0
        )
    else:
        window = read_window_task(settings, params, now, champion)
        lap("read-window")
        if window.total_rows < params.monitor.min_rows:
            decision = insufficient(window.total_rows, params.monitor)
        else:
            reference = load_reference_task(settings, params, champion)
    if reference is not None:
        champion = reference.model_version
        tags = {
            "champion_version": reference.model_version,
            "champion_run_id": reference.run_id,
            "reference_data_version": reference.data_version,
            "reference_md5": reference.train_md5,
        }
        lap("load-reference")
        data = check_data_task(reference, window, params, out_dir / "data_drift.html")
        lap("check-data")
        quality, labelled = check_quality_task(
            settings, reference, window, params, out_dir / "classification.html"
        )
        lap("check-quality")
        checks = report.Checks(data, quality)
        checks.html = {p.stem: p for p in out_dir.glob("*.html")}
        decision = decide(
            data,
            quality,
            params.monitor,
            window_rows=window.total_rows,
            labelled_rows=labelled,
            last_retrain_at=last_retrain_at(client, settings),
            now=now,
        )
    outcome = MonitoringOutcome(
        decision=decision,
        champion_version=champion,
        report_dir=str(out_dir),
        mlflow_run_id="",
        seconds=seconds,
        window_sampled=window.sampled,
    )
    if decision.action == "retrain":
        outcome.feedback_rows = export_feedback_task(settings, params)
        lap("export-feedback")
        outcome.training = start_training(settings, settings.project_dir, training_deployment)
        lap("retrain")
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(_summary(outcome, checks, window), indent=2, default=str))
    outcome.mlflow_run_id = log_monitoring_run(
        client,
        settings,
        decision,
        checks,
        started_at=now,
        tags={**tags, **_training_tags(outcome.training)},
        artefacts=[summary_path, *sorted(out_dir.glob("*.html"))],
    )
    lap("log")
    # Again, now with the run's id: the copy logged to the run cannot name the run it is in.
    summary_path.write_text(json.dumps(_summary(outcome, checks, window), indent=2, default=str))
    print(format_outcome(outcome))
    return outcome


def _summary(
    outcome: MonitoringOutcome, checks: report.Checks | None, window: mdata.Window
) -> dict[str, Any]:
    return {
        "decision": outcome.decision.as_dict(),
        "champion_version": outcome.champion_version,
        "window": {
            "rows": window.total_rows,
            "rows_checked": window.rows,
            "sampled": window.sampled,
            "start": window.start,
            "end": window.end,
        },
        "checks": checks.as_dict() if checks else None,
        "feedback_rows": outcome.feedback_rows,
        "training": outcome.training,
        "mlflow_run_id": outcome.mlflow_run_id,
        "seconds": outcome.seconds,
    }


def _training_tags(training: dict[str, Any] | None) -> dict[str, str]:
    if not training:
        return {}
    keys = ("via", "version", "promoted", "reason", "flow_run_id", "state")
    return {f"retrain.{k}": str(training[k])[:5000] for k in keys if k in training}


def format_outcome(outcome: MonitoringOutcome) -> str:
    """A few lines a person can read in a terminal."""
    d = outcome.decision
    lines = [
        f"monitoring: action={d.action} (champion v{outcome.champion_version or '-'}, "
        f"{d.window_rows} predictions"
        + (", sampled" if outcome.window_sampled else "")
        + f", {d.labelled_rows} labelled)",
        f"  {d.reason}",
    ]
    if d.unseen_columns:
        lines.append(f"  unseen categories in: {', '.join(d.unseen_columns)}")
    if outcome.training:
        t = outcome.training
        if "version" in t:
            verdict = "PROMOTED to champion" if t["promoted"] else "not promoted"
            lines.append(
                f"  retrained ({outcome.feedback_rows} labelled rows added): v{t['version']} "
                f"{verdict}: {t['reason']}"
            )
        else:
            lines.append(f"  retrain via {t['via']}: flow run {t['flow_run_id']} {t['state']}")
    lines.append(f"  reports: {outcome.report_dir}; mlflow run {outcome.mlflow_run_id}")
    return "\n".join(lines)


if __name__ == "__main__":
    monitoring_flow()
