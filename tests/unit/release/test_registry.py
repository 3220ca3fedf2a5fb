"""The promotion gate's rules, as a pure function of test-set ROC AUCs."""

from __future__ import annotations

from churn.config.params import PromoteParams
from churn.release.registry import decide_promotion

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


def test_the_gate_refuses_a_recall_gap_above_the_configured_limit_and_only_then():
    """fairness.max_recall_gap: off (None) by default; a gap that could not be measured does
    not refuse."""
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.30).promote
    refused = decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.15, max_recall_gap=0.10)
    assert not refused.promote and "recall gap" in refused.reason
    assert "0.1500" in refused.reason and "fairness.max_recall_gap 0.1000" in refused.reason
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.05, max_recall_gap=0.10).promote
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=None, max_recall_gap=0.10).promote
