"""The monitoring job as plain functions: read, check, decide, export feedback, record.

Each step takes settings, parameters and data and returns data; ``pipelines/monitoring.py`` only
wires them as Prefect tasks (and starts a retrain, which is orchestration). The job's result is a
named :class:`MonitoringOutcome`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config.params import Params
from churn.config.settings import Settings
from churn.prediction_store import SCORE_COLUMN, PredictionStore, PredictionWindow
from churn.release import registry, tracking
from churn.training.fairness import segment_metrics
from monitoring import data as mdata
from monitoring import report, service, workspace
from monitoring.decision import MonitoringDecision, decide, insufficient, no_judgement
from monitoring.tracking import last_retrain_at, log_monitoring_run

log = logging.getLogger(__name__)


@dataclass
class MonitoringOutcome:
    """What one monitoring run found, decided and did."""

    decision: MonitoringDecision
    champion_version: str | None
    report_dir: str
    window: PredictionWindow = field(default_factory=PredictionWindow.empty, repr=False)
    checks: report.Checks | None = None
    reference_tags: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str = ""
    feedback_rows: int = 0
    training: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    # The service's latency and cost (CHURN_SERVICE_URL), None when unset or unreachable.
    service: service.ServiceFigures | None = None
    # Champion against challenger on labelled live traffic (``monitoring.live``), and what a
    # promotion from that evidence did; None when live.mode is off.
    live: dict[str, Any] | None = None

    @property
    def retrained(self) -> bool:
        return self.training is not None

    @property
    def promoted(self) -> bool:
        return bool(self.training and self.training.get("promoted"))

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds."""
        w = self.window
        return {
            "decision": self.decision.as_dict(),
            "champion_version": self.champion_version,
            "window": {
                "rows": w.total_rows,
                "rows_checked": w.rows,
                "sampled": w.sampled,
                "start": w.start,
                "end": w.end,
            },
            "checks": self.checks.as_dict() if self.checks else None,
            "feedback_rows": self.feedback_rows,
            "training": self.training,
            "live": self.live,
            "mlflow_run_id": self.mlflow_run_id,
            "service": asdict(self.service) if self.service else None,
            "seconds": self.seconds,
        }

    def format(self) -> str:
        """A few lines a person can read in a terminal."""
        d = self.decision
        data = self.checks.data if self.checks else None
        if data is not None and data.engine != "pandas":
            how = (
                f", all judged on the {data.engine} engine; report on a sample of "
                f"{data.evidently_rows}"
            )
        else:
            how = ", sampled" if self.window.sampled else ""
        lines = [
            f"monitoring: action={d.action} (champion v{self.champion_version or '-'}, "
            f"{d.window_rows} predictions{how}, {d.labelled_rows} labelled)",
            f"  {d.reason}",
        ]
        if d.unseen_columns:
            lines.append(f"  unseen categories in: {', '.join(d.unseen_columns)}")
        if self.training:
            t = self.training
            if "version" in t:
                verdict = "PROMOTED to champion" if t["promoted"] else "not promoted"
                lines.append(
                    f"  retrained ({self.feedback_rows} labelled rows added): v{t['version']} "
                    f"{verdict}: {t['reason']}"
                )
            else:
                lines.append(f"  retrain via {t['via']}: flow run {t['flow_run_id']} {t['state']}")
        if self.service:
            lines.append("  service: " + _service_line(self.service))
        if self.live:
            lines.extend("  " + line for line in str(self.live.get("text", "")).splitlines())
        lines.append(f"  reports: {self.report_dir}; mlflow run {self.mlflow_run_id}")
        if self.seconds:
            lines.append(
                "  stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
            )
        return "\n".join(lines)


def _service_line(figures: service.ServiceFigures) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    cost = figures.cpu_seconds_per_1000_predictions
    return (
        f"/predict p50 {ms(figures.predict_p50_ms)}, p99 {ms(figures.predict_p99_ms)} over "
        f"{figures.predict_requests:,} requests; "
        + ("no predictions yet" if cost is None else f"{cost:.3f} CPU-s per 1,000 predictions")
        + " (since the service started)"
    )


def read_service(settings: Settings) -> service.ServiceFigures | None:
    """The service's latency and cost from its ``/metrics`` (``CHURN_SERVICE_URL``), or None."""
    if not settings.service_url:
        return None
    return service.read(settings.service_url)


def with_retrain(params: Params, retrain: bool | None) -> Params:
    """``params`` with ``monitor.retrain`` overridden (None: as ``params.yaml`` says)."""
    if retrain is None:
        return params
    return params.model_copy(
        update={"monitor": params.monitor.model_copy(update={"retrain": retrain})}
    )


def lineage_reports(settings: Settings) -> Path:
    """The lineage's monitoring reports: ``<reports_dir>/monitoring/<registered model>``."""
    return settings.reports_dir / "monitoring" / settings.model_name


