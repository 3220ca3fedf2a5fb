"""The fallback rules' learner: points follow the churn rates, unseen and missing values are
smoothed to the base rate, the table reads back exactly, and only the strongest columns stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.config.params import CostParams, DatasetConfig
from churn.scoring.fallback_rules import SMOOTHING, FallbackRules, fit_rules, with_test_auc

DATASET = DatasetConfig.model_validate(
    {
        "id_column": "id",
        "label_column": "left",
        "positive_label": 1,
        "negative_label": 0,
        "numeric": {"age": {"nullable": True}, "noise": {}},
        "categorical": {"plan": ["basic", "plus", "premium", "legacy"], "region": ["n", "s"]},
    }
)
# Churn rate by plan (the learner must order the points this way); "legacy" never occurs.
PLAN_RATES = {"basic": 0.6, "plus": 0.3, "premium": 0.05}


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn falls with the plan tier and with age; region and noise say nothing."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(list(PLAN_RATES), n)
    age = rng.uniform(18, 80, n)
    p = np.array([PLAN_RATES[x] for x in plan]) * np.where(age < 35, 1.4, 0.7)
    y = (rng.random(n) < np.clip(p, 0, 1)).astype(int)
    age[rng.random(n) < 0.1] = np.nan  # 10 % missing ages
    data = pd.DataFrame(
        {
            "id": np.arange(n),
            "plan": plan,
            "region": rng.choice(["n", "s"], n),
            "age": age,
            "noise": rng.normal(size=n),
            "left": y,
        }
    )
    return data, y


@pytest.fixture(scope="module")
def rules() -> FallbackRules:
    train, y_train = frame(6000, 1)
    valid, y_valid = frame(2000, 2)
    test, y_test = frame(2000, 3)
    fitted = fit_rules(train, y_train, valid, y_valid, DATASET, CostParams())
    return with_test_auc(fitted, test, y_test)


def by_column(rules: FallbackRules) -> dict[str, dict[object, float]]:
    out: dict[str, dict[object, float]] = {}
    for c in rules.columns:
        out[c.column] = {e["level"]: e["points"] for e in c.levels} | {
            ("bin", i): b["points"] for i, b in enumerate(c.bins)
        }
    return out


def test_points_are_ordered_as_the_churn_rates(rules: FallbackRules) -> None:
    plan = by_column(rules)["plan"]
    assert plan["basic"] > plan["plus"] > plan["premium"]
    assert plan["basic"] > 0 > plan["premium"]  # above and below the base rate


def test_a_level_never_seen_in_training_gets_no_points(rules: FallbackRules) -> None:
    plan = next(c for c in rules.columns if c.column == "plan")
    assert by_column(rules)["plan"]["legacy"] == 0.0
    assert plan.missing_points == 0.0  # no missing plan in training: unseen values score 0
    one = {"plan": ["legacy"], "age": [50.0], "region": ["n"], "noise": [0.0]}
    other = {**one, "plan": ["not a configured level"]}
    assert rules.score(one, 1) == pytest.approx(rules.score(other, 1))


def test_a_rare_level_is_smoothed_towards_the_base_rate() -> None:
    """Three customers, all churned: the points are far smaller than the raw log-odds (inf)."""
    train = pd.DataFrame({"plan": ["basic"] * 400 + ["legacy"] * 3, "region": "n", "age": 40.0})
    train["noise"] = 0.0
    y = np.r_[np.tile([1, 0, 0, 0], 100), [1, 1, 1]]
    rules = fit_rules(train, y, train, y, DATASET, CostParams())
    legacy = by_column(rules)["plan"]["legacy"]
    rate = y.mean()
    expected = np.log((3 + SMOOTHING * rate) / (SMOOTHING * (1 - rate))) - np.log(rate / (1 - rate))
    assert legacy == pytest.approx(expected, abs=1e-4)
    assert 0 < legacy < 1.0


def test_missing_numbers_get_their_own_points_and_age_bins_fall(rules: FallbackRules) -> None:
    age = next(c for c in rules.columns if c.column == "age")
    points = [b["points"] for b in age.bins]
    assert points[0] > points[-1]  # the youngest bin churns more than the oldest
    assert [b["upto"] for b in age.bins][-1] is None
    record = {"plan": ["plus"] * 2, "region": ["n"] * 2, "noise": [0.0] * 2}
    scored = rules.score({**record, "age": [None, float("nan")]}, 2)
    assert np.isfinite(scored).all() and scored[0] == scored[1]


def test_the_strongest_columns_are_kept_and_the_rules_rank_held_out_rows(
    rules: FallbackRules,
) -> None:
    kept = [c.column for c in rules.columns]
    assert sorted(kept) == ["age", "plan"]  # region and noise say nothing: left out
    small = fit_rules(*frame(3000, 4), *frame(1000, 5), DATASET, CostParams(), max_columns=1)
    assert [c.column for c in small.columns] == kept[:1]
    assert rules.test_roc_auc is not None and rules.test_roc_auc > 0.7
    assert 0 < rules.decision_threshold < 1


def test_the_rules_file_reads_back_and_scores_the_same(
    rules: FallbackRules, tmp_path: Path
) -> None:
    path = rules.write(tmp_path / "rules.json")
    again = FallbackRules.read(path)
    assert again == rules
    test, _ = frame(300, 9)
    assert np.array_equal(again.score_frame(test), rules.score_frame(test))
    assert "how_to_read" in path.read_text()


def test_the_prior_rate_rule_scores_everyone_the_base_rate() -> None:
    prior = FallbackRules.prior(0.27, 1 / 6)
    assert prior.kind == "prior-rate"
    assert prior.score({}, 3) == pytest.approx([0.27] * 3)
    assert "all are flagged" in prior.summary()
