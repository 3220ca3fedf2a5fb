"""The Dask engine (``engine: {kind: dask}``), a plug-in: ``plugin.ENGINE`` implements
``churn.engine.Engine`` over the run's client (``cluster``), the data stages per Parquet part
(``data``), training with ``xgboost.dask`` (``train``), a caller's function over partitions
(``score``) and mergeable per-column summaries for monitoring at scale (``monitor``,
``drift_stats``). Optional: it needs the ``dask`` dependency group; deleting this package removes
the engine (docs/scaling.md)."""

# The plug-in's own libraries, imported with it: without them ``churn.engine.plugin`` stops the
# run on a message that names the missing one, before any stage starts.
import dask  # noqa: F401
import distributed  # noqa: F401
