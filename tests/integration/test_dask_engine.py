"""The whole training flow on the dask engine (a real LocalCluster), against the pandas engine.

Both projects read the same 200,000 generated customers, written as Parquet parts with a few
hundred broken rows, with the same parameters; only ``engine.kind`` differs (and the pandas
project uses ``split.method: hash``, which the dask engine implies). The dask project runs the
whole flow (Prefect, DVC, MLflow registration); the pandas project runs the same stage
functions the flow calls (what the comparison needs, without a second registration).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.data import stages as data_stages
from churn.data.generator import generate_part, part_sizes
from churn.data.validate import REASON_COLUMN
from churn.release import registry, tracking
from churn.training import stages as model_stages
from tools.fork import fork_project

pytestmark = pytest.mark.integration

ROWS, PART_ROWS = 200_000, 50_000


REPEATS = 30  # rows per later part whose id an earlier part already holds


def _source(folder: Path) -> Path:
    """The customers as 4 Parquet parts, with broken rows the contract must quarantine: 150
    per part with a bad value, and in parts 1-3 ``REPEATS`` rows each that repeat an id of an
    earlier part (parts 1 and 2 of part 0's, part 3 of part 1's)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids: list[pd.Series] = []
    for i in range(len(part_sizes(ROWS, PART_ROWS))):
        part = generate_part(ROWS, 3, i, PART_ROWS)
        ids.append(part["customerID"].copy())
        bad = rng.choice(len(part), size=150 + REPEATS, replace=False)
        part.loc[bad[:50], "tenure"] = -1
        part.loc[bad[50:100], "Contract"] = "Weekly"
        part.loc[bad[100:150], "TotalCharges"] = "n/a"
        if i:
            earlier = ids[0] if i < 3 else ids[1]
            taken = earlier.iloc[i * REPEATS : (i + 1) * REPEATS].to_numpy()
            part.loc[bad[150:], "customerID"] = taken
        part.to_parquet(folder / f"customers-{i}.parquet", index=False)
    return folder


def _overrides(kind: str, source: Path) -> dict[str, Any]:
    return {
        "engine": {"kind": kind, "partition_rows": PART_ROWS, "sample_rows": 50_000},
        "ingest": {"kind": "file", "path": str(source), "feedback": {"path": None}},
        "split": {"method": "hash"},
        "train": {"search": {"n_trials": 0}, "xgboost": {"n_estimators": 80}},
    }


@dataclass
class PandasRun:
    test_roc_auc: float


def _pandas_stages(project: Path) -> PandasRun:
    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    data_stages.ingest(settings, params)
    data_stages.validate(settings, params)
    data_stages.split(settings, params)
    features = model_stages.featurize(data_stages.load_splits(settings), params)
    trained = model_stages.train(features, params)
    result = model_stages.evaluate_models(features, trained, params)
    return PandasRun(test_roc_auc=result.metrics["test_roc_auc"])


@pytest.fixture(scope="module")
def both_engines(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> dict[str, Any]:
    from pipelines.training import training_flow

    root = tmp_path_factory.mktemp("engines")
    source = _source(root / "source")
    pandas_project = fork_project(root / "pandas", _overrides("pandas", source))
    project = fork_project(root / "dask", _overrides("dask", source))
    return {
        "pandas": (pandas_project, _pandas_stages(pandas_project)),
        "dask": (project, training_flow(str(project), push=False)),
    }


def test_dask_flow_registers_the_same_kind_of_model_as_pandas(both_engines):
    (_, pandas_run), (project, run) = both_engines["pandas"], both_engines["dask"]
    assert run.promoted
    assert abs(run.test_roc_auc - pandas_run.test_roc_auc) < 0.005, (run, pandas_run)
    assert run.test_roc_auc > 0.8
    # The served artefact: the pandas engine's Pipeline(features, calibrated XGBClassifier),
    # checked against the fast serving scorer like any other.
    assert run.serving_check.scorer == "compiled", run.serving_check
    settings = get_settings(project_dir=project)
    tracking.connect(settings)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@{registry.CHAMPION}")
    assert isinstance(model, Pipeline) and isinstance(
        model.named_steps["model"], CalibratedClassifierCV
    )
    assert isinstance(model.named_steps["model"].estimator.estimator, XGBClassifier)
    test = pd.read_parquet(project / "data" / "splits" / "test.parquet")
    proba = model.predict_proba(test.head(500))[:, 1]
    assert np.all((proba > 0) & (proba < 1)) and proba.std() > 0.05
    # The run's row counts are the full splits', not the in-process samples'.
    client = tracking.connect(settings)
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["rows_test"] == len(test)


def test_both_engines_quarantine_the_same_rows_and_split_alike(both_engines):
    project = both_engines["dask"][0]
    reports = {
        kind: json.loads((p / "data" / "validated" / "report.json").read_text())
        for kind, (p, _) in both_engines.items()
    }
    assert reports["dask"] == reports["pandas"]
    quarantined = 600 + 3 * REPEATS
    assert reports["dask"]["n_quarantined"] == quarantined and reports["dask"]["n_rows"] == ROWS
    # An id repeated across parts is quarantined on the engine that sees parts too, with
    # pandera's own reason, on the later rows: the same rows as on the whole frame.
    assert reports["dask"]["reasons"]["customerID: field_uniqueness"] == 3 * REPEATS
    # The dask engine's outputs are directories of parts; the quarantine keeps each row's reason.
    quarantine = project / "data" / "validated" / "quarantine.csv"
    parts = sorted(quarantine.glob("part-*.csv"))
    assert len(parts) == 4
    rows = pd.concat([pd.read_csv(p, keep_default_na=False) for p in parts])
    assert len(rows) == quarantined and rows[REASON_COLUMN].str.len().min() > 0
    whole = pd.read_csv(both_engines["pandas"][0] / "data" / "validated" / "quarantine.csv")
    assert sorted(rows["customerID"]) == sorted(whole["customerID"])
    assert (project / "data" / "raw" / "customers.parquet").is_dir()
    for name in ("train", "valid", "test"):
        ids = {
            kind: set(pd.read_parquet(p / "data" / "splits" / f"{name}.parquet")["customerID"])
            for kind, (p, _) in both_engines.items()
        }
        assert ids["dask"] == ids["pandas"], name


def test_dvc_versions_the_partitioned_outputs(both_engines):
    project, run = both_engines["dask"]
    lock = (project / "dvc.lock").read_text()
    assert ".dir" in lock  # directory outs
    status = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "status"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up to date" in status.stdout, status.stdout
    assert run.data_stages_ran == {"ingest": True, "validate": True, "events": True, "split": True}
