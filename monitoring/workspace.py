"""Monitoring runs over time: one snapshot per run in an Evidently workspace, with its dashboard.

Each run's figures (drift share, ROC AUC and recall on labelled traffic, prediction volume, mean
score, the served model version) become one snapshot of a small Evidently report over a one-row
table of those figures, so the workspace's dashboard (``make ui``, :8001) plots each across runs.
With ``CHURN_SERVICE_URL`` set, the service's ``/predict`` latency and CPU cost per 1,000
predictions (``monitoring.service``) are plotted too. The full HTML reports stay in ``reports_dir``.
A workspace made before a panel existed keeps its dashboard: delete the project (or the
workspace folder) to get the new panels.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import MeanValue
from evidently.sdk.models import PanelMetric
from evidently.sdk.panels import line_plot_panel
from evidently.ui.workspace import Project, Workspace

from churn.config.identity import identity
from monitoring.service import ServiceFigures

# The Evidently project of the monitoring runs, named after the registered model: one project
# per lineage (``dataset.name``, ``Settings.model_name``); this is the default lineage's.
PROJECT_NAME = f"{identity().model_name} monitoring"


def project_name(model_name: str | None = None) -> str:
    """The lineage's Evidently project: ``<registered model> monitoring``."""
    return f"{model_name} monitoring" if model_name else PROJECT_NAME


# figure -> (panel title, legend); one line plot per title, in this order.
FIGURES: dict[str, tuple[str, str]] = {
    "drifted_share": ("Drift share", "share of drifted columns"),
    "roc_auc": ("Quality on labelled traffic", "ROC AUC"),
    "recall": ("Quality on labelled traffic", "recall (champion's threshold)"),
    "window_rows": ("Prediction volume", "predictions in the window"),
    "labelled_rows": ("Prediction volume", "labelled predictions"),
    "mean_score": ("Mean score", "mean churn probability"),
    "model_version": ("Served model version", "champion version"),
    "latency_p50_ms": ("Service latency (/predict, ms, since start)", "p50"),
    "latency_p99_ms": ("Service latency (/predict, ms, since start)", "p99"),
    "cpu_per_1000": ("Service cost", "CPU-seconds per 1,000 predictions"),
}

# What a panel shows when it has no line yet, and what to set: its description on the dashboard.
SERVICE_NOTE = (
    "From the prediction service's /metrics: empty unless CHURN_SERVICE_URL names the running "
    "service when monitoring runs (e.g. CHURN_SERVICE_URL=http://127.0.0.1:8000 make monitor) "
    "to see latency and cost."
)
PANEL_NOTES: dict[str, str] = {
    "Quality on labelled traffic": (
        "Empty until predictions in the window have their true labels (make simulate writes "
        "them; a CRM export in production)."
    ),
    "Service latency (/predict, ms, since start)": SERVICE_NOTE,
    "Service cost": SERVICE_NOTE,
}


def run_figures(
    *,
    drifted_share: float,
    window_rows: int,
    labelled_rows: int,
    mean_score: float | None,
    roc_auc: float | None,
    recall: float | None,
    model_version: str | None,
    service: ServiceFigures | None = None,
) -> dict[str, float]:
    """The figures one run plots; a figure the run has no value for is left out."""
    values: dict[str, float | None] = {
        "drifted_share": drifted_share,
        "roc_auc": roc_auc,
        "recall": recall,
        "window_rows": float(window_rows),
        "labelled_rows": float(labelled_rows),
        "mean_score": mean_score,
        "model_version": float(model_version)
        if model_version and model_version.isdigit()
        else None,
        "latency_p50_ms": service.predict_p50_ms if service else None,
        "latency_p99_ms": service.predict_p99_ms if service else None,
        "cpu_per_1000": service.cpu_seconds_per_1000_predictions if service else None,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def project(workspace: Workspace, model_name: str | None = None) -> Project:
    """The lineage's monitoring project, created with its dashboard on first use."""
    name = project_name(model_name)
    found = workspace.search_project(name)
    if found:
        return found[0]
    new = workspace.create_project(
        name,
        f"One snapshot per monitoring run of {name.removesuffix(' monitoring')!r} "
        f"({identity().title}).",
    )
    titles = dict.fromkeys(title for title, _ in FIGURES.values())
    for title in titles:
        values = [
            PanelMetric(metric="MeanValue", metric_labels={"column": name}, legend=legend)
            for name, (t, legend) in FIGURES.items()
            if t == title
        ]
        panel = line_plot_panel(title, values, description=PANEL_NOTES.get(title), size="half")
        new.dashboard.add_panel(panel)
    return new


def add_run(
    path: Path,
    figures: dict[str, float],
    *,
    at: datetime,
    action: str,
    model_version: str | None,
    mlflow_run_id: str,
    model_name: str | None = None,
) -> str:
    """Store one run's ``figures`` as a snapshot in the workspace at ``path``; returns its id."""
    path.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(path))
    columns = list(figures)
    data = Dataset.from_pandas(
        pd.DataFrame([figures], columns=columns),
        data_definition=DataDefinition(numerical_columns=columns),
    )
    snapshot = Report([MeanValue(column=c) for c in columns]).run(
        data,
        timestamp=at,
        tags=[f"action:{action}"],
        metadata={
            "action": action,
            "model_version": model_version or "-",
            "mlflow_run_id": mlflow_run_id,
        },
        name=f"monitor-{at:%Y%m%dT%H%M%S}",
    )
    return str(workspace.add_run(project(workspace, model_name).id, snapshot).id)


def runs(path: Path, model_name: str | None = None) -> list[dict[str, float]]:
    """Each stored run's figures of the lineage ``model_name``, oldest first (what its
    dashboard plots)."""
    workspace = Workspace(str(path))
    found = workspace.search_project(project_name(model_name))
    if not found:
        return []
    pid = found[0].id
    out: list[tuple[datetime, dict[str, float]]] = []
    for sid in workspace.list_runs(pid):
        model = workspace.get_run(pid, sid)
        if model is None:
            continue
        figures = {
            str(r.metric_value_location.metric.params["column"]): float(r.value)
            for r in model.metric_results.values()
        }
        out.append((model.timestamp, figures))
    return [f for _, f in sorted(out, key=lambda p: p[0])]
