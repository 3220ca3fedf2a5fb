"""Monitoring reads only its lineage's rows of the prediction log (issue #25): every registered
model counts its versions from 1, so another data set's rows share the version number."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd

from churn.config.params import load_params
from churn.prediction_store import SCORE_COLUMN, PredictionWindow
from monitoring.data import own_lineage


def _window(rows: list[dict[str, object]]) -> PredictionWindow:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    meta = [
        {
            "id": i,
            "logged_at": at + timedelta(minutes=i),
            "model_version": "1",
            "customer_hash": f"h{i}",
            SCORE_COLUMN: 0.3,
            "churn": False,
            "role": "champion",
        }
        for i in range(len(rows))
    ]
    frame = pd.concat([pd.DataFrame(meta), pd.DataFrame.from_records(rows)], axis=1)
    return PredictionWindow(frame, len(frame), False, at, at)


def test_another_lineages_rows_are_set_aside_with_one_line(caplog) -> None:
    dataset = load_params().dataset
    ours = dict.fromkeys(dataset.numeric, 1.0) | {
        name: levels[0] for name, levels in dataset.categorical.items()
    }
    theirs = {"Call  Failure": 3, "Complains": 0}  # the Iranian file's columns
    window = _window([ours, theirs, ours, theirs, theirs])
    with caplog.at_level(logging.WARNING, logger="monitoring.data"):
        kept = own_lineage(window, dataset)
    assert kept.total_rows == 2 and list(kept.frame["id"]) == [0, 2]
    assert "Call  Failure" not in kept.frame.columns
    (line,) = [r.getMessage() for r in caplog.records]
    assert "3 of 5 logged predictions belong to another data set's lineage" in line


def test_a_window_of_its_own_rows_is_unchanged(caplog) -> None:
    dataset = load_params().dataset
    ours = dict.fromkeys(dataset.numeric, 2.0)  # categorical missing: still this schema
    window = _window([ours, ours])
    assert own_lineage(window, dataset) is window
    assert own_lineage(PredictionWindow.empty(), dataset).rows == 0
