"""The whole training flow for real: Prefect flow runs, DVC stages and remote, MLflow registry."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churn.champion import ChampionInfo
from churn.config.identity import identity
from churn.config.settings import get_settings
from churn.data.versioning import data_version, locked_data_files
from churn.release import registry, tracking
from pipelines.cli.commands import app
from pipelines.training import training_flow

MODEL = identity().model_name  # the registered model: pyproject.toml's identity block

pytestmark = pytest.mark.integration


def _settings(project):
    return get_settings(project_dir=project)


def _client(project):
    return tracking.connect(_settings(project))


def _set_params(project, **sections):
    params = yaml.safe_load((project / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def test_first_run_registers_a_champion_with_its_data_version(trained_project):
    project, summary = trained_project
    client = _client(project)
    champion = registry.current_champion(client, MODEL)
    assert summary.promoted and champion is not None
    assert str(champion.version) == summary.version
    # The record on the version: the data version and files are the ones in dvc.lock.
    record = ChampionInfo.from_version(champion)
    files = locked_data_files(project)
    assert record.data_version == data_version(files) == summary.data_version
    assert (
        record.data_files == files and record.split_md5("test") == files["data/splits/test.parquet"]
    )
    assert record.run_id == champion.run_id and record.test_roc_auc == pytest.approx(
        summary.test_roc_auc, abs=1e-6
    )
    # The serving scorer was checked against the pipeline on the test split and recorded.
    check = record.serving_check
    assert check is not None and check.scorer == "compiled", check
    assert check.max_abs_diff is not None and check.max_abs_diff < 1e-6 and check.rows > 0
    assert summary.serving_check == check
    run = client.get_run(champion.run_id)
    assert run.data.metrics["serving_max_abs_diff"] == pytest.approx(check.max_abs_diff)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(summary.test_roc_auc)
    assert run.data.metrics["rows_train"] > 0 and run.data.tags["git_commit"]
    plots = {a.path for a in client.list_artifacts(champion.run_id, "plots")}
    assert plots >= {
        f"plots/{n}.png"
        for n in (
            *("roc_curve", "pr_curve", "calibration", "confusion_matrix", "feature_importance"),
            *("value_curve", "lift_gain", "explanations_summary"),
        )
    }
    assert champion.tags["promotion.decision"] == "promoted"
    card = Path(client.download_artifacts(champion.run_id, "model_card.md")).read_text()
    assert f"| ROC AUC | {summary.test_roc_auc:.4f} |" in card
    assert "## Why this model" in card and "## Fairness across segments" in card
    assert "## Business value" in card and "| contact everyone |" in card
    # One child run per candidate, and the comparison table, whose selected row is the champion.
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{champion.run_id}'"
    )
    assert {c.data.tags["candidate"] for c in children} == {"logistic", "random_forest", "xgboost"}
    table = pd.read_csv(client.download_artifacts(champion.run_id, "comparison.csv"))
    selected = table.loc[table["role"] == "selected"].iloc[0]
    assert selected["candidate"] == summary.selected == run.data.params["selected"]
    assert selected["test_roc_auc"] == pytest.approx(summary.test_roc_auc)
    base = table.loc[table["candidate"] == "logistic"].iloc[0]
    assert base["role"] == "baseline"
    assert base["test_roc_auc"] == pytest.approx(summary.baseline_test_roc_auc)
    by_child = {c.data.tags["candidate"]: c.data.metrics for c in children}
    for r in table.to_dict("records"):
        assert by_child[r["candidate"]]["test_roc_auc"] == pytest.approx(r["test_roc_auc"])
        assert r["predict_ms_one_row"] > 0 and r["size_kb"] > 0 and r["fit_seconds"] > 0
    assert "| random forest |" in summary.comparison and "| XGBoost |" in summary.comparison
    assert 0 <= run.data.metrics["fairness_max_recall_gap"] <= 1


def test_the_ui_shows_the_run_with_its_datasets_and_links(trained_project):
    """MLflow opens the experiment in its classic ML view, the run lists its splits as datasets
    named by their DVC hash, and the Prefect flow run links to the MLflow run and version."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    project, summary = trained_project
    client = _client(project)
    experiment = client.get_experiment(client.get_run(summary.run_id).info.experiment_id)
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.CLASSIC_ML_KIND
    run = client.get_run(summary.run_id)
    record = ChampionInfo.from_version(client.get_model_version(MODEL, summary.version))
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "valid", "test"}
    for split, dataset in inputs.items():
        assert dataset.digest == record.split_md5(split)
    assert json.loads(inputs["train"].profile)["num_rows"] == run.data.metrics["rows_train"]
    with get_client(sync_client=True) as prefect:
        keys = ArtifactFilterKey(any_=["training-mlflow-run", "training-model-version"])
        links = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=keys))
    # The session's Prefect server holds every test's runs: this run's links are among them.
    urls = {(a.key, str(a.data)) for a in links}
    assert any(k == "training-mlflow-run" and f"/runs/{summary.run_id}" in u for k, u in urls)
    version = f"/models/churn/versions/{summary.version}"
    assert any(k == "training-model-version" and f"{version})" in u for k, u in urls)


