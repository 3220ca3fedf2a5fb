"""The compiled tree walk equals XGBoost's own prediction, missing values included."""

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
    """One row and several rows take the default branch of a missing value."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[0, [0, 2]] = np.nan
    expected = booster.inplace_predict(X, validate_features=False)
    np.testing.assert_allclose(NumpyTrees(booster).predict_proba(X), expected, atol=1e-6)


def test_the_numpy_forest_matches_the_random_forest_one_row_and_many() -> None:
    """scikit-learn's rule (left when x <= threshold), the mean of the trees' leaf shares."""
    from sklearn.ensemble import RandomForestClassifier

    from churn.scoring import NumpyForest

    rng = np.random.default_rng(3)
    X = rng.random((400, 5)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.random(400) > 0.9).astype(int)
    forest = RandomForestClassifier(n_estimators=25, max_depth=7, random_state=0).fit(X, y)
    walk = NumpyForest(forest)
    want = forest.predict_proba(X)[:, 1]
    assert np.max(np.abs(walk.predict_proba(X) - want)) < 1e-12
    for i in range(20):
        assert walk.predict_proba(X[i : i + 1])[0] == pytest.approx(want[i], abs=1e-12)
