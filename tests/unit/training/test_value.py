"""The value curve peaks at the cost-optimal threshold, and the per-1,000 figures add up."""

from __future__ import annotations

import numpy as np
import pytest

from churn.scoring.threshold import choose_threshold
from churn.training.value import best_threshold, economics, value_curve, value_summary


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fn_cost", [2.0, 5.0, 20.0])
def test_the_value_curve_peaks_at_the_cost_optimal_threshold(params, seed, fn_cost):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.35 * y + rng.random(500) * 0.65, 0, 1).round(2)  # ties on purpose
    costs = params.train.costs.model_copy(update={"false_negative": fn_cost})
    train = params.train.model_copy(update={"costs": costs})
    econ = economics(params.model_copy(update={"train": train}))
    assert best_threshold(y, p, econ) == pytest.approx(choose_threshold(y, p, costs))
    # Net value against contacting nobody = cost(nobody) - cost(threshold), at every point.
    thresholds, net, _ = value_curve(y, p, econ)
    for t, v in zip(thresholds[1:], net[1:], strict=True):
        flagged = p >= t
        cost = fn_cost * np.sum(~flagged & (y == 1)) + np.sum(flagged & (y == 0))
        assert v * len(y) == pytest.approx(fn_cost * y.sum() - cost)
    assert net[0] == 0


def test_retained_value_and_offer_acceptance_set_the_economics(params):
    value = params.value.model_validate({"retained_value": 500, "offer_acceptance": 0.3})
    with_value = params.model_copy(update={"value": value})
    econ = economics(with_value)
    offer = params.train.costs.false_positive
    assert econ.gain == pytest.approx(0.3 * 500 - offer) and econ.cost == offer
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05])
    s = value_summary(y, p, 0.5, econ)
    # Per 1,000: 3 contacted of 10 -> 300, 2 churners reached -> 200, net 100 x (2 gain - 1 cost).
    assert s["value_model_contacted"] == 300 and s["value_model_reached"] == 200
    assert s["value_model_net"] == pytest.approx(100 * (2 * econ.gain - econ.cost))
    assert s["value_everyone_net"] == pytest.approx(100 * (3 * econ.gain - 7 * econ.cost))
    assert s["value_nobody_net"] == 0 and s["value_churners"] == 300


def test_one_value_setting_without_the_other_is_refused_naming_both(params):
    with pytest.raises(ValueError, match=r"value\.retained_value and value\.offer_acceptance"):
        params.value.model_validate({"retained_value": 500})
