"""The store's rolling aggregates, checked against a plain count of the events (no Feast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.config.feature_store import EVENT_KINDS, FeatureStoreParams
from churn.data.events import generate_events
from churn.data.generator import generate_customers

pytest.importorskip(
    "feast", reason="the optional feast group is not installed (uv sync --extra feast)"
)

from churn.feature_store.aggregates import aggregate, snapshot_grid


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, pd.Series]:
    customers = generate_customers(60, seed=11)
    activity = generate_events(customers["customerID"], customers["Churn"] == "Yes", seed=4)
    ids = customers["customerID"]
    return activity.events, pd.concat([ids, pd.Series(["NO-EVENTS"])], ignore_index=True)


def test_counts_and_recency_equal_a_plain_count_of_the_events(
    sample: tuple[pd.DataFrame, pd.Series],
) -> None:
    events, customers = sample
    params = FeatureStoreParams(windows_days=(7, 30), snapshot_hours=12)
    end = events["event_timestamp"].max()
    grid = snapshot_grid(events, end, params.snapshot_hours)
    table = aggregate(events, customers, params, grid)
    assert len(table) == len(customers) * len(grid)
    rng = np.random.default_rng(0)
    for row in table.iloc[rng.choice(len(table), size=300, replace=False)].itertuples():
        mine = events[
            (events["customerID"] == row.customerID)
            & (events["event_timestamp"] <= row.event_timestamp)
        ]
        for kind in EVENT_KINDS:
            of_kind = mine[mine["event"] == kind]
            for days in (7, 30):
                since = row.event_timestamp - pd.Timedelta(days=days)
                expected = int((of_kind["event_timestamp"] > since).sum())
                assert getattr(row, f"{kind}_count_{days}d") == expected
            age = (row.event_timestamp - of_kind["event_timestamp"].max()) / pd.Timedelta(days=1)
            expected_age = 30.0 if of_kind.empty else min(age, 30.0)
            assert getattr(row, f"days_since_{kind}") == pytest.approx(expected_age, abs=1e-3)


def test_a_customer_without_events_has_zero_counts_and_the_longest_recency(
    sample: tuple[pd.DataFrame, pd.Series],
) -> None:
    events, customers = sample
    params = FeatureStoreParams()
    table = aggregate(
        events, customers, params, snapshot_grid(events, events["event_timestamp"].max(), 24)
    )
    none = table[table["customerID"] == "NO-EVENTS"]
    assert (none[[n for names in params.count_features().values() for n in names]] == 0).all().all()
    assert (none[params.recency_features()] == 90.0).all().all()


def test_an_event_a_fraction_of_a_second_after_a_snapshot_is_not_in_it() -> None:
    grid = pd.date_range("2025-01-01", periods=3, freq="1D", tz="UTC")
    events = pd.DataFrame(
        {
            "customerID": ["A", "A"],
            "event_timestamp": [grid[1], grid[1] + pd.Timedelta(milliseconds=400)],
            "event": ["login", "login"],
        }
    )
    table = aggregate(events, pd.Series(["A"]), FeatureStoreParams(), grid)
    assert table["login_count_7d"].tolist() == [0, 1, 2]
