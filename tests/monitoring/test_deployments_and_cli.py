"""Schedules of the Prefect deployments, and the command lines a person types."""

from __future__ import annotations

from typer.testing import CliRunner

from churn.settings import get_settings
from monitoring.__main__ import cli as monitoring_cli
from monitoring.simulate import cli as simulate_cli
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


def test_the_simulator_and_the_monitor_explain_themselves():
    runner = CliRunner()
    monitor = runner.invoke(monitoring_cli, ["--help"])
    assert monitor.exit_code == 0 and "--no-retrain" in monitor.output
    simulate = runner.invoke(simulate_cli, ["--help"])
    assert simulate.exit_code == 0
    assert "--drift" in simulate.output and "competitor" in simulate.output
    assert "--labels-after" in simulate.output
    bad = runner.invoke(simulate_cli, ["--rows", "0"])
    assert bad.exit_code == 2  # bounded: at least one customer, at most a million
