"""The decision rules: thresholds, cooldown, insufficient data, retraining switched off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from churn.config.params import MonitorParams
from monitoring.decision import decide, insufficient
from monitoring.report import ColumnDrift, DataChecks, QualityChecks

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
COLUMNS = [f"c{i}" for i in range(10)]


def _data(drifted: int) -> DataChecks:
    columns = {
        c: ColumnDrift(c, "Jensen-Shannon distance", 0.1, 0.2 if i < drifted else 0.01, i < drifted)
        for i, c in enumerate(COLUMNS)
    }
    return DataChecks(
        current_rows=1000,
        reference_rows=1000,
        columns=columns,
        prediction=ColumnDrift(
            "churn_probability", "Wasserstein distance (normed)", 0.1, 0.0, False
        ),
        drifted_columns=COLUMNS[:drifted],
        drifted_share=drifted / len(COLUMNS),
        missing_share=dict.fromkeys(COLUMNS, 0.0),
        unseen_share={"c9": 0.1},
    )


def _quality(auc: float) -> QualityChecks:
    return QualityChecks(400, auc, 0.6, reference_roc_auc=0.85, reference_recall=0.7)


def _decide(drifted: int = 0, quality: QualityChecks | None = None, last=None, **params):
    return decide(
        _data(drifted),
        quality,
        MonitorParams(**params),
        window_rows=1000,
        labelled_rows=quality.labelled_rows if quality else 0,
        last_retrain_at=last,
        now=NOW,
    )


def test_no_drift_and_no_labels_means_no_retrain():
    decision = _decide(drifted=1)
    assert decision.action == "none" and not decision.drift_detected
    assert decision.quality_drop is None and "quality not judged" in decision.reason
    assert decision.drifted_columns == ["c0"] and decision.unseen_columns == ["c9"]


@pytest.mark.parametrize(("drifted", "action"), [(2, "none"), (3, "retrain"), (10, "retrain")])
def test_the_drifted_share_threshold_is_inclusive(drifted, action):
    decision = _decide(drifted=drifted, drift_share=0.3)
    assert decision.action == action
    assert decision.drifted_share == pytest.approx(drifted / 10)


def test_a_quality_drop_alone_triggers_a_retrain():
    decision = _decide(quality=_quality(0.79), quality_drop=0.05)
    assert decision.action == "retrain" and decision.quality_degraded
    assert decision.quality_drop == pytest.approx(0.06)
    assert "quality drop" in decision.reason and not decision.drift_detected


def test_a_small_quality_drop_does_not():
    decision = _decide(quality=_quality(0.83), quality_drop=0.05)
    assert decision.action == "none" and not decision.quality_degraded


def test_cooldown_blocks_a_second_retrain_then_expires():
    recent = NOW - timedelta(hours=2)
    decision = _decide(drifted=5, last=recent, cooldown_hours=24)
    assert decision.action == "cooldown" and decision.drift_detected
    assert "cooldown" in decision.reason
    assert _decide(drifted=5, last=NOW - timedelta(hours=25), cooldown_hours=24).action == "retrain"


def test_retrain_switched_off_reports_what_it_would_do():
    assert _decide(drifted=5, retrain=False).action == "retrain-disabled"


def test_a_small_window_is_insufficient_data_not_an_alarm():
    decision = insufficient(120, MonitorParams(min_rows=500))
    assert decision.action == "insufficient-data" and not decision.drift_detected
    assert "120" in decision.reason and "500" in decision.reason
