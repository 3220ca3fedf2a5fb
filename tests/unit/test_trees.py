"""The numpy tree walk equals XGBoost's own prediction, missing values included."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from churn.scoring.trees import NumpyTrees


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    X[rng.uniform(size=X.shape) < 0.15] = np.nan  # XGBoost learns a default branch per split
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) * X[:, 2].clip(0) > 0).astype(int)
    model = xgb.XGBClassifier(n_estimators=25, max_depth=4, n_jobs=1, random_state=0)
    return model.fit(X, y).get_booster()


@pytest.mark.parametrize("n", [1, 5])
def test_the_tree_walk_equals_the_booster_with_missing_values(booster: xgb.Booster, n: int) -> None:
    """One row (every node at once) and several rows (level by level) take the default branch."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[0, [0, 2]] = np.nan
    expected = booster.inplace_predict(X, validate_features=False)
    np.testing.assert_allclose(NumpyTrees(booster).predict_proba(X), expected, atol=1e-6)
