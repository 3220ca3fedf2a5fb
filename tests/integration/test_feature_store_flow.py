"""The training flow through the feature store (feature_store.enabled), on a real run.

Prefect, DVC and MLflow as in `make train`: the events stage runs with the data stages, the store
is built, the training rows get the store's features as of their label times, and the version's
record and run name the store's feature views and data version.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

pytest.importorskip(
    "feast", reason="the optional feast group is not installed (uv sync --extra feast)"
)

from churn.champion import ChampionInfo
from churn.config.params import load_params
from churn.config.settings import get_settings
from pipelines.training import training_flow
from tools.fork import fork_project

pytestmark = pytest.mark.integration

STORE_ON = {
    "ingest": {"generator": {"n_rows": 2000, "seed": 7}},
    "train": {"search": {"n_trials": 0}, "candidates": ["logistic", "xgboost"]},
    "feature_store": {"enabled": True},
}


def test_a_run_through_the_store_records_its_views_and_data_version(
    tmp_path: Path, prefect_api: str
) -> None:
    project = fork_project(tmp_path / "project", STORE_ON)
    summary = training_flow(str(project))
    assert summary.version is not None
    assert summary.data_stages_ran["events"] is True
    settings = get_settings(project_dir=project)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    version = client.get_model_version(settings.model_name, summary.version)
    record = ChampionInfo.from_version(version)
    assert record.feature_store is not None
    params = load_params(project / "params.yaml")
    assert set(record.feature_store.views) == {
        "customer_activity_7d",
        "customer_activity_30d",
        "customer_activity_90d",
        "customer_recency",
    }
    store_file = project / "data" / "feature_store" / "customer_activity.parquet"
    assert store_file.exists()
    assert "data/raw/events.parquet" in record.data_files  # the events are in the data version
    run = client.get_run(str(version.run_id))
    assert json.loads(run.data.tags["feature_store"]) == json.loads(version.tags["feature_store"])
    # the store's features are inputs of the model: its signature names them
    mlflow.set_tracking_uri(settings.tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{settings.model_name}/{summary.version}")
    assert info.signature is not None
    assert set(params.feature_store.feature_names()) <= set(info.signature.inputs.input_names())
