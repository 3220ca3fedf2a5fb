"""Prefect artefacts of a flow run: links to what it made (MLflow run, model version, reports).

The Prefect UI then shows, on each flow run, where its results are, next to its logs. MLflow's
pages are linked at ``mlflow_ui_url(settings)``: the tracking server itself when the tracking
URI is one, else the local UI that ``make ui`` starts (http://127.0.0.1:5000).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from churn.config.redact import without_credentials
from churn.config.settings import Settings
from churn.release.job_summary import run_page

log = logging.getLogger(__name__)

LOCAL_MLFLOW_UI = "http://127.0.0.1:5000"


def mlflow_ui_url(settings: Settings) -> str:
    """Where a person opens this project's MLflow UI (a user and password in the tracking URI
    are left out: the link is shown in the Prefect UI)."""
    uri = without_credentials(settings.tracking_uri)
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_MLFLOW_UI


def run_link(settings: Settings, experiment_id: str, run_id: str) -> str:
    return run_page(mlflow_ui_url(settings), experiment_id, run_id)


def version_link(settings: Settings, version: str) -> str:
    return f"{mlflow_ui_url(settings)}/#/models/{settings.model_name}/versions/{version}"


def publish(links: Callable[[], dict[str, tuple[str, str]]], markdown: str, key: str) -> None:
    """One link artefact per ``name: (url, text)`` that ``links()`` returns and a markdown
    summary, on the current flow run. Never fails the flow: the results exist already, so a
    run whose artefacts could not be written says so in its log."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    try:
        for name, (url, text) in links().items():
            create_link_artifact(url, link_text=text, key=f"{key}-{name}")
        create_markdown_artifact(markdown, key=f"{key}-summary")
    except Exception as exc:  # the results exist; only the links in the Prefect UI are missing
        log.warning("could not create the flow run's Prefect artefacts: %s", exc)


def report_link(path: Path) -> str:
    return path.resolve().as_uri()


def training_links(settings: Settings, run_id: str, version: str) -> dict[str, tuple[str, str]]:
    """The training run's MLflow run and the model version it registered."""
    from churn.release import tracking

    experiment = tracking.connect(settings).get_run(run_id).info.experiment_id
    return {
        "mlflow-run": (run_link(settings, experiment, run_id), f"MLflow run {run_id}"),
        "model-version": (
            version_link(settings, version),
            f"{settings.model_name} version {version}",
        ),
    }


def monitoring_links(
    settings: Settings, run_id: str, reports: dict[str, Path]
) -> dict[str, tuple[str, str]]:
    """The monitoring run in MLflow and its HTML reports."""
    from churn.release import tracking

    links: dict[str, tuple[str, str]] = {}
    if run_id:
        experiment = tracking.connect(settings).get_run(run_id).info.experiment_id
        links["mlflow-run"] = (run_link(settings, experiment, run_id), f"MLflow run {run_id}")
    for name, path in reports.items():
        links[f"report-{name.replace('_', '-')}"] = (report_link(path), f"{name} report")
    return links
