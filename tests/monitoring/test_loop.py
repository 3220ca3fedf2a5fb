"""The whole loop for real: uvicorn serving, simulated traffic, Prefect flows, MLflow, DVC."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from evidently.ui.workspace import Workspace

from churn.champion import ChampionInfo
from churn.config.identity import identity
from churn.config.settings import get_settings
from churn.data.generator import Drift
from churn.data.versioning import data_version, locked_data_files
from churn.prediction_store import PredictionStore
from churn.release import registry, tracking
from monitoring import workspace
from pipelines.monitoring import monitoring_flow
from pipelines.training import training_flow
from tools.bench_monitor import fill_log
from tools.demo import DEMO_OVERRIDES
from tools.fork import (
    deep_merge,
    fork_project,
    free_port,
    running_service,
    wait_for_log,
    wait_for_version,
)
from tools.simulate import DriftKind, make_customers, send_labels, send_traffic

MODEL = identity().model_name  # the registered model: pyproject.toml's identity block

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loop(tmp_path_factory, prefect_api):
    """Train, serve, then monitor after each step of the traffic's story."""
    project = fork_project(tmp_path_factory.mktemp("loop") / "project", DEMO_OVERRIDES)
    first = training_flow(str(project))
    # As a person does after `make train`: the data version is committed with the code.
    git(project, "add", "dvc.lock")
    git(project, "commit", "-qm", "data")
    settings = get_settings(project_dir=project)
    store = PredictionStore.from_settings(settings)
    steps = {}
    with running_service(project, free_port()) as url:
        steps["empty"] = monitoring_flow(str(project))
        normal = make_customers(1500, 101, DriftKind.none)
        send_traffic(url, normal)
        wait_for_log(settings, 1500, first.version)
        steps["unlabelled"] = monitoring_flow(str(project))
        send_labels(store, normal)  # the outcomes arrive after the predictions
        steps["labelled"] = monitoring_flow(str(project))
        drifted = make_customers(4000, 202, DriftKind.strong)
        send_traffic(url, drifted)
        send_labels(store, drifted)
        wait_for_log(settings, 5500, first.version)
        steps["drifted"] = monitoring_flow(str(project))
        new = steps["drifted"].training["version"]
        wait_for_version(url, new, timeout_s=30)
        steps["served_after"] = send_traffic(url, make_customers(5, 303, DriftKind.none))
        steps["after_swap"] = monitoring_flow(str(project))
    return project, first, steps


def test_an_empty_log_is_insufficient_data_not_an_alarm(loop):
    _, _, steps = loop
    outcome = steps["empty"]
    assert outcome.decision.action == "insufficient-data" and not outcome.retrained
    assert outcome.decision.window_rows == 0


def test_normal_traffic_does_not_retrain_and_waits_for_labels(loop):
    _, _, steps = loop
    decision = steps["unlabelled"].decision
    assert decision.action == "none" and not decision.drift_detected
    assert decision.drifted_columns == [] and decision.window_rows == 1500
    assert decision.quality_drop is None and decision.labelled_rows == 0


def test_labels_that_arrive_later_are_judged(loop):
    _, _, steps = loop
    decision = steps["labelled"].decision
    assert decision.labelled_rows == 1500 and decision.action == "none"
    assert decision.quality_drop is not None and decision.quality_drop < 0.05


def test_drift_retrains_and_the_gate_promotes_a_better_model(loop):
    project, first, steps = loop
    outcome = steps["drifted"]
    decision = outcome.decision
    assert decision.action == "retrain" and decision.drift_detected and decision.quality_degraded
    assert {"MonthlyCharges", "Contract", "PaymentMethod"} <= set(decision.drifted_columns)
    assert decision.unseen_columns == ["PaymentMethod"]
    assert outcome.training["via"] == "subflow" and outcome.promoted
    # The gate's figures, written on the new version, show it is better on the same test data.
    client = tracking.connect(get_settings(project_dir=project))
    tags = client.get_model_version(MODEL, outcome.training["version"]).tags
    champion_auc = float(tags["promotion.champion_roc_auc"])
    assert float(tags["promotion.challenger_roc_auc"]) >= champion_auc + 0.002
    assert tags["promotion.champion_version"] == first.version
    # Retraining data policy: labelled traffic without unseen levels was added to the source.
    window_rows = 1500 + 4000
    assert 1500 < outcome.feedback_rows < window_rows
    assert outcome.training["data_stages_ran"]["ingest"] is True


def test_the_running_service_moves_to_the_new_champion(loop):
    _, _, steps = loop
    assert steps["served_after"].model_versions == {steps["drifted"].training["version"]}


def test_the_new_champion_is_not_blamed_for_the_old_ones_predictions(loop):
    _, _, steps = loop
    outcome = steps["after_swap"]
    assert outcome.champion_version == steps["drifted"].training["version"]
    assert outcome.decision.action == "insufficient-data" and not outcome.retrained


def test_the_reference_is_the_champions_own_data_after_the_workspace_moved_on(loop):
    project, first, steps = loop
    client = tracking.connect(get_settings(project_dir=project))
    run = client.get_run(steps["drifted"].mlflow_run_id)
    v1 = ChampionInfo.from_version(client.get_model_version(MODEL, first.version))
    v1_train = v1.split_md5("train")
    assert run.data.tags["reference_md5"] == v1_train
    workspace = project / "data/splits/train.parquet"
    assert hashlib.md5(workspace.read_bytes()).hexdigest() != v1_train  # noqa: S324 - DVC's md5


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout


