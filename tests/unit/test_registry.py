"""The promotion gate's rules, as a pure function of test-set ROC AUCs."""

from __future__ import annotations

from churn.params import PromoteParams
from churn.registry import decide_promotion

GATE = PromoteParams(min_roc_auc=0.7, margin=0.01)


def test_first_model_needs_minimum_quality():
    assert decide_promotion(0.75, 0.70, None, GATE).promote
    refused = decide_promotion(0.69, 0.60, None, GATE)
    assert not refused.promote and "below the minimum quality 0.7000" in refused.reason


def test_challenger_must_beat_the_baseline():
    refused = decide_promotion(0.80, 0.80, None, GATE)
    assert (
        not refused.promote and "does not beat the logistic-regression baseline" in refused.reason
    )


def test_challenger_must_beat_the_champion_by_the_margin():
    assert not decide_promotion(0.805, 0.7, 0.80, GATE, champion_version="3").promote
    won = decide_promotion(0.811, 0.7, 0.80, GATE, champion_version="3")
    assert won.promote and "beats champion v3 (0.8000)" in won.reason


def test_incomparable_champion_falls_back_to_first_model_rules():
    d = decide_promotion(
        0.75,
        0.7,
        None,
        GATE,
        champion_version="2",
        champion_note="champion v2 cannot score this test data",
    )
    assert d.promote and d.reason.startswith("champion v2 cannot score")
