"""Tests of the seeded synthetic churn generator: format, quirks, story, drift and arguments."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from churn.data.generator import COLUMNS, Drift, generate_customers

# The public IBM Telco CSV, written out by hand so that the test does not trust the module.
REAL_COLUMNS = [
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
]
YES_NO = {"Yes", "No"}
ADDONS = [
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
]
REAL_LEVELS: dict[str, set[str]] = {
    "gender": {"Female", "Male"},
    "Partner": YES_NO,
    "Dependents": YES_NO,
    "PhoneService": YES_NO,
    "MultipleLines": {"Yes", "No", "No phone service"},
    "InternetService": {"DSL", "Fiber optic", "No"},
    **{name: {"Yes", "No", "No internet service"} for name in ADDONS},
    "Contract": {"Month-to-month", "One year", "Two year"},
    "PaperlessBilling": YES_NO,
    "PaymentMethod": {
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    },
    "Churn": YES_NO,
}
AUTOMATIC = ["Bank transfer (automatic)", "Credit card (automatic)"]


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_customers(3000, seed=11)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """Enough rows for rates and shares to be tight (standard error of a share < 0.003)."""
    return generate_customers(50_000, seed=5)


def churned(df: pd.DataFrame) -> pd.Series:
    return df["Churn"] == "Yes"


def rate(df: pd.DataFrame, mask: pd.Series) -> float:
    return float(churned(df)[mask].mean())


def total_as_number(df: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(df["TotalCharges"].where(df["TotalCharges"] != " "), errors="raise")


# --- Format -------------------------------------------------------------------------------------


def test_columns_are_the_real_ones_in_order(small: pd.DataFrame) -> None:
    assert list(COLUMNS) == REAL_COLUMNS
    assert list(small.columns) == REAL_COLUMNS
    assert len(small) == 3000


def test_dtypes_match_a_plain_read_csv_of_the_real_file(small: pd.DataFrame) -> None:
    assert small["SeniorCitizen"].dtype == np.int64
    assert small["tenure"].dtype == np.int64
    assert small["MonthlyCharges"].dtype == np.float64
    for name in set(REAL_COLUMNS) - {"SeniorCitizen", "tenure", "MonthlyCharges"}:
        assert small[name].dtype == object, name
        assert small[name].map(lambda value: isinstance(value, str)).all(), name


def test_levels_are_exactly_the_real_levels(small: pd.DataFrame) -> None:
    for name, levels in REAL_LEVELS.items():
        assert set(small[name].unique()) == levels, name
    assert set(small["SeniorCitizen"].unique()) == {0, 1}


def test_customer_ids_are_unique_and_shaped_like_the_real_ones(small: pd.DataFrame) -> None:
    assert small["customerID"].is_unique
    assert small["customerID"].str.fullmatch(r"\d{4}-[A-Z]{5}").all()


def test_numeric_ranges(large: pd.DataFrame) -> None:
    assert large["tenure"].between(0, 72).all()
    assert large["tenure"].max() == 72
    charges = large["MonthlyCharges"]
    assert charges.between(15, 125).all()
    assert charges.min() < 20 and charges.max() > 115
    # Two decimals at most; like the real file, every charge is a multiple of 5 cents.
    assert np.allclose(charges * 20, np.rint(charges * 20))


# --- Quirks -------------------------------------------------------------------------------------


def test_total_charges_is_a_blank_exactly_where_tenure_is_zero(large: pd.DataFrame) -> None:
    blank = large["TotalCharges"] == " "
    assert blank.sum() > 0, "no tenure-0 rows: the quirk is not exercised"
    assert (blank == (large["tenure"] == 0)).all()
    assert not large["TotalCharges"].str.strip().eq("").loc[~blank].any()


def test_total_charges_text_looks_like_the_real_csv(large: pd.DataFrame) -> None:
    text = large.loc[large["tenure"] > 0, "TotalCharges"]
    assert text.str.fullmatch(r"\d+(\.\d{1,2})?").all()
    assert not text.str.endswith((".0", ".00")).any()  # '97', not '97.0', as in the real file
    assert not text.str.fullmatch(r"\d+\.\d0").any()  # '1889.5', not '1889.50'


def test_total_charges_is_about_tenure_times_monthly(large: pd.DataFrame) -> None:
    total = total_as_number(large)
    known = large["tenure"] > 0
    assert (total[known] >= 0).all()
    ratio = total[known] / (large["tenure"][known] * large["MonthlyCharges"][known])
    assert ratio.between(0.55, 1.65).all()
    assert abs(ratio.median() - 1) < 0.01
    assert 0.02 < ratio.std() < 0.1
    first_month = large["tenure"] == 1
    assert np.allclose(total[first_month], large.loc[first_month, "MonthlyCharges"])


def test_no_service_levels_are_consistent(large: pd.DataFrame) -> None:
    no_phone = large["PhoneService"] == "No"
    assert ((large["MultipleLines"] == "No phone service") == no_phone).all()
    no_internet = large["InternetService"] == "No"
    for name in ADDONS:
        assert ((large[name] == "No internet service") == no_internet).all(), name
    # Everyone has at least one service, as in the real file.
    assert not (no_phone & no_internet).any()


def test_tenure_zero_customers_have_not_churned(large: pd.DataFrame) -> None:
    assert not churned(large)[large["tenure"] == 0].any()


# --- Determinism --------------------------------------------------------------------------------


def test_same_seed_gives_an_identical_frame() -> None:
    pd.testing.assert_frame_equal(generate_customers(500, seed=3), generate_customers(500, seed=3))


def test_different_seeds_give_different_customers() -> None:
    a, b = generate_customers(1000, seed=1), generate_customers(1000, seed=2)
    assert not a.drop(columns="customerID").equals(b.drop(columns="customerID"))
    assert not set(a["customerID"]) & set(b["customerID"])


def test_default_seed_is_42() -> None:
    pd.testing.assert_frame_equal(generate_customers(200), generate_customers(200, seed=42))


def test_id_prefix_is_put_in_front_of_every_id() -> None:
    plain = generate_customers(300, seed=8)
    prefixed = generate_customers(300, seed=8, id_prefix="B2-")
    assert (prefixed["customerID"] == "B2-" + plain["customerID"]).all()
    pd.testing.assert_frame_equal(
        plain.drop(columns="customerID"), prefixed.drop(columns="customerID")
    )


# --- The generative story -----------------------------------------------------------------------


def test_churn_rate_is_like_the_real_data(large: pd.DataFrame) -> None:
    assert 0.24 < churned(large).mean() < 0.29  # real file: 26.5 %


def test_marginals_are_near_the_real_file(large: pd.DataFrame) -> None:
    real = {
        "Contract": {"Month-to-month": 0.550, "One year": 0.209, "Two year": 0.241},
        "InternetService": {"DSL": 0.344, "Fiber optic": 0.440, "No": 0.217},
        "PaymentMethod": {
            "Electronic check": 0.336,
            "Mailed check": 0.229,
            "Bank transfer (automatic)": 0.219,
            "Credit card (automatic)": 0.216,
        },
    }
    for name, shares in real.items():
        observed = large[name].value_counts(normalize=True)
        for level, share in shares.items():
            assert abs(observed[level] - share) < 0.03, (name, level, observed[level])
    assert abs(large["tenure"].mean() - 32.4) < 2.0
    assert abs(large["MonthlyCharges"].mean() - 64.8) < 2.0
    assert abs(large["SeniorCitizen"].mean() - 0.162) < 0.02


def test_churn_drivers_push_in_the_known_directions(large: pd.DataFrame) -> None:
    col = large.__getitem__
    assert rate(large, col("Contract") == "Month-to-month") > 3 * rate(
        large, col("Contract") == "Two year"
    )
    assert rate(large, col("Contract") == "One year") > rate(large, col("Contract") == "Two year")
    assert rate(large, col("PaymentMethod") == "Electronic check") > rate(
        large, col("PaymentMethod").isin(AUTOMATIC)
    )
    assert rate(large, col("InternetService") == "Fiber optic") > rate(
        large, col("InternetService") == "DSL"
    )
    assert rate(large, col("tenure").between(1, 6)) > 2 * rate(large, col("tenure") > 48)
    assert rate(large, col("SeniorCitizen") == 1) > rate(large, col("SeniorCitizen") == 0)
    assert rate(large, col("Partner") == "Yes") < rate(large, col("Partner") == "No")
    assert rate(large, col("Dependents") == "Yes") < rate(large, col("Dependents") == "No")
    assert rate(large, col("PaperlessBilling") == "Yes") > rate(
        large, col("PaperlessBilling") == "No"
    )
    for addon in ("OnlineSecurity", "TechSupport"):
        assert rate(large, col(addon) == "No") > rate(large, col(addon) == "Yes"), addon
    assert rate(large, col("MonthlyCharges") > 70) > rate(large, col("MonthlyCharges") < 30)
    # Gender has no effect: the two rates differ by sampling noise only (s.e. about 0.004).
    assert abs(rate(large, col("gender") == "Male") - rate(large, col("gender") == "Female")) < 0.02


def test_services_and_charges_hang_together(large: pd.DataFrame) -> None:
    by_internet = large.groupby("InternetService")["MonthlyCharges"].mean()
    assert by_internet["No"] < by_internet["DSL"] < by_internet["Fiber optic"]
    by_contract = large.groupby("Contract")["tenure"].mean()
    assert by_contract["Month-to-month"] < by_contract["One year"] < by_contract["Two year"]
    fiber_only_phone = large.loc[large["InternetService"] == "Fiber optic", "PhoneService"]
    assert (fiber_only_phone == "Yes").all()


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties get average ranks)."""
    ranks = pd.Series(score).rank().to_numpy()
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge logistic regression by Newton's method (sklearn's default model, without sklearn)."""
    w = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0  # no penalty on the intercept
    for _ in range(25):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - y) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        w -= np.linalg.solve(hessian, gradient)
    return w


def test_a_linear_model_lands_in_the_real_auc_range() -> None:
    # Real file, one-hot logistic regression on a stratified 80/20 split: 0.842.
    df = generate_customers(20_000, seed=42)
    features = df.drop(columns=["customerID", "Churn", "TotalCharges"])
    onehot = pd.get_dummies(features, columns=[c for c in features if features[c].dtype == object])
    numeric = ["tenure", "MonthlyCharges"]
    onehot[numeric] = (onehot[numeric] - onehot[numeric].mean()) / onehot[numeric].std()
    x = np.column_stack([np.ones(len(df)), onehot.to_numpy(dtype=float)])
    y = churned(df).to_numpy()
    test = np.random.default_rng(42).permutation(len(df))[: len(df) // 5]
    is_test = np.zeros(len(df), dtype=bool)
    is_test[test] = True
    w = fit_logistic(x[~is_test], y[~is_test].astype(float))
    auc = roc_auc(x[is_test] @ w, y[is_test])
    assert 0.80 < auc < 0.88


# --- Drift --------------------------------------------------------------------------------------


def test_charges_factor_scales_monthly_and_total_charges() -> None:
    base = generate_customers(20_000, seed=9)
    drifted = generate_customers(20_000, seed=9, drift=Drift(monthly_charges_factor=1.3))
    ratio = drifted["MonthlyCharges"].mean() / base["MonthlyCharges"].mean()
    assert ratio == pytest.approx(1.3, abs=0.005)
    total_ratio = total_as_number(drifted).sum() / total_as_number(base).sum()
    assert total_ratio == pytest.approx(1.3, abs=0.005)
    assert ((drifted["TotalCharges"] == " ") == (base["TotalCharges"] == " ")).all()
    untouched = [c for c in REAL_COLUMNS if c not in {"MonthlyCharges", "TotalCharges", "Churn"}]
    pd.testing.assert_frame_equal(base[untouched], drifted[untouched])
    # Churn still follows the story: a price rise makes nobody stay who would have left.
    assert not (churned(base) & ~churned(drifted)).any()
    assert churned(drifted).mean() > churned(base).mean() + 0.01


def test_contract_mix_is_followed_and_the_rest_of_the_story_with_it() -> None:
    mix = {"Month-to-month": 0.9, "One year": 0.1}
    drifted = generate_customers(20_000, seed=4, drift=Drift(contract_mix=mix))
    shares = drifted["Contract"].value_counts(normalize=True)
    assert "Two year" not in shares
    assert shares["Month-to-month"] == pytest.approx(0.9, abs=0.015)
    assert shares["One year"] == pytest.approx(0.1, abs=0.015)
    base = generate_customers(20_000, seed=4)
    assert churned(drifted).mean() > churned(base).mean() + 0.05
    assert drifted["tenure"].mean() < base["tenure"].mean() - 5


def test_new_category_appears_in_about_the_chosen_share() -> None:
    base = generate_customers(5000, seed=6)
    drift = Drift(new_category={"PaymentMethod": "Crypto wallet"}, new_category_share=0.3)
    drifted = generate_customers(5000, seed=6, drift=drift)
    is_new = drifted["PaymentMethod"] == "Crypto wallet"
    assert is_new.mean() == pytest.approx(0.3, abs=0.01)
    assert set(drifted["PaymentMethod"]) == REAL_LEVELS["PaymentMethod"] | {"Crypto wallet"}
    assert (drifted.loc[~is_new, "PaymentMethod"] == base.loc[~is_new, "PaymentMethod"]).all()
    pd.testing.assert_frame_equal(
        base.drop(columns="PaymentMethod"), drifted.drop(columns="PaymentMethod")
    )


def test_new_categories_in_two_columns() -> None:
    drift = Drift(new_category={"Contract": "Three year", "gender": "Other"})
    drifted = generate_customers(2000, seed=1, drift=drift)
    assert (drifted["Contract"] == "Three year").mean() == pytest.approx(0.2, abs=0.01)
    assert (drifted["gender"] == "Other").mean() == pytest.approx(0.2, abs=0.01)


def test_drift_with_labels_keeps_the_format() -> None:
    drift = Drift(monthly_charges_factor=0.8, contract_mix={"Two year": 1.0})
    drifted = generate_customers(2000, seed=2, drift=drift)
    assert list(drifted.columns) == REAL_COLUMNS
    assert drifted["MonthlyCharges"].dtype == np.float64
    assert set(drifted["Churn"]) <= YES_NO
    assert ((drifted["TotalCharges"] == " ") == (drifted["tenure"] == 0)).all()


# --- Timestamps ---------------------------------------------------------------------------------


def test_timestamps_are_utc_sorted_and_spread_evenly_over_the_period() -> None:
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    period = timedelta(days=7)
    df = generate_customers(1000, seed=1, start=start, period=period)
    assert list(df.columns) == [*REAL_COLUMNS, "timestamp"]
    stamps = df["timestamp"]
    assert str(stamps.dtype) == "datetime64[ns, UTC]"
    assert stamps.is_monotonic_increasing
    assert stamps.iloc[0] == pd.Timestamp(start)
    assert stamps.iloc[-1] < pd.Timestamp(start + period)
    gaps = stamps.diff().dropna()
    gap_ns = gaps.astype("int64")
    assert gap_ns.max() - gap_ns.min() <= 1  # nanosecond rounding only
    assert gaps.mean() == pd.Timedelta(period) / 1000


def test_timestamps_accept_naive_and_other_zones() -> None:
    naive = generate_customers(10, seed=1, start=datetime(2025, 1, 1))
    assert naive["timestamp"].iloc[0] == pd.Timestamp("2025-01-01T00:00:00Z")
    plus_two = timezone(timedelta(hours=2))
    zoned = generate_customers(10, seed=1, start=datetime(2025, 1, 1, 2, tzinfo=plus_two))
    pd.testing.assert_series_equal(naive["timestamp"], zoned["timestamp"])


def test_timestamps_do_not_change_the_customers() -> None:
    plain = generate_customers(300, seed=12)
    stamped = generate_customers(300, seed=12, start=datetime(2025, 1, 1, tzinfo=UTC))
    pd.testing.assert_frame_equal(plain, stamped.drop(columns="timestamp"))


# --- Arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": -5}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"n_rows": 10, "seed": -1}, "seed"),
        ({"n_rows": 10, "period": timedelta(0)}, "period"),
        ({"n_rows": 10, "start": "2025-01-01"}, "start"),
        ({"n_rows": 10, "id_prefix": 7}, "id_prefix"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_customers(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"contract_mix": {"Month-to-month": 0.5, "One year": 0.2}}, "sum to 1"),
        ({"contract_mix": {"Month-to-month": 0.5, "Three year": 0.5}}, "unknown contracts"),
        ({"contract_mix": {"Month-to-month": 1.5, "One year": -0.5}}, ">= 0"),
        ({"new_category": {"Colour": "Blue"}}, "unknown column"),
        ({"new_category": {"tenure": "forever"}}, "unknown column"),
        ({"new_category": {"SeniorCitizen": "Maybe"}}, "SeniorCitizen"),
        ({"new_category": {"Contract": "One year"}}, "already a level"),
        ({"new_category": {"Contract": "X"}, "new_category_share": 0.0}, re.escape("(0, 1]")),
        ({"new_category": {"Contract": "X"}, "new_category_share": 1.5}, re.escape("(0, 1]")),
        ({"monthly_charges_factor": 0.0}, "monthly_charges_factor"),
        ({"monthly_charges_factor": float("inf")}, "monthly_charges_factor"),
    ],
)
def test_bad_drifts_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Drift(**kwargs)  # type: ignore[arg-type]


def test_a_drift_changed_after_construction_is_rejected_by_the_generator() -> None:
    drift = Drift(contract_mix={"Month-to-month": 1.0})
    assert drift.contract_mix is not None
    drift.contract_mix["One year"] = 0.5  # the dict is mutable even though Drift is frozen
    with pytest.raises(ValueError, match="sum to 1"):
        generate_customers(10, drift=drift)


def test_share_of_one_replaces_every_row() -> None:
    drift = Drift(new_category={"InternetService": "Satellite"}, new_category_share=1.0)
    assert (generate_customers(50, seed=1, drift=drift)["InternetService"] == "Satellite").all()
