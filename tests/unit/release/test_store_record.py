"""The champion record carries the feature store a version was trained through (and only then)."""

from __future__ import annotations

import json

import pytest

from churn.champion import ChampionInfo, ChampionRecordError
from churn.config.feature_store import StoreVersion


def _record(store: StoreVersion | None) -> ChampionInfo:
    return ChampionInfo(
        decision_threshold=0.3,
        test_roc_auc=0.8,
        baseline_test_roc_auc=0.78,
        data_version="abc123abc123",
        data_files={"data/splits/test.parquet": "0" * 32},
        git_commit="deadbeef",
        trained_at="2026-12-08T00:00:00+00:00",
        feature_store=store,
    )


def test_the_store_versions_go_to_the_tags_and_come_back() -> None:
    store = StoreVersion(
        views={"customer_activity_7d": "4a3aa4bb7483", "customer_recency": "de221624ccd4"},
        data_version="4d4a8c5b27ec",
        rows=422_000,
    )
    tags = _record(store).to_tags()
    assert json.loads(tags["feature_store"])["views"]["customer_activity_7d"] == "4a3aa4bb7483"
    back = ChampionInfo.from_tags(tags, version="4")
    assert back.feature_store == store


def test_a_version_trained_without_the_store_has_no_store_tag() -> None:
    tags = _record(None).to_tags()
    assert "feature_store" not in tags
    assert ChampionInfo.from_tags(tags).feature_store is None


def test_an_unreadable_store_tag_is_named() -> None:
    tags = {**_record(None).to_tags(), "feature_store": '{"views": {}}'}
    with pytest.raises(ChampionRecordError, match="unreadable"):
        ChampionInfo.from_tags(tags, version="5")