def test_a_retrain_from_monitoring_keeps_the_clone_clean(loop):
    """The retrain's data version lives on its model version, its MLflow run and the DVC
    remote; the clone's committed dvc.lock is untouched and the new model's commit is clean."""
    project, first, steps = loop
    assert git(project, "status", "--porcelain") == ""
    client = tracking.connect(get_settings(project_dir=project))
    new = ChampionInfo.from_version(
        client.get_model_version(MODEL, steps["drifted"].training["version"])
    )
    head = git(project, "rev-parse", "HEAD").strip()
    assert new.git_commit == head
    assert new.data_version != first.data_version
    assert data_version(locked_data_files(project)) == first.data_version  # as committed
    # The run holds the retrain's dvc.lock, and the DVC remote its data.
    lock = Path(client.download_artifacts(new.run_id, "dvc.lock", str(project / "reports")))
    assert data_version(locked_data_files(lock.parent)) == new.data_version
    remote = project / ".dvcstore" / "files" / "md5"
    md5 = new.split_md5("train")
    assert (remote / md5[:2] / md5[2:]).exists()


def test_reports_and_monitoring_runs_are_kept(loop):
    project, _, steps = loop
    outcome = steps["drifted"]
    folder = Path(outcome.report_dir)
    assert {p.name for p in folder.iterdir()} == {
        "data_drift.html",
        "classification.html",
        "summary.json",
    }
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["decision"]["action"] == "retrain"
    assert summary["mlflow_run_id"] == outcome.mlflow_run_id  # written once, naming its run
    assert summary["checks"]["data"]["columns"]["Contract"]["drifted"] is True
    assert summary["training"]["promoted"] is True
    client = tracking.connect(get_settings(project_dir=project))
    experiment = client.get_experiment_by_name("churn-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(steps) - 1  # every monitoring run, none for the probe
    history = client.get_metric_history(outcome.mlflow_run_id, "drifted_share")
    assert history[0].value == pytest.approx(outcome.decision.drifted_share)
    artefacts = {a.path for a in client.list_artifacts(outcome.mlflow_run_id)}
    assert {"data_drift.html", "classification.html", "summary.json"} <= artefacts
    assert mlflow.get_tracking_uri().startswith("sqlite:///")


def test_a_retrain_that_is_not_better_is_refused_and_cooldown_prevents_a_storm(tmp_path):
    """Drift persists after a refused retrain: the next run waits instead of retraining again."""
    overrides = deep_merge(DEMO_OVERRIDES, {"promote": {"margin": 0.5}})  # nothing can beat it
    project = fork_project(tmp_path / "project", overrides)
    first = training_flow(str(project), push=False)
    drift = Drift(
        monthly_charges_factor=1.3,
        contract_mix={"Month-to-month": 0.85, "One year": 0.1, "Two year": 0.05},
    )
    fill_log(project, 1500, seed=7, drift=drift)
    retrained = monitoring_flow(str(project))
    assert retrained.decision.action == "retrain" and retrained.retrained
    assert not retrained.promoted and "does not beat champion" in retrained.training["reason"]
    client = tracking.connect(get_settings(project_dir=project))
    assert str(registry.current_champion(client, MODEL).version) == first.version
    again = monitoring_flow(str(project))
    assert again.decision.action == "cooldown" and not again.retrained
    assert again.decision.drift_detected
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 2


def test_each_monitoring_run_is_a_snapshot_on_the_evidently_dashboard(loop):
    project, _, steps = loop
    runs = [s for name, s in steps.items() if name != "served_after"]
    stored = workspace.runs(get_settings(project_dir=project).evidently_workspace)
    assert len(stored) == len(runs)  # one snapshot per monitoring run, oldest first
    for outcome, figures in zip(runs, stored, strict=True):
        d = outcome.decision
        assert figures["window_rows"] == d.window_rows
        assert figures["labelled_rows"] == d.labelled_rows
        assert figures["drifted_share"] == pytest.approx(d.drifted_share)
        assert figures["model_version"] == float(outcome.champion_version)
    drifted = stored[runs.index(steps["drifted"])]
    assert drifted["roc_auc"] == pytest.approx(steps["drifted"].checks.quality.roc_auc)
    assert drifted["recall"] == pytest.approx(steps["drifted"].checks.quality.recall)
    assert stored[-1]["model_version"] > stored[0]["model_version"]  # the swap shows
    assert "roc_auc" not in stored[runs.index(steps["unlabelled"])]  # no labels, no point


@pytest.mark.browser
def test_the_evidently_ui_draws_the_dashboard_over_the_runs(loop, offline_page, tmp_path):
    project, _, steps = loop
    path = get_settings(project_dir=project).evidently_workspace
    port = free_port()
    ui = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "evidently"),
            "ui",
            "--workspace",
            str(path),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the Evidently UI did not start in 60 s"
                time.sleep(0.5)
        pid = Workspace(str(path)).search_project(workspace.PROJECT_NAME)[0].id
        page = offline_page
        page.goto(f"{url}/projects/{pid}")
        for title in dict.fromkeys(t for t, _ in workspace.FIGURES.values()):
            page.get_by_text(title, exact=True).first.wait_for(timeout=30_000)
        # One drawn line per figure the runs hold (no service figures: CHURN_SERVICE_URL unset).
        drawn = {name for run in workspace.runs(path) for name in run}
        assert drawn and drawn <= set(workspace.FIGURES)
        lines = page.locator(".MuiLineElement-root")
        lines.nth(len(drawn) - 1).wait_for(timeout=30_000)
        assert lines.count() == len(drawn)
        points = page.locator(".MuiMarkElement-root").count()
        assert points >= 4 * len(steps)  # a point per run on most lines
        shot = tmp_path / "evidently-dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot ({len(steps) - 1} monitoring runs): {shot}")
        assert page.blocked == [], f"the UI tried to reach the internet: {page.blocked}"
    finally:
        ui.terminate()
        ui.wait(timeout=30)