def report_dir(settings: Settings, now: datetime) -> Path:
    """A new folder for this run's reports: ``<reports_dir>/monitoring/<lineage>/<time>``."""
    out = lineage_reports(settings) / f"{now:%Y%m%dT%H%M%S%f}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def champion_version(settings: Settings) -> str | None:
    """The version the champion alias points at now; read once per run, used by every step."""
    current = registry.current_champion(tracking.connect(settings), settings.model_name)
    return None if current is None else str(current.version)


def no_champion(settings: Settings) -> MonitoringDecision:
    """The decision when there is nothing to monitor (the service runs its fallback)."""
    return no_judgement(
        "no-champion", f"model {settings.model_name!r} has no champion to monitor", 0
    )


def read_window(
    store: PredictionStore,
    params: Params,
    now: datetime,
    version: str,
    current: str | Path | None = None,
) -> PredictionWindow:
    """The champion's own recent predictions (``monitor.window``), sampled to the cap.

    With ``current`` (``churn monitor --current``, else ``monitor.current_path``), the window is
    that Parquet export instead of the store: read here on the pandas engine; on a plug-in engine
    (dask) only its row count is read here, and :func:`check_data_at_scale` reads it there.
    """
    m = params.monitor
    current = current or m.current_path
    if current is not None:
        if params.engine.kind != "pandas":
            rows = mdata.window_rows(mdata.window_files(current))
            return PredictionWindow(pd.DataFrame(), rows, rows > m.max_current_rows, None, None)
        return mdata.read_parquet_window(current, max_rows=m.max_current_rows, seed=m.sample_seed)
    return mdata.store_window(store, m, now, version, dataset=params.dataset)


def too_small(window: PredictionWindow, params: Params) -> MonitoringDecision | None:
    """The insufficient-data decision when the window is too small to judge, else None."""
    if window.total_rows < params.monitor.min_rows:
        return insufficient(window.total_rows, params.monitor)
    return None


def load_reference(settings: Settings, params: Params, version: str) -> mdata.Reference:
    """The champion's training and test rows with its scores (see ``data.load_reference``)."""
    return mdata.load_reference(
        tracking.connect(settings),
        settings.model_name,
        settings.project_dir,
        params.dataset,
        max_rows=params.monitor.max_reference_rows,
        seed=params.monitor.sample_seed,
        version=version,
        cache_dir=lineage_reports(settings) / "reference-cache",
    )


def reference_tags(reference: mdata.Reference) -> dict[str, str]:
    """Tags naming the champion and the data the window was compared with."""
    record = reference.record
    return {
        "champion_version": str(record.version),
        "champion_run_id": str(record.run_id),
        "reference_data_version": record.data_version,
        "reference_md5": record.split_md5("train"),
    }


def check_data(
    reference: mdata.Reference, window: PredictionWindow, params: Params, html: Path
) -> report.DataChecks:
    """Drift and data quality of the window against the champion's training rows."""
    current = mdata.features_frame(window.frame, params.dataset)
    current[SCORE_COLUMN] = window.frame[SCORE_COLUMN].to_numpy()
    return report.check_data(reference.train, current, params.dataset, params.monitor, html)


def at_scale(params: Params, current: str | Path | None) -> str | Path | None:
    """The Parquet window a plug-in engine (dask) reads on its workers, or None (this process
    judges).

    A plug-in engine needs a Parquet window: a window from the prediction store is read (and
    sampled) in this process, as on the pandas engine, and the log says so.
    """
    current = current or params.monitor.current_path
    kind = params.engine.kind
    if kind == "pandas":
        return None
    if current is None:
        log.warning(
            f"monitoring: engine.kind is {kind} but the window comes from the prediction store, "
            "read and sampled to monitor.max_current_rows in this process; export the window "
            "as Parquet and give --current (or monitor.current_path) to judge all of it on the "
            "cluster"
        )
    return current


def check_data_at_scale(
    settings: Settings,
    reference: mdata.Reference,
    current: str | Path,
    params: Params,
    html: Path | None,
) -> tuple[report.DataChecks, PredictionWindow]:
    """A plug-in engine's data checks (``engine.kind``): the whole Parquet window summarised on
    its workers (for dask: an open client, the configured scheduler, else a LocalCluster),
    Evidently's report on a sample.

    Returns the checks and the window with its sample (what the quality check and the
    dashboard read)."""
    from monitoring import at_scale

    files = mdata.window_files(current)
    summary, window = at_scale.scan(settings, files, reference.train, params)
    checks = at_scale.check_data(reference.train, summary, window, params, html)
    return checks, window


