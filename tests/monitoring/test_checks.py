"""Evidently checks on generated data, the log window (sampling included) and late labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.config.params import MonitorParams, load_params
from churn.data.generator import Drift, generate_customers
from churn.prediction_store import SCORE_COLUMN, PredictionStore
from monitoring.data import features_frame, join_labels
from monitoring.report import TARGET, as_categories, check_data, check_quality
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch

ROOT = Path(__file__).resolve().parents[2]
DATASET = load_params(ROOT / "params.yaml").dataset
KEY = b"test-key"
PRICE_RISE = Drift(monthly_charges_factor=1.1)  # the "known shift": prices up 10 %


def _frame(rows: int, seed: int, drift: Drift | None = None) -> pd.DataFrame:
    customers = generate_customers(rows, seed, drift=drift)
    frame = features_frame(customers, DATASET)
    # A stand-in score that depends on the inputs, so prediction drift follows input drift.
    frame[SCORE_COLUMN] = 1 / (1 + np.exp(-(frame["MonthlyCharges"] - 70) / 20))
    frame[TARGET] = (customers["Churn"] == "Yes").astype("int64")
    frame["customerID"] = customers["customerID"]
    return frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _frame(4000, seed=1)


def test_unshifted_traffic_is_not_flagged(reference, tmp_path):
    checks = check_data(reference, _frame(3000, 2), DATASET, MonitorParams(), tmp_path / "r.html")
    assert checks.drifted_columns == [] and checks.drifted_share == 0
    assert not checks.prediction.drifted
    assert set(checks.columns) == set(DATASET.feature_columns)
    assert checks.unseen_share["PaymentMethod"] == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_shifts_are_flagged_by_column_with_a_test_suited_to_its_type(reference):
    drift = Drift(
        monthly_charges_factor=1.3,
        contract_mix={"Month-to-month": 0.85, "One year": 0.1, "Two year": 0.05},
        new_category={"PaymentMethod": "Crypto wallet"},
        new_category_share=0.15,
    )
    checks = check_data(reference, _frame(3000, 3, drift), DATASET, MonitorParams())
    assert {"MonthlyCharges", "TotalCharges", "Contract", "PaymentMethod"} <= set(
        checks.drifted_columns
    )
    assert "gender" not in checks.drifted_columns
    assert checks.columns["MonthlyCharges"].method.startswith("Wasserstein")
    assert checks.columns["Contract"].method.startswith("Jensen-Shannon")
    assert checks.prediction.drifted
    assert checks.unseen_share["PaymentMethod"] == pytest.approx(0.15, abs=0.01)
    assert checks.drifted_share == pytest.approx(len(checks.drifted_columns) / 19)


def test_a_small_reference_gets_statistical_tests(reference):
    checks = check_data(reference.head(800), _frame(600, 4, PRICE_RISE), DATASET, MonitorParams())
    assert checks.columns["MonthlyCharges"].method.startswith("K-S")
    assert checks.columns["MonthlyCharges"].drifted
    assert checks.columns["Contract"].method.startswith("chi-square")
    assert checks.columns["gender"].method.startswith("Z-test")


def test_quality_on_labelled_traffic_reads_both_sides(reference):
    labelled = _frame(1000, 5)
    quality = check_quality(reference, labelled, threshold=0.3)
    assert 0.5 < quality.roc_auc < 1 and 0.5 < quality.reference_roc_auc < 1
    assert quality.labelled_rows == 1000 and 0 < quality.recall <= 1
    # Scores that ignore the inputs are no better than chance.
    noise = labelled.assign(**{SCORE_COLUMN: np.random.default_rng(0).random(1000)})
    assert check_quality(reference, noise, threshold=0.3).roc_auc < 0.6


def _store(url: str) -> PredictionStore:
    return PredictionStore(url, url, KEY, create=True)


def _log(url: str, frames: list[pd.DataFrame], version: str = "1") -> None:
    log = PredictionLog(_store(url), ServingMetrics())
    log.start()
    for frame in frames:
        features = frame[DATASET.feature_columns].astype(object)
        features = features.where(features.notna(), None)
        log.submit(
            ScoredBatch(
                datetime.now(UTC),
                "req",
                version,
                frame["customerID"].tolist(),
                {c: features[c].tolist() for c in features.columns},
                frame[SCORE_COLUMN].to_numpy(),
                frame[SCORE_COLUMN].to_numpy() > 0.5,
                1.0,
                None,
            )
        )
    log.close()


def test_the_window_is_the_newest_rows_of_the_champion(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    old, new = _frame(300, 6), _frame(200, 7)
    _log(url, [old])
    _log(url, [_frame(50, 8)], version="fallback-rules")
    _log(url, [new])
    store = _store(url)
    window = store.read_window(250, max_rows=10_000, model_version="1")
    assert window.total_rows == 250 and not window.sampled
    assert set(window.frame["customer_hash"]) >= set(store.hash_ids(new["customerID"].tolist()))
    assert (window.frame["model_version"] == "1").all()
    row = window.frame.iloc[-1]
    assert row["Contract"] == new["Contract"].iloc[-1]
    assert row["MonthlyCharges"] == pytest.approx(new["MonthlyCharges"].iloc[-1])
    future = datetime.now(UTC) + timedelta(hours=1)
    empty = store.read_window(250, hours=0.5, max_rows=10, now=future)
    assert empty.total_rows == 0
    assert _store(f"sqlite:///{tmp_path / 'none.db'}").read_window(5000, max_rows=5).rows == 0


def test_a_sampled_window_still_flags_a_ten_percent_price_rise(tmp_path, reference):
    """Sampling 2,000 of 20,000 logged rows keeps the power to see prices up 10 %."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _log(url, [_frame(20_000, 9, PRICE_RISE)])
    window = _store(url).read_window(20_000, max_rows=2000, seed=3)
    assert window.sampled and window.total_rows == 20_000 and window.rows == 2000
    current = features_frame(window.frame, DATASET)
    current[SCORE_COLUMN] = window.frame[SCORE_COLUMN].to_numpy()
    checks = check_data(reference, current, DATASET, MonitorParams())
    assert "MonthlyCharges" in checks.drifted_columns


