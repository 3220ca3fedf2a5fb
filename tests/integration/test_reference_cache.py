"""Monitoring's reference (the champion's data with its scores) is scored once per champion."""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
import pytest

from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.release import tracking
from monitoring.data import load_reference

pytestmark = pytest.mark.integration


def test_the_second_read_comes_from_the_cache_and_equals_the_first(
    trained_project, tmp_path, monkeypatch, caplog
):
    project, summary = trained_project
    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    client = tracking.connect(settings)
    args = (client, settings.model_name, project, params.dataset)
    cache = tmp_path / "reference-cache"

    first = load_reference(*args, max_rows=500, version=summary.version, cache_dir=cache)
    assert len(list(cache.glob("*.parquet"))) == 2

    def no_model(*_a, **_k):
        raise AssertionError("a cached reference must not load the model")

    monkeypatch.setattr(mlflow.sklearn, "load_model", no_model)
    with caplog.at_level(logging.INFO, logger="monitoring.data"):
        again = load_reference(*args, max_rows=500, version=summary.version, cache_dir=cache)
    assert "read from the cache" in caplog.text
    pd.testing.assert_frame_equal(again.train, first.train)
    pd.testing.assert_frame_equal(again.test, first.test)
    assert again.record == first.record

    # Another sample size is another reference: scored again (and the model is needed).
    with pytest.raises(AssertionError, match="must not load the model"):
        load_reference(*args, max_rows=400, version=summary.version, cache_dir=cache)
