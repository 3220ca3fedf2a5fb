"""Threshold choice from costs, monotone constraint mapping, and the search staying bounded."""

from __future__ import annotations

import numpy as np
import pytest

from churn.params import CostParams, TrainParams
from churn.train import choose_threshold, monotone_constraints, search_xgboost


def _brute_force(y, p, costs):
    best = None
    for t in np.unique(np.concatenate([p, [1.1]])):
        pred = p >= t
        cost = costs.false_negative * np.sum(~pred & (y == 1)) + costs.false_positive * np.sum(
            pred & (y == 0)
        )
        if best is None or cost < best[0]:
            best = (cost, t)
    return best


@pytest.mark.parametrize("fn_cost", [1.0, 5.0, 20.0])
def test_threshold_minimises_expected_cost(fn_cost):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1).round(2)  # ties on purpose
    costs = CostParams(false_negative=fn_cost, false_positive=1.0)
    t = choose_threshold(y, p, costs)
    pred = p >= t
    cost = fn_cost * np.sum(~pred & (y == 1)) + np.sum(pred & (y == 0))
    assert cost == pytest.approx(_brute_force(y, p, costs)[0])


def test_expensive_misses_lower_the_threshold():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.4 * y + rng.random(500) * 0.6, 0, 1)
    cheap = choose_threshold(y, p, CostParams(false_negative=1, false_positive=1))
    dear = choose_threshold(y, p, CostParams(false_negative=10, false_positive=1))
    assert dear < cheap


def test_monotone_constraints_map_onto_one_hot_columns():
    names = ["tenure", "Contract_Month-to-month", "Contract_One year", "Contract_Two year"]
    got = monotone_constraints(names, {"Contract": {"Month-to-month": 1, "Two year": -1}})
    assert got == (0, 1, 0, -1)
    with pytest.raises(ValueError, match="Contract_Lifetime"):
        monotone_constraints(names, {"Contract": {"Lifetime": 1}})


def test_search_tries_the_configured_point_plus_n_trials_and_keeps_the_best():
    rng = np.random.default_rng(2)
    X = rng.random((300, 4)).astype("float32")
    y = (X[:, 0] + 0.3 * rng.random(300) > 0.6).astype(int)
    params = TrainParams(search={"n_trials": 2}, xgboost={"n_estimators": 20})
    model, trials = search_xgboost(X[:200], y[:200], X[200:], y[200:], params, (0, 0, 0, 0))
    assert len(trials) == 3
    assert trials[0].params["n_estimators"] == 20
    best = max(t.valid_roc_auc for t in trials)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[200:], model.predict_proba(X[200:])[:, 1]) == pytest.approx(best)
