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


def test_on_rows_held_out_from_both_the_challenger_is_judged_by_its_figure_there():
    """A split mismatch (issue #25): both models are scored on the rows neither learnt from; the
    challenger's figure there decides, not its test ROC AUC. (A champion that cannot score never
    reaches this rule: ``promotion.compare_with_champion`` refuses first.)"""
    note = "splits differ (...): compared on the 96 of 500 test rows held out from both"
    kept = decide_promotion(
        0.90,
        0.7,
        0.85,
        GATE,
        champion_version="1",
        champion_note=note,
        challenger_compared_auc=0.84,
    )
    assert not kept.promote and kept.reason.startswith(note)
    assert "ROC AUC 0.8400 on those rows (test 0.9000) does not beat champion v1" in kept.reason
    won = decide_promotion(
        0.80, 0.7, 0.85, GATE, champion_version="1", challenger_compared_auc=0.87
    )
    assert won.promote


def test_the_gate_refuses_a_recall_gap_above_the_configured_limit_and_only_then():
    """fairness.max_recall_gap: off (None) by default; a gap that could not be measured does
    not refuse."""
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.30).promote
    refused = decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.15, max_recall_gap=0.10)
    assert not refused.promote and "recall gap" in refused.reason
    assert "0.1500" in refused.reason and "fairness.max_recall_gap 0.1000" in refused.reason
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=0.05, max_recall_gap=0.10).promote
    assert decide_promotion(0.85, 0.80, None, GATE, recall_gap=None, max_recall_gap=0.10).promote
