"""Fault 10: the serving-scorer check was blind to NaN (``gap > TOLERANCE`` and ``max(gap, nan)``
both take a NaN gap for a pass), so a replay that returned NaN passed, and every request then
fell back to the rules. Now any NaN or infinite score on either side fails the check, at
training (``check_serving``, the ``scorer_parity`` check) and at load (``compile_pipeline``);
and a NaN at serving is a failure of the model: the rules answer, counted, never the NaN.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from churn.config.params import Params, load_params
from churn.data.generator import generate_customers
from churn.data.split import label_vector, split_frame
from churn.data.validate import validate_frame
from churn.features.pipeline import build_feature_pipeline
from churn.models import check_serving, serving_scorer
from churn.release.checks import scorer_parity
from churn.scoring import CompiledScorer, PipelineScorer
from churn.training.train import assemble, calibrate
from tests.serving.conftest import example_records, loaded_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def splits(params: Params) -> dict[str, pd.DataFrame]:
    valid = validate_frame(generate_customers(800, seed=7), params.dataset).valid
    return split_frame(valid, params.dataset, params.split)


def _logistic(params: Params, splits: dict[str, pd.DataFrame]) -> tuple[Pipeline, Any]:
    """A calibrated logistic regression as training assembles it, and its inner model."""
    features = build_feature_pipeline(params.dataset, params.features).fit(splits["train"])
    X = {n: features.transform(f) for n, f in splits.items() if n != "test"}
    y = {n: label_vector(f, params.dataset).to_numpy() for n, f in splits.items()}
    inner = LogisticRegression(max_iter=2000).fit(X["train"], y["train"])
    return assemble(features, calibrate(inner, X["valid"], y["valid"], "sigmoid")), inner


def test_a_model_scoring_nan_fails_the_check_at_training_and_at_load(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """A NaN coefficient: the pipeline and its replay both score NaN (a gap of NaN), which the
    check took for 0 and served compiled."""
    pipeline, inner = _logistic(params, splits)
    inner.coef_[0, 0] = np.nan
    assert np.isnan(pipeline.predict_proba(splits["test"])[:, 1]).all()
    check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "pipeline" and check.max_abs_diff is None, check
    assert f"the pipeline itself returned NaN or infinite scores on {len(splits['test'])}" in (
        check.reason
    )
    outcome = scorer_parity(check)
    assert not outcome.passed and "NaN" in outcome.detail
    served = serving_scorer(pipeline, params.dataset)
    assert isinstance(served, PipelineScorer) and "NaN" in served.reason


def test_a_replay_returning_nan_fails_the_check(
    params: Params, splits: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline is sound, its replay returns NaN on one row of each call: the check fails
    and names the replay, and the service would load the pipeline instead."""
    pipeline, _ = _logistic(params, splits)
    assert check_serving(pipeline, params.dataset, splits["test"]).compiled
    real = CompiledScorer.score

    def one_nan(self: CompiledScorer, columns: Any, n: int) -> np.ndarray:
        scores = np.array(real(self, columns, n), dtype=np.float64)
        scores[-1] = np.nan
        return scores

    monkeypatch.setattr(CompiledScorer, "score", one_nan)
    check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "pipeline" and not check.replayed, check
    assert "the replay returned NaN or infinite scores on 1 of 1 test rows" in check.reason
    assert not scorer_parity(check).passed
    served = serving_scorer(pipeline, params.dataset)
    assert isinstance(served, PipelineScorer)
    assert "the replay returned NaN or infinite scores on 1 of 1 probe rows" in served.reason


class NaNScorer:
    """The served scorer, answering NaN: what a broken model does at serving."""

    def __init__(self, scorer: Any) -> None:
        self._scorer = scorer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)

    def score(self, columns: Any, n: int) -> np.ndarray:
        return np.full(n, np.nan)

    def score_one(self, columns: Any) -> float:
        return math.nan


@pytest.fixture(scope="module")
def project(
    trained_project: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    copy = tmp_path_factory.mktemp("nan") / "project"
    shutil.copytree(
        trained_project[0],
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    yield copy


@pytest.mark.integration
def test_nan_at_serving_is_answered_by_the_rules_and_counted(project: Path, tmp_path: Path) -> None:
    """One record (the scorer's ``score_one``) and forty (``score``): the rules' finite scores
    under ``fallback-rules``, each record counted as a model error on /metrics."""
    from churn.config.settings import get_settings
    from serving.app import create_app

    settings = get_settings(
        project_dir=project,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
        prediction_journal_dir=tmp_path / "journal",
    )
    app = create_app(settings)
    with loaded_client(app) as client:
        state = app.state.serving
        assert state.model.source == "registry"
        champion = state.model.version
        state.model = replace(state.model, scorer=NaNScorer(state.model.scorer))
        for n in (1, 40):
            answer = client.post("/predict", json={"records": example_records(n, seed=n)})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model_version"] == "fallback-rules" != champion
            scores = [p["churn_probability"] for p in body["predictions"]]
            assert len(scores) == n and all(0 <= s <= 1 for s in scores), scores
        metrics = client.get("/metrics").text
    found = re.search(r'churn_fallback_total\{reason="model_error"\} ([\d.]+)', metrics)
    assert found and float(found.group(1)) == 41, metrics
