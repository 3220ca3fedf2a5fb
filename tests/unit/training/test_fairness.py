"""Per-segment figures match a hand computation on a tiny frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.training.fairness import segment_metrics


def tiny() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Ten customers, two segment columns; threshold 0.5 flags proba >= 0.5."""
    frame = pd.DataFrame(
        {
            "gender": ["F", "F", "F", "F", "F", "M", "M", "M", "M", "M"],
            "SeniorCitizen": [0, 0, 1, 1, 0, 0, 0, 0, 1, 1],
        }
    )
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 0])
    proba = np.array([0.9, 0.4, 0.6, 0.1, 0.7, 0.8, 0.7, 0.2, 0.3, 0.1])
    return frame, y, proba


def test_segment_figures_match_a_hand_computation():
    frame, y, proba = tiny()
    report = segment_metrics(frame, y, proba, 0.5, ["gender", "SeniorCitizen"], min_rows=1)
    rows = {(r["column"], r["level"]): r for r in report.records()}
    # gender = F: y 1 1 0 0 1, flagged 1 0 1 0 1 -> TP 2 of 3 churners, FP 1 of 2 stayers.
    f = rows[("gender", "F")]
    assert (f["rows"], f["churn_rate"]) == (5, pytest.approx(0.6))
    assert f["recall"] == pytest.approx(2 / 3) and f["false_positive_rate"] == pytest.approx(0.5)
    # ROC AUC by pairs: churners 0.9 0.4 0.7 vs stayers 0.6 0.1 -> 5 of 6 pairs ordered.
    assert f["roc_auc"] == pytest.approx(5 / 6)
    # gender = M: y 1 0 0 1 0, flagged 1 1 0 0 0 -> TP 1 of 2, FP 1 of 3.
    m = rows[("gender", "M")]
    assert m["recall"] == pytest.approx(0.5) and m["false_positive_rate"] == pytest.approx(1 / 3)
    # churners 0.8 0.3 vs stayers 0.7 0.2 0.1 -> 5 of 6 pairs.
    assert m["roc_auc"] == pytest.approx(5 / 6) and m["churn_rate"] == pytest.approx(0.4)
    # SeniorCitizen = 1: y 0 0 1 0, flagged 1 0 0 0 -> recall 0, FPR 1/3; = 0: recall 3/4, FPR 1/2.
    s1, s0 = rows[("SeniorCitizen", 1)], rows[("SeniorCitizen", 0)]
    assert s1["recall"] == 0 and s1["false_positive_rate"] == pytest.approx(1 / 3)
    assert s0["recall"] == pytest.approx(3 / 4) and s0["false_positive_rate"] == pytest.approx(0.5)
    assert report.gaps["gender"]["recall"] == pytest.approx(2 / 3 - 1 / 2)
    assert report.gaps["SeniorCitizen"]["recall"] == pytest.approx(3 / 4)
    assert report.gaps["SeniorCitizen"]["false_positive_rate"] == pytest.approx(0.5 - 1 / 3)
    assert report.max_recall_gap == pytest.approx(3 / 4)
    assert report.worst_column == "SeniorCitizen"
    metrics = report.metrics()
    assert metrics["fairness_max_recall_gap"] == pytest.approx(3 / 4)
    assert metrics["fairness_gender_recall_gap"] == pytest.approx(1 / 6)


def test_small_or_one_class_segments_are_reported_but_not_counted_in_the_gaps():
    frame, y, proba = tiny()
    report = segment_metrics(frame, y, proba, 0.5, ["SeniorCitizen"], min_rows=5)
    # SeniorCitizen = 1 has 4 rows (< 5): in the table, out of the gaps (one level left).
    assert set(report.table["level"]) == {0, 1}
    assert report.gaps["SeniorCitizen"]["recall"] is None and report.max_recall_gap is None
    one_class = segment_metrics(frame.head(2), y[:2], proba[:2], 0.5, ["gender"], min_rows=1)
    row = one_class.records()[0]
    assert row["roc_auc"] is None and row["false_positive_rate"] is None and row["recall"] == 0.5
    assert (
        "| gender = F (few rows) |"
        in segment_metrics(frame, y, proba, 0.5, ["gender"], min_rows=6).markdown()
    )