def test_dvc_is_clean_and_the_remote_holds_the_data(trained_project):
    project, _ = trained_project
    status = subprocess.run(
        ["dvc", "status", "--json"], cwd=project, capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout) == {}
    cloud = subprocess.run(
        ["dvc", "status", "--cloud", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cloud.stdout) == {}, "everything in dvc.lock is on the remote"
    assert any((project / ".dvcstore").rglob("*"))


def test_the_registered_model_scores_raw_rows(trained_project):
    project, _ = trained_project
    _client(project)
    model = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    test = pd.read_parquet(project / "data/splits/test.parquet")
    proba = model.predict_proba(test)[:, 1]
    assert ((proba >= 0) & (proba <= 1)).all() and proba.std() > 0.05


def test_model_info_json(trained_project):
    project, summary = trained_project
    out = subprocess.run(
        ["churn", "-C", str(project), "model-info", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert {
        "name",
        "version",
        "alias",
        "test_roc_auc",
        "data_version",
        "git_commit",
        "tracking_uri",
    } <= set(info)
    assert info["version"] == summary.version and info["alias"] == "champion"
    assert info["tracking_uri"].startswith("sqlite:///") and str(project) in info["tracking_uri"]


def test_rerun_reuses_cached_data_and_the_gate_refuses_models_that_are_not_better(trained_project):
    project, first = trained_project
    try:
        _rerun_and_worse_model(project, first)
    finally:
        _set_params(
            project,
            train={
                "xgboost": {"n_estimators": 300, "max_depth": 4},
                "search": {"n_trials": 1},
                "candidates": ["logistic", "random_forest", "xgboost"],
            },
        )


def _rerun_and_worse_model(project, first):
    client = _client(project)
    n_versions = len(client.search_model_versions(f"name='{MODEL}'"))
    unchanged = training_flow(str(project), push=False)
    # Nothing changed: no training, no new version; the summary names the version trained so.
    assert unchanged.reused and unchanged.version == first.version
    assert "nothing changed since v" + first.version in unchanged.reason
    assert "train" not in unchanged.seconds and not unchanged.promoted
    assert len(client.search_model_versions(f"name='{MODEL}'")) == n_versions

    again = training_flow(str(project), push=False, retrain=True)
    assert again.data_stages_ran == {
        "ingest": False,
        "validate": False,
        "events": False,
        "split": False,
    }
    assert not again.reused and again.version != first.version
    assert not again.promoted and "does not beat champion" in again.reason

    # A worse model: two XGBoost stumps, without the random forest that would win instead.
    _set_params(
        project,
        train={
            "xgboost": {"n_estimators": 2, "max_depth": 1},
            "search": {"n_trials": 0},
            "candidates": ["logistic", "xgboost"],
        },
    )
    worse = training_flow(str(project), push=False)  # new params: a new fingerprint
    assert not worse.reused and worse.test_roc_auc < first.test_roc_auc
    assert not worse.promoted
    assert str(registry.current_champion(client, MODEL).version) == first.version
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == worse.version
    history = {r["version"]: r for r in registry.history(client, MODEL)}
    assert history[worse.version]["decision"] == "rejected"
    assert history[first.version]["decision"] == "promoted"
    # Aliases are listed where they point.
    assert history[first.version]["aliases"] == ["champion"]
    assert history[worse.version]["aliases"] == ["challenger"]
    # ... and by `churn history`, in the aliases column of each version's row.
    shown = CliRunner().invoke(app, ["-C", str(project), "history"])
    assert shown.exit_code == 0, shown.output
    assert re.search(rf"^\W*{first.version}\W+champion\W+promoted\W", shown.output, re.M)
    assert re.search(rf"^\W*{worse.version}\W+challenger\W+rejected\W", shown.output, re.M)

    # Rollback: explicit target, then back to the previous champion by history.
    old, new = registry.rollback(client, MODEL, to_version=worse.version)
    assert (old, new) == (first.version, worse.version)
    old, new = registry.rollback(client, MODEL)
    assert new == first.version


def test_a_failed_run_changes_nothing_that_was_promoted(trained_project, tmp_path):
    project, first = trained_project
    bad = pd.read_parquet(project / "data/raw/customers.parquet").head(400)
    bad.loc[:100, "Contract"] = "Lifetime"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    _set_params(project, ingest={"kind": "file", "path": str(tmp_path / "bad.csv")})
    client = _client(project)
    n_versions = len(client.search_model_versions(f"name='{MODEL}'"))
    try:
        with pytest.raises(Exception, match="failed the data contract"):
            training_flow(str(project), push=False)
        assert str(registry.current_champion(client, MODEL).version) == first.version
        assert len(client.search_model_versions(f"name='{MODEL}'")) == n_versions
        quarantine = pd.read_csv(project / "data/validated/quarantine.csv")
        assert (
            len(quarantine) == 101
            and quarantine["_quarantine_reason"].str.contains("Contract").all()
        )
    finally:
        _set_params(project, ingest={"kind": "generator", "path": None})
