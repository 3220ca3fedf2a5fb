"""The feature store's ``STORE``: the store built from the events, and point-in-time queries.

``churn.feature_source.feature_store`` imports this module (and with it Feast) only when
``feature_store.enabled``. ``build`` aggregates ``data/raw/events.parquet`` into the offline
store's file, writes ``feature_store.yaml`` and registers the generated definitions (``feast
apply``); ``historical`` asks Feast for each row's features as of its time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from feast import FeatureStore, RepoConfig

from churn.config.layout import DataLayout
from churn.config.params import Params
from churn.config.settings import Settings
from churn.data.events import WINDOW_END
from churn.feature_source import StoreVersion
from churn.feature_store.aggregates import ENTITY_COLUMN, SNAPSHOT_COLUMN, aggregate, snapshot_grid
from churn.feature_store.definitions import (
    RepoLayout,
    config_dict,
    definitions,
    feature_refs,
    view_version,
    write_config,
)

_ROW = "_churn_row"


def repo_layout(settings: Settings) -> RepoLayout:
    """The generated repository's folder: ``data/feature_store/``."""
    return RepoLayout(settings.data_dir / "feature_store")


def open_store(settings: Settings, params: Params) -> FeatureStore:
    """A Feast ``FeatureStore`` on the generated repository's configuration."""
    layout = repo_layout(settings)
    config = RepoConfig(repo_path=layout.root, **config_dict(params.feature_store, layout))
    return FeatureStore(config=config)


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


class FeastStore:
    """The feature store over Feast's local provider (file offline store, SQLite online)."""

    def build(self, settings: Settings, params: Params) -> StoreVersion:
        data = DataLayout(settings.data_dir)
        layout = repo_layout(settings)
        if not data.events.exists():
            raise ValueError(
                f"the feature store reads {data.events}, which does not exist: run the events "
                "stage first (churn events, or dvc repro events)"
            )
        events = pd.read_parquet(data.events)
        customers = pd.read_parquet(data.label_times, columns=[ENTITY_COLUMN])[ENTITY_COLUMN]
        store_params = params.feature_store
        grid = snapshot_grid(events, pd.Timestamp(WINDOW_END), store_params.snapshot_hours)
        table = aggregate(events, customers, store_params, grid)
        layout.root.mkdir(parents=True, exist_ok=True)
        table.to_parquet(layout.source, index=False)
        write_config(store_params, layout)
        entity, views = definitions(store_params, layout)
        open_store(settings, params).apply([entity, *views])
        return StoreVersion(
            views={view.name: view_version(view) for view in views},
            data_version=file_hash(layout.source),
            rows=len(table),
        )

    def historical(self, settings: Settings, params: Params, rows: pd.DataFrame) -> pd.DataFrame:
        layout = repo_layout(settings)
        _, views = definitions(params.feature_store, layout)
        entity_df = rows[[ENTITY_COLUMN, SNAPSHOT_COLUMN]].copy()
        entity_df[_ROW] = range(len(entity_df))
        job = open_store(settings, params).get_historical_features(
            entity_df=entity_df, features=feature_refs(views)
        )
        joined = job.to_df().sort_values(_ROW).reset_index(drop=True)
        return joined[[ENTITY_COLUMN, SNAPSHOT_COLUMN, *params.feature_store.feature_names()]]


STORE = FeastStore()
