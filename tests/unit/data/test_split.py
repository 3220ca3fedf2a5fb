"""Seeded stratified splits, and time-ordered splits when a time column is configured."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.data.generator import generate_customers
from churn.data.split import label_vector, split_frame
from churn.data.validate import validate_frame


@pytest.fixture
def valid(params):
    return validate_frame(generate_customers(1000, seed=5), params.dataset).valid


def test_split_sizes_stratification_and_seed(valid, params):
    parts = split_frame(valid, params.dataset, params.split)
    assert sum(len(p) for p in parts.values()) == len(valid)
    assert len(parts["test"]) == pytest.approx(0.2 * len(valid), abs=2)
    rates = [label_vector(p, params.dataset).mean() for p in parts.values()]
    assert max(rates) - min(rates) < 0.02
    ids = [set(p["customerID"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split_frame(valid, params.dataset, params.split)
    pd.testing.assert_frame_equal(parts["test"], again["test"])


def test_time_column_gives_a_time_ordered_split(valid, params):
    dataset = params.dataset.model_copy(update={"time_column": "signup"})
    valid = valid.assign(signup=pd.date_range("2024-01-01", periods=len(valid), freq="h"))
    valid = valid.sample(frac=1, random_state=0)
    parts = split_frame(valid, dataset, params.split)
    assert parts["train"]["signup"].max() < parts["valid"]["signup"].min()
    assert parts["valid"]["signup"].max() < parts["test"]["signup"].min()


def test_too_little_data_is_a_clear_error(valid, params):
    with pytest.raises(ValueError, match="label class"):
        split_frame(valid[valid["Churn"] == "No"], params.dataset, params.split)
