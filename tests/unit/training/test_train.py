"""Threshold choice from costs, monotone constraint mapping, and the search staying bounded."""

from __future__ import annotations

import numpy as np
import pytest

from churn.config.params import CostParams, TrainParams
from churn.models import kind
from churn.scoring.threshold import choose_threshold
from churn.training.train import monotone_constraints, search


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
    model, trials = search(
        kind("xgboost"), X[:200], y[:200], X[200:], y[200:], params, (0, 0, 0, 0)
    )
    assert len(trials) == 3
    assert trials[0].params["n_estimators"] == 20
    best = max(t.valid_roc_auc for t in trials)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[200:], model.predict_proba(X[200:])[:, 1]) == pytest.approx(best)


def _candidate(name, **valid):
    from churn.training.train import FittedCandidate

    return FittedCandidate(
        name=name, model=None, params={}, trials=[], fit_seconds=0.0, valid=valid
    )


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("valid_roc_auc", "xgboost"),
        ("valid_pr_auc", "random_forest"),
        ("valid_cost", "random_forest"),
    ],
)
def test_the_selection_follows_the_configured_metric_and_never_picks_the_baseline(metric, expected):
    """The baseline has the best figure on every metric here, and is still not selected."""
    from churn.training.train import select

    fitted = {
        "logistic": _candidate("logistic", valid_roc_auc=0.90, valid_pr_auc=0.80, valid_cost=0.1),
        "random_forest": _candidate(
            "random_forest", valid_roc_auc=0.84, valid_pr_auc=0.66, valid_cost=0.40
        ),
        "xgboost": _candidate("xgboost", valid_roc_auc=0.85, valid_pr_auc=0.65, valid_cost=0.45),
    }
    assert select(fitted, metric) == expected


def test_train_models_fits_every_candidate_and_selects_the_best_challenger_on_valid():
    from churn.training.train import train_models

    rng = np.random.default_rng(4)
    X = rng.random((600, 5)).astype("float32")
    y = (X[:, 0] * X[:, 1] + 0.2 * rng.random(600) > 0.35).astype(int)
    params = TrainParams(
        search={"n_trials": 1, "random_forest_trials": 1},
        xgboost={"n_estimators": 30},
        random_forest={"n_estimators": 20},
        select={"metric": "valid_pr_auc"},
    )
    trained = train_models(X[:400], y[:400], X[400:], y[400:], params, (0,) * 5)
    assert list(trained.candidates) == ["logistic", "random_forest", "xgboost"]
    challengers = [trained.candidates["random_forest"], trained.candidates["xgboost"]]
    best = max(challengers, key=lambda c: c.valid["valid_pr_auc"])
    assert trained.selected == best.name and trained.model is best.model
    assert type(trained.candidates["logistic"].estimator).__name__ == "LogisticRegression"
    assert trained.baseline is trained.candidates["logistic"].model
    # Two trials each (the configured point + one), tagged by candidate; the baseline has none.
    assert [t.candidate for t in trained.trials] == ["random_forest"] * 2 + ["xgboost"] * 2
    for c in trained.candidates.values():
        thr = choose_threshold(y[400:], c.model.predict_proba(X[400:])[:, 1], params.costs)
        assert c.valid["valid_threshold"] == pytest.approx(thr) and c.fit_seconds > 0


def test_candidates_must_name_the_baseline_and_a_challenger():
    with pytest.raises(ValueError, match="must include 'logistic'"):
        TrainParams(candidates=["xgboost"])
    with pytest.raises(ValueError, match="needs a model besides the logistic-regression baseline"):
        TrainParams(candidates=["logistic"])
    with pytest.raises(ValueError, match="twice"):
        TrainParams(candidates=["logistic", "xgboost", "xgboost"])


def test_challengers_within_the_tolerance_go_to_the_preferred_one():
    """A forest 0.0035 above XGBoost is a tie within 0.005: XGBoost, first of prefer, wins; a
    forest 0.01 above is not."""
    from churn.training.train import select

    def fitted(forest_auc):
        return {
            "logistic": _candidate("logistic", valid_roc_auc=0.95),
            "random_forest": _candidate("random_forest", valid_roc_auc=forest_auc),
            "xgboost": _candidate("xgboost", valid_roc_auc=0.8560),
        }

    prefer = ["xgboost", "random_forest"]
    assert select(fitted(0.8595), "valid_roc_auc", 0.005, prefer) == "xgboost"
    assert select(fitted(0.8660), "valid_roc_auc", 0.005, prefer) == "random_forest"
    assert select(fitted(0.8595), "valid_roc_auc", 0.0, prefer) == "random_forest"
    # valid_cost is minimised: the tolerance counts downwards from the lowest cost.
    costs = {
        "logistic": _candidate("logistic", valid_cost=0.1),
        "random_forest": _candidate("random_forest", valid_cost=0.400),
        "xgboost": _candidate("xgboost", valid_cost=0.404),
    }
    assert select(costs, "valid_cost", 0.005, prefer) == "xgboost"
    assert select(costs, "valid_cost", 0.001, prefer) == "random_forest"


@pytest.mark.parametrize("rows", [300, 150])
def test_each_tree_of_the_forest_draws_at_most_max_samples_rows(rows):
    """``random_forest.max_samples`` bounds every trial's trees (it is not searched); a training
    split smaller than the bound is drawn whole, as sklearn's default bootstrap does."""
    rng = np.random.default_rng(5)
    X = rng.random((rows + 100, 4))
    y = (X[:, 0] + 0.3 * rng.random(rows + 100) > 0.6).astype(int)
    params = TrainParams(
        search={"random_forest_trials": 2},
        random_forest={"n_estimators": 5, "max_samples": 200},
    )
    best, trials = search(
        kind("random_forest"), X[:rows], y[:rows], X[rows:], y[rows:], params, (0,) * 4
    )
    assert [t.params["max_samples"] for t in trials] == [200] * 3
    assert best.max_samples == (200 if rows > 200 else None)  # None: sklearn draws all rows


def test_candidates_fitted_side_by_side_are_the_ones_fitted_one_at_a_time(monkeypatch):
    """The candidates are fitted on one thread each; every fit is seeded, so the models (their
    validation scores, hence the selection) are those of a one-at-a-time run."""
    import churn.training.train as train_module
    from churn.training.train import train_models

    rng = np.random.default_rng(6)
    X = rng.random((700, 5))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + 0.3 * rng.random(700) > 0.9).astype(int)
    params = TrainParams(
        search={"n_trials": 2, "random_forest_trials": 1},
        xgboost={"n_estimators": 40},
        random_forest={"n_estimators": 30},
    )
    side_by_side = train_models(X[:500], y[:500], X[500:], y[500:], params, (0,) * 5)
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 1)
    one_at_a_time = train_models(X[:500], y[:500], X[500:], y[500:], params, (0,) * 5)
    assert side_by_side.selected == one_at_a_time.selected
    for name, candidate in side_by_side.candidates.items():
        other = one_at_a_time.candidates[name]
        assert candidate.valid == other.valid and candidate.params == other.params
        np.testing.assert_array_equal(
            candidate.model.predict_proba(X[500:]), other.model.predict_proba(X[500:])
        )
