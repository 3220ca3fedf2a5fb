"""The activity events (churn.data.events): shape, determinism, the story, the stage's files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn.config.layout import DataLayout
from churn.config.params import Params, load_params
from churn.config.settings import Settings
from churn.data import stages
from churn.data.events import (
    EVENT_COLUMNS,
    EVENT_KINDS,
    HISTORY_DAYS,
    LABEL_TIME_COLUMNS,
    WINDOW_END,
    ActivityData,
    EventDrift,
    generate_events,
)
from churn.data.generator import generate_customers

ROOT = Path(__file__).resolve().parents[3]


def draw(customers: pd.DataFrame, seed: int = 7, drift: EventDrift | None = None) -> ActivityData:
    return generate_events(
        customers["customerID"],
        customers["Churn"] == "Yes",
        seed,
        tenure_months=customers["tenure"],
        electronic_check=customers["PaymentMethod"] == "Electronic check",
        drift=drift,
    )


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers(3000, seed=5)


@pytest.fixture(scope="module")
def activity(customers: pd.DataFrame) -> ActivityData:
    return draw(customers)


def test_tables_have_the_declared_columns_and_types(activity: ActivityData) -> None:
    assert tuple(activity.events.columns) == EVENT_COLUMNS
    assert tuple(activity.label_times.columns) == LABEL_TIME_COLUMNS
    assert str(activity.events["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert set(activity.events["event"]) == set(EVENT_KINDS)


def test_one_label_time_per_customer_within_the_window(
    customers: pd.DataFrame, activity: ActivityData
) -> None:
    labels = activity.label_times
    assert labels["customerID"].tolist() == customers["customerID"].tolist()
    end = pd.Timestamp(WINDOW_END)
    assert (labels["label_time"] < end).all()
    assert (labels["label_time"] >= end - pd.Timedelta(days=90)).all()


def test_events_belong_to_known_customers_and_stay_in_their_history(
    customers: pd.DataFrame, activity: ActivityData
) -> None:
    joined = activity.events.merge(activity.label_times, on="customerID", how="left")
    assert joined["label_time"].notna().all()
    earliest = joined["label_time"] - pd.Timedelta(days=HISTORY_DAYS)
    assert (joined["event_timestamp"] >= earliest).all()
    assert (joined["event_timestamp"] < pd.Timestamp(WINDOW_END)).all()
    # sorted by customer, then time
    first_seen = activity.events["customerID"].drop_duplicates()
    assert activity.events.groupby("customerID", sort=False).ngroups == len(first_seen)
    assert activity.events.groupby("customerID")["event_timestamp"].is_monotonic_increasing.all()


def test_churners_have_no_event_after_their_label_time_and_stayers_do(
    customers: pd.DataFrame, activity: ActivityData
) -> None:
    joined = activity.events.merge(activity.label_times, on="customerID").merge(
        customers[["customerID", "Churn"]], on="customerID"
    )
    after = joined[joined["event_timestamp"] > joined["label_time"]]
    assert set(after["Churn"]) == {"No"}
    assert len(after) > 1000


def test_churners_call_support_more_in_the_month_before_their_label(
    customers: pd.DataFrame, activity: ActivityData
) -> None:
    joined = activity.events.merge(activity.label_times, on="customerID")
    recent = joined[
        (joined["event_timestamp"] <= joined["label_time"])
        & (joined["event_timestamp"] > joined["label_time"] - pd.Timedelta(days=30))
        & (joined["event"] == "support_call")
    ]
    calls = recent.groupby("customerID").size().reindex(customers["customerID"], fill_value=0)
    churned = (customers["Churn"] == "Yes").to_numpy()
    assert calls[churned].mean() > 1.5 * calls[~churned].mean()


def test_same_seed_gives_identical_tables_and_another_seed_does_not(
    customers: pd.DataFrame, activity: ActivityData
) -> None:
    again = draw(customers)
    pd.testing.assert_frame_equal(again.events, activity.events)
    pd.testing.assert_frame_equal(again.label_times, activity.label_times)
    other = draw(customers, seed=8)
    assert not other.label_times["label_time"].equals(activity.label_times["label_time"])


def test_drift_multiplies_a_kinds_rate(customers: pd.DataFrame, activity: ActivityData) -> None:
    drifted = draw(customers, drift=EventDrift({"support_call": 3.0}))
    calls = (activity.events["event"] == "support_call").sum()
    drifted_calls = (drifted.events["event"] == "support_call").sum()
    assert 2.5 * calls < drifted_calls < 3.5 * calls


@pytest.mark.parametrize(
    ("factors", "message"),
    [({"refund": 2.0}, "unknown event kind 'refund'"), ({"login": -1.0}, "must be a number >= 0")],
)
def test_a_bad_drift_names_its_field(factors: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventDrift(factors)


def test_misaligned_labels_are_refused(customers: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="one label per customer"):
        generate_events(customers["customerID"], customers["Churn"].iloc[:10] == "Yes")


def _project(tmp_path: Path, params: Params) -> tuple[Settings, Params]:
    settings = Settings(project_dir=tmp_path, data_dir=tmp_path / "data")
    stages.ingest(settings, params)
    return settings, params


def test_the_stage_writes_both_tables_for_the_generated_customers(tmp_path: Path) -> None:
    base = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    base["ingest"]["generator"] = {"n_rows": 500, "seed": 3}
    settings, params = _project(tmp_path, Params.model_validate(base))
    count = stages.events(settings, params)
    layout = DataLayout(settings.data_dir)
    events = pd.read_parquet(layout.events)
    label_times = pd.read_parquet(layout.label_times)
    raw = pd.read_parquet(layout.raw)
    assert count == len(events) > 0
    assert label_times["customerID"].tolist() == raw["customerID"].tolist()
    assert set(events["customerID"]) <= set(raw["customerID"])
    stages.events(settings, params)  # a re-run gives the same files
    pd.testing.assert_frame_equal(pd.read_parquet(layout.events), events)


def test_a_data_set_of_ones_own_gets_empty_tables(tmp_path: Path) -> None:
    source = tmp_path / "mine.csv"
    generate_customers(50, seed=1).to_csv(source, index=False)
    base = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    base["ingest"].update(kind="file", path=str(source))
    settings, params = _project(tmp_path, Params.model_validate(base))
    assert stages.events(settings, params) == 0
    layout = DataLayout(settings.data_dir)
    assert pd.read_parquet(layout.events).columns.tolist() == list(EVENT_COLUMNS)
    assert pd.read_parquet(layout.label_times).empty


def test_the_dask_engine_gets_empty_tables(tmp_path: Path) -> None:
    """The store joins on the pandas engine only: at a plug-in engine's scale no events drawn."""
    base = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    base["engine"]["kind"] = "dask"
    params = Params.model_validate(base)
    settings = Settings(project_dir=tmp_path, data_dir=tmp_path / "data")
    layout = DataLayout(settings.data_dir)
    layout.raw.parent.mkdir(parents=True)
    generate_customers(50, seed=1).to_parquet(layout.raw, index=False)
    assert stages.events(settings, params) == 0
    assert pd.read_parquet(layout.label_times).empty
