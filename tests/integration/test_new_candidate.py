"""A candidate the project does not ship, added as a forker adds one: its module in
``churn/models/candidates/`` and its ``params.yaml`` entry, nothing else. It is trained by the
real training flow (Prefect, DVC, MLflow), registered, served on a real HTTP server with and
without ``explain``, and the dask engine refuses it by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from churn.champion import ChampionInfo
from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.release import registry, tracking
from churn.release.checks import request_records
from tools.fork import deep_merge, fork_project, free_port, running_service

pytestmark = pytest.mark.integration

# What the forker writes: scikit-learn's histogram gradient boosting (OpenMP threads, inner
# types skops must be told about), with no compiled replay, no explainer and no dask training,
# each said.
MODULE = '''"""Histogram gradient boosting (scikit-learn): a forker's candidate."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from churn.models.kind import FitContext, ModelKind


class HistGBParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iter: int = Field(100, gt=0)
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(31, gt=1)


def fit(X: np.ndarray, y: np.ndarray, values: dict[str, Any], context: FitContext) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**values, random_state=context.seed).fit(X, y)


KIND = ModelKind(
    name="hist_gb",
    title="histogram gradient boosting",
    estimator=(
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier"
    ),
    params=HistGBParams,
    fit=fit,
    param_prefix="hgb",
    trusted_types=(
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting."
        "HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    ),
    libraries=("scikit-learn",),
    modules=("sklearn.ensemble",),
    search_space={"learning_rate": (0.05, 0.3, "log")},
    no_raw_score="no numpy replay of its trees yet",
    no_explainer="no TreeSHAP for scikit-learn's histogram boosting here",
    no_dask="scikit-learn's histogram boosting has no distributed fit",
)
'''

SMALL = {
    "ingest": {"generator": {"n_rows": 1500, "seed": 11}, "feedback": {"path": None}},
    "train": {
        "candidates": ["logistic", "hist_gb"],
        "select": {"prefer": ["hist_gb"]},
        "search": {"n_trials": 1},
        "hist_gb": {"max_iter": 20, "max_leaf_nodes": 8},
    },
    "promote": {"min_roc_auc": 0.5, "margin": 0.0},
}


def _env(project: Path, prefect_api: str, **extra: str) -> dict[str, str]:
    """The fork's own ``churn`` package first on the path (its candidates module with it)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project / "src"), os.environ.get("PYTHONPATH", "")]),
        "PREFECT_API_URL": prefect_api,
        **extra,
    }


def _churn(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, str]:
    """The fork with the new module and its params, trained once by ``churn train``."""
    project = fork_project(tmp_path_factory.mktemp("new-candidate") / "project", SMALL)
    (project / "src/churn/models/candidates/hist_gb.py").write_text(MODULE)
    trained = _churn(project, _env(project, prefect_api), "train")
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output[-5000:]
    return project, output


def test_a_forkers_candidate_is_trained_registered_and_summarised_by_its_module_alone(
    forked: tuple[Path, str],
) -> None:
    project, output = forked
    assert "Candidates (selected: histogram gradient boosting;" in output
    assert "| histogram gradient boosting | selected |" in output
    # The summary names the scorer really used, why, and its one-row time.
    assert "serving scorer: the model's own predict_proba after the replayed features" in output
    assert "hist_gb declares no compiled replay (no numpy replay of its trees yet)" in output
    settings = get_settings(project_dir=project)
    client = tracking.connect(settings)
    version = registry.aliased_version(client, settings.model_name, "challenger")
    record = ChampionInfo.from_version(version)
    check = record.serving_check
    assert check is not None and check.scorer == "predict_proba" and check.one_row_ms
    assert check.max_abs_diff is not None and check.max_abs_diff < 1e-6
    run = client.get_run(record.run_id)
    assert run.data.params["selected"] == "hist_gb"
    assert {"hgb_max_iter", "hgb_learning_rate", "logreg_C"} <= set(run.data.params)


def test_the_service_names_its_scorer_and_says_why_it_has_no_reasons(
    forked: tuple[Path, str], prefect_api: str
) -> None:
    project, _ = forked
    params = load_params(project / "params.yaml")
    test = pd.read_parquet(project / "data/splits/test.parquet").head(3)
    records = request_records(test, params.dataset)
    env = _env(project, prefect_api, CHURN_SERVED_ALIAS="challenger")
    with running_service(project, free_port(), env=env) as url:
        version = httpx.get(f"{url}/version", timeout=10).json()
        ready = httpx.get(f"{url}/ready", timeout=10).json()
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        plain = httpx.post(f"{url}/predict", json={"records": records}, timeout=30)
        explained = httpx.post(f"{url}/predict?explain=true", json={"records": records}, timeout=30)
    assert version["scorer"] == "predict_proba"
    # Its OpenMP threads are bounded: about 2 ms here, against about 100 ms left to themselves.
    assert version["scorer_one_row_ms"] is not None and version["scorer_one_row_ms"] < 40
    assert ready["status"] == "degraded"
    assert (
        "predict_proba" in ready["reason"]
        and "hist_gb declares no compiled replay" in (ready["reason"])
    )
    assert 'scorer="predict_proba"' in metrics and "churn_scorer_one_row_seconds" in metrics
    assert plain.status_code == 200, plain.text
    scores = [p["churn_probability"] for p in plain.json()["predictions"]]
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)
    assert "explanation" not in plain.json()["predictions"][0]
    assert explained.status_code == 200, explained.text
    for prediction in explained.json()["predictions"]:
        note = prediction["explanation"]["note"]
        assert "no TreeSHAP for scikit-learn's histogram boosting here" in note
        assert prediction["explanation"]["up"] == []
    assert [p["churn_probability"] for p in explained.json()["predictions"]] == scores


def test_the_dask_engine_refuses_the_candidate_by_name_before_any_stage(
    forked: tuple[Path, str], tmp_path: Path, prefect_api: str
) -> None:
    project, _ = forked
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    dask = deep_merge(params, {"engine": {"kind": "dask"}, "split": {"method": "hash"}})
    (project / "params.yaml").write_text(yaml.safe_dump(dask))
    try:
        refused = _churn(project, _env(project, prefect_api), "train", "--retrain")
    finally:
        (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        "hist_gb is not trained on the dask engine: scikit-learn's histogram boosting has no "
        "distributed fit" in refused.stdout + refused.stderr
    )