def check_quality(
    store: PredictionStore,
    reference: mdata.Reference,
    window: PredictionWindow,
    params: Params,
    html: Path,
) -> tuple[report.QualityChecks | None, int]:
    """Quality on the labelled part of the window: ``(checks or None, labelled rows)``, with
    the figures per segment (``fairness.segments``) at the same threshold.

    None until ``monitor.min_labelled_rows`` labels (of both classes) have arrived.
    """
    labelled = mdata.join_labels(window, store)
    if len(labelled) < params.monitor.min_labelled_rows or labelled[report.TARGET].nunique() < 2:
        return None, len(labelled)
    threshold = reference.record.decision_threshold
    checks = report.check_quality(reference.test, labelled, threshold, html)
    f = params.fairness
    if f.segments:
        segments = segment_metrics(
            mdata.features_frame(labelled, params.dataset),
            labelled[report.TARGET].to_numpy(),
            labelled[SCORE_COLUMN].to_numpy(),
            threshold,
            f.segments,
            f.min_rows,
        )
        checks = replace(checks, segments=segments.to_dict())
    return checks, len(labelled)


def judge(
    settings: Settings,
    params: Params,
    data: report.DataChecks,
    quality: report.QualityChecks | None,
    *,
    window: PredictionWindow,
    labelled_rows: int,
    now: datetime,
    store: PredictionStore | None = None,
) -> MonitoringDecision:
    """The decision, with the cooldown's clock read from the monitoring experiment.

    A ``retrain`` must also win the store's claim (``PredictionStore.claim_retrain``): of
    monitoring runs deciding at the same time, one retrains and the others report ``cooldown``,
    and the cooldown starts now, when the decision is made, not when training ends.
    """
    decision = decide(
        data,
        quality,
        params.monitor,
        window_rows=window.total_rows,
        labelled_rows=labelled_rows,
        last_retrain_at=last_retrain_at(tracking.connect(settings), settings),
        now=now,
    )
    if decision.action != "retrain" or store is None:
        return decision
    held = store.claim_retrain(now, params.monitor.cooldown_hours)
    if held is None:
        return decision
    reason = (
        f"cooldown: a retrain was claimed at {held.isoformat(timespec='seconds')} (another "
        f"monitoring run), less than {params.monitor.cooldown_hours:g} h ago; {decision.reason}"
    )
    return replace(decision, action="cooldown", reason=reason)


def export_feedback(settings: Settings, params: Params, store: PredictionStore) -> int:
    """Write the newly labelled traffic where ``ingest.feedback.path`` makes training read it."""
    feedback = params.ingest.feedback
    if not feedback.path:
        return 0
    rows = mdata.feedback_rows(store, params.dataset, feedback.max_rows)
    path = Path(feedback.path)
    path = path if path.is_absolute() else settings.project_dir / path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows.to_parquet(tmp, index=False)
    tmp.replace(path)
    return len(rows)


def record(settings: Settings, outcome: MonitoringOutcome, now: datetime) -> str:
    """Log the run to the monitoring experiment, with ``summary.json`` naming that run.

    Sets ``outcome.mlflow_run_id`` and returns it.
    """

    def summary(run_id: str) -> dict[str, Any]:
        outcome.mlflow_run_id = run_id
        return outcome.summary()

    run_id = log_monitoring_run(
        tracking.connect(settings),
        settings,
        outcome.decision,
        outcome.checks,
        started_at=now,
        tags={**outcome.reference_tags, **_training_tags(outcome.training)},
        report_dir=Path(outcome.report_dir),
        summary=summary,
        extra_metrics=outcome.service.metrics() if outcome.service else None,
    )
    try:
        add_snapshot(settings, outcome, now)
    except Exception as exc:  # the run is recorded in MLflow; only the dashboard misses it
        log.warning(
            "monitoring: the Evidently workspace %s did not take this run's snapshot (%s: %s); "
            "the MLflow run %s holds its figures",
            settings.evidently_workspace,
            type(exc).__name__,
            exc,
            run_id,
        )
    return run_id


def add_snapshot(settings: Settings, outcome: MonitoringOutcome, now: datetime) -> str:
    """Store the run's figures in the Evidently workspace (the dashboard over time)."""
    d, quality = outcome.decision, outcome.checks and outcome.checks.quality
    frame = outcome.window.frame
    scores = frame.get(SCORE_COLUMN)
    figures = workspace.run_figures(
        drifted_share=d.drifted_share,
        window_rows=d.window_rows,
        labelled_rows=d.labelled_rows,
        mean_score=float(scores.mean()) if scores is not None and len(scores) else None,
        roc_auc=quality.roc_auc if quality else None,
        recall=quality.recall if quality else None,
        model_version=outcome.champion_version,
        service=outcome.service,
    )
    return workspace.add_run(
        settings.evidently_workspace,
        figures,
        at=now,
        action=d.action,
        model_version=outcome.champion_version,
        mlflow_run_id=outcome.mlflow_run_id,
        model_name=settings.model_name,
    )


def _training_tags(training: dict[str, Any] | None) -> dict[str, str]:
    if not training:
        return {}
    keys = ("via", "version", "promoted", "reason", "flow_run_id", "state")
    return {f"retrain.{k}": str(training[k])[:5000] for k in keys if k in training}
