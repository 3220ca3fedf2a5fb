"""``ingest.feedback``: labelled traffic appended to the source's rows, typed like the source."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.config.params import FeedbackSource
from churn.data.generator import generate_customers
from churn.data.ingest import append_feedback


def test_without_the_file_the_source_is_unchanged(tmp_path):
    base = generate_customers(20, 1)
    out = append_feedback(base, FeedbackSource(path="missing.parquet"), tmp_path)
    assert out is base
    assert append_feedback(base, FeedbackSource(), tmp_path) is base


def test_the_newest_rows_are_appended_with_the_sources_types(tmp_path):
    base = generate_customers(20, 1)
    extra = generate_customers(10, 2)
    extra["TotalCharges"] = pd.to_numeric(extra["TotalCharges"], errors="coerce")
    extra.loc[0, "TotalCharges"] = float("nan")
    extra.to_parquet(tmp_path / "fb.parquet")
    out = append_feedback(base, FeedbackSource(path="fb.parquet", max_rows=4), tmp_path)
    assert len(out) == 24 and list(out.columns) == list(base.columns)
    assert list(out["customerID"].tail(4)) == list(extra["customerID"].tail(4))
    assert out["TotalCharges"].map(type).eq(str).all()  # one type per column in the snapshot
    assert pd.to_numeric(out["TotalCharges"].tail(4)).tolist() == pytest.approx(
        extra["TotalCharges"].tail(4).tolist()
    )


def test_another_data_sets_feedback_is_set_aside_with_one_warning(tmp_path, caplog):
    """Feedback exported on the previous data set never fails the run (issue #25)."""
    pd.DataFrame({"customerID": ["a"], "CallFailure": [3]}).to_parquet(tmp_path / "fb.parquet")
    base = generate_customers(5, 1)
    with caplog.at_level("WARNING", logger="churn.data.ingest"):
        out = append_feedback(base, FeedbackSource(path="fb.parquet"), tmp_path)
    assert out is base
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "lacks the source's columns" in warnings[0] and "set aside" in warnings[0]