def test_labels_arriving_late_are_joined_by_hashed_id(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    frame = _frame(400, 10)
    _log(url, [frame])
    store = _store(url)
    window = store.read_window(1000, max_rows=1000)
    assert join_labels(window, store).empty  # nothing known yet
    first = frame.iloc[:100]
    store.write_labels(first["customerID"].tolist(), (first[TARGET] == 1).tolist())
    joined = join_labels(window, store)
    assert len(joined) == 100
    hashes = store.hash_ids(first["customerID"].tolist())
    expected = dict(zip(hashes, first[TARGET], strict=True))
    assert (joined[TARGET] == joined["customer_hash"].map(expected)).all()
    # A corrected label later wins over the first one.
    customer = first["customerID"].iloc[0]
    store.write_labels([customer], [not bool(first[TARGET].iloc[0])])
    latest = store.read_labels([store.hash_id(customer)])
    assert len(latest) == 1 and latest["churned"].iloc[0] != bool(first[TARGET].iloc[0])


def test_categories_are_shared_by_both_frames_and_keep_every_value(reference):
    current = _frame(300, seed=5)
    current.loc[:9, "PaymentMethod"] = "Crypto"  # unseen by the contract and the reference
    current.loc[10:14, "Contract"] = np.nan
    as_current, as_reference = as_categories(current, reference, DATASET)
    for name in DATASET.categorical:
        assert as_current[name].dtype == as_reference[name].dtype
        assert as_current[name].astype(object).equals(current[name].astype(object))
        assert as_reference[name].astype(object).equals(reference[name].astype(object))
    assert "Crypto" in as_current["PaymentMethod"].cat.categories
    assert as_current["Contract"].isna().sum() == 5
    assert as_current["MonthlyCharges"].equals(current["MonthlyCharges"])  # numbers untouched
