"""The Dask engine's ``ENGINE``: the ``churn.engine.Engine`` interface over this package.

``churn.engine.plugin("dask")`` imports this module (and with it ``churn.dask``, which imports
dask and distributed) only when a run selects ``engine.kind: dask``. Each operation runs on the
run's cluster (``cluster.dask_client``: the flow's open client, the configured scheduler, else a
``LocalCluster``); the heavier modules (training, monitoring) are imported by the operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from churn.config.params import EngineParams, Params
from churn.config.settings import Settings
from churn.dask.cluster import dask_client
from churn.engine import WindowSummary

if TYPE_CHECKING:
    import pandas as pd

    from churn.dask.train import DaskFeatures
    from churn.data.validate import ValidationReport
    from churn.training.stages import Evaluation
    from churn.training.train import TrainedModels


class DaskEngine:
    """The stages per Parquet part on a Dask cluster (``engine: {kind: dask}``)."""

    def session(self, settings: Settings, engine: EngineParams) -> AbstractContextManager[Any]:
        return dask_client(settings, engine)

    def ingest(self, settings: Settings, params: Params) -> int:
        from churn.dask import data

        with dask_client(settings, params.engine) as client:
            return data.ingest(client, settings, params)

    def validate(self, settings: Settings, params: Params) -> ValidationReport:
        from churn.dask import data

        with dask_client(settings, params.engine) as client:
            return data.validate(client, settings, params)

    def split(self, settings: Settings, params: Params) -> dict[str, int]:
        from churn.dask import data

        with dask_client(settings, params.engine) as client:
            return data.split(client, settings, params)

    def featurize(self, settings: Settings, params: Params) -> DaskFeatures:
        from churn.dask import train

        with dask_client(settings, params.engine):
            return train.featurize(train.read_splits(settings), params)

    def train(self, settings: Settings, features: DaskFeatures, params: Params) -> TrainedModels:
        from churn.dask import train

        with dask_client(settings, params.engine) as client:
            return train.train(client, features, params)

    def evaluate(
        self, features: DaskFeatures, trained: TrainedModels, params: Params
    ) -> Evaluation:
        from churn.dask import train

        return train.evaluate(features, trained, params)

    def map_parts(
        self,
        settings: Settings,
        engine: EngineParams,
        files: Sequence[str],
        columns: Sequence[str],
        fn: Callable[[pd.DataFrame, Any, int], Any],
        shared: Any,
        *,
        blocksize: str = "64MiB",
        categorical: Sequence[str] = (),
        on_done: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        from churn.dask import score

        parts = score.read_parts(files, columns, blocksize, categorical)
        with dask_client(settings, engine) as client:
            return score.map_parts(client, parts, fn, shared, on_done)

    def summarize_window(
        self,
        settings: Settings,
        params: Params,
        files: Sequence[str],
        columns: Sequence[str],
        reference: pd.DataFrame,
        prepare: Callable[[pd.DataFrame], pd.DataFrame],
        numeric: Sequence[str],
        categorical: Sequence[str],
        max_sample_rows: int,
    ) -> WindowSummary:
        from churn.dask import monitor

        with dask_client(settings, params.engine) as client:
            return monitor.summarize_window(
                client,
                params,
                files,
                columns,
                reference,
                prepare,
                numeric,
                categorical,
                max_sample_rows,
            )


ENGINE = DaskEngine()
