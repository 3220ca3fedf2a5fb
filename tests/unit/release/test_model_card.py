"""The model card is written from the run's recorded figures."""

from __future__ import annotations

from churn.champion import ChampionInfo
from churn.config.identity import identity
from churn.release.model_card import render_model_card


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
        name=identity().model_name,
        record=record,
        metrics={"test_roc_auc": 0.8391, "baseline_test_roc_auc": 0.8326, "test_recall": 0.7},
        params=params,
        row_counts={"train": 10, "valid": 2, "test": 3},
        model_params={"max_depth": 4, "learning_rate": 0.05},
    )
    assert "| ROC AUC | 0.8391 | 0.8326 |" in card
    assert "| PR AUC | n/a | n/a |" in card
    assert "**0.230**" in card and "`abc123`" in card and "`deadbeef`" in card
    assert "customerID" in card.split("Never used as features")[1]
    assert "train 10 / valid 2 / test 3" in card
    assert "XGBoost (max_depth=4, learning_rate=0.05)" in card


def test_card_says_why_this_model_and_carries_fairness_and_value(params):
    """The "why this model" paragraph, the segment table and the business value come from the
    run's comparison, segment report and value figures."""
    import numpy as np
    import pandas as pd

    from churn.training import comparison, fairness

    record = ChampionInfo(
        decision_threshold=0.5,
        test_roc_auc=0.84,
        baseline_test_roc_auc=0.83,
        data_version="abc123",
        data_files={},
        git_commit="deadbeef",
        trained_at="2026-11-22T16:00:00+00:00",
    )
    figures = [
        ("logistic", "baseline", 0.85, 0.83, 0.65, 0.14, 0.2, 0.85, 0.47, 0.4, 0.02),
        ("random_forest", "selected", 0.86, 0.84, 0.64, 0.13, 0.14, 0.84, 0.46, 3.0, 0.13),
        ("xgboost", "", 0.855, 0.839, 0.65, 0.137, 0.15, 0.81, 0.49, 2.0, 0.06),
    ]
    sizes = {"logistic": 1, "random_forest": 900, "xgboost": 330}
    rows = [
        dict(zip(comparison.COLUMNS, (*f, "compiled", sizes[f[0]]), strict=True)) for f in figures
    ]
    frame = pd.DataFrame({"gender": ["Female"] * 4 + ["Male"] * 4})
    segments = fairness.segment_metrics(
        frame, np.array([1, 1, 0, 0, 1, 1, 0, 0]), np.linspace(0.9, 0.1, 8), 0.5, ["gender"], 1
    )
    card = render_model_card(
        name=identity().model_name,
        record=record,
        metrics={},
        params=params,
        row_counts={"train": 10},
        model_params={"max_depth": 9},
        selected="random_forest",
        comparison=comparison.table(rows),
        selection_metric="valid_pr_auc",
        segments=segments,
        value_table="| the model at threshold 0.500 | 474 | 222 | 857 |\n",
    )
    why = card.split("## Why this model")[1].split("## Data")[0]
    assert why.lstrip().startswith("The random forest was selected among 3 candidates")
    assert "`train.select.metric: valid_pr_auc`" in why and "XGBoost (valid ROC AUC 0.8550" in why
    assert "baseline reaches test ROC AUC 0.8300" in why and "0.0100 above it" in why
    assert "| random forest | selected | 0.8600 | 0.8400 |" in why
    fair = card.split("## Fairness across segments")[1]
    assert "| gender = Female | 4 |" in fair and "Largest recall gap: 1.000 (gender)" in fair
    assert (
        "| the model at threshold 0.500 | 474 | 222 | 857 |" in card.split("## Business value")[1]
    )
