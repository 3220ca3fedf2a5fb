"""Schedules of the Prefect deployments."""

from __future__ import annotations

from churn.config.settings import get_settings
from pipelines.deployments import build_deployments


def _cron(deployment) -> str:
    (schedule,) = deployment.schedules
    return schedule.schedule.cron


def test_training_is_weekly_and_monitoring_hourly_by_default(tmp_path):
    training, monitoring = build_deployments(get_settings(project_dir=tmp_path))
    assert (training.name, monitoring.name) == ("scheduled", "scheduled")
    assert _cron(training) == "0 3 * * 1" and _cron(monitoring) == "0 * * * *"
    assert training.parameters == {"project_dir": str(tmp_path)}
    # A drift alarm of the scheduled monitoring retrains through the training deployment.
    assert monitoring.parameters["training_deployment"] == "churn-training/scheduled"


def test_schedules_come_from_the_settings(tmp_path):
    settings = get_settings(project_dir=tmp_path, training_schedule="0 4 1 * *")
    training, _ = build_deployments(settings)
    assert _cron(training) == "0 4 1 * *"
