"""The model card is written from the run's recorded figures."""

from __future__ import annotations

from churn.champion import ChampionInfo
from churn.model_card import render_model_card


def test_card_carries_the_recorded_figures(params):
    record = ChampionInfo(
        decision_threshold=0.23,
        test_roc_auc=0.8391,
        baseline_test_roc_auc=0.8326,
        data_version="abc123",
        data_files={"data/splits/train.parquet": "0" * 32},
        git_commit="deadbeef",
        trained_at="2026-11-22T16:00:00+00:00",
    )
    card = render_model_card(
        name="churn",
        record=record,
        metrics={"test_roc_auc": 0.8391, "baseline_test_roc_auc": 0.8326, "test_recall": 0.7},
        params=params,
        row_counts={"train": 10, "valid": 2, "test": 3},
        xgboost_params={"max_depth": 4, "learning_rate": 0.05},
    )
    assert "| ROC AUC | 0.8391 | 0.8326 |" in card
    assert "| PR AUC | n/a | n/a |" in card
    assert "**0.230**" in card and "`abc123`" in card and "`deadbeef`" in card
    assert "customerID" in card.split("Never used as features")[1]
    assert "train 10 / valid 2 / test 3" in card
