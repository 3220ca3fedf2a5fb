"""Prefect deployments: weekly training and hourly monitoring (``churn deployments``)."""

from __future__ import annotations

from typing import Any

from prefect.types.entrypoint import EntrypointType

from churn.config.identity import identity
from churn.config.settings import Settings
from pipelines.monitoring import monitoring_flow
from pipelines.training import training_flow

# Both flows' deployments: <training_name>/scheduled and <monitoring_name>/scheduled (the names:
# pyproject.toml's identity block).
DEPLOYMENT = "scheduled"


def build_deployments(settings: Settings) -> list[Any]:
    """The two deployments, with the cron schedules from the settings.

    A drift alarm of the scheduled monitoring flow starts training through the training
    deployment (its own flow run in the Prefect UI), not as a subflow.

    The flows are found by module path (``pipelines.monitoring:monitoring_flow``), as the
    installed package: a file path would depend on the working directory, and Prefect loads a
    file as a top-level module named after it, so ``pipelines/monitoring.py`` would shadow the
    ``monitoring`` package it imports.
    """
    project = str(settings.project_dir)
    # With params.yaml's engine.kind: dask, training runs on the scheduler this process is
    # configured with (CHURN_DASK_SCHEDULER), named on the deployment so its runs use it too.
    scheduler = {"CHURN_DASK_SCHEDULER": settings.dask_scheduler} if settings.dask_scheduler else {}
    training = training_flow.to_deployment(
        name=DEPLOYMENT,
        cron=settings.training_schedule,
        parameters={"project_dir": project},
        description="Retrain on the current data; the promotion gate decides.",
        entrypoint_type=EntrypointType.MODULE_PATH,
        tags=[identity().model_name, "training"],
        job_variables={"env": scheduler} if scheduler else None,
    )
    monitoring = monitoring_flow.to_deployment(
        name=DEPLOYMENT,
        cron=settings.monitoring_schedule,
        parameters={
            "project_dir": project,
            "training_deployment": f"{training_flow.name}/{DEPLOYMENT}",
        },
        description="Drift and quality of recent traffic; retrains via the training deployment.",
        entrypoint_type=EntrypointType.MODULE_PATH,
        tags=[identity().model_name, "monitoring"],
    )
    return [training, monitoring]
