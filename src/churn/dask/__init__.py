"""The Dask engine (``engine: {kind: dask}``): the data stages per Parquet part (``data``),
training with ``xgboost.dask`` (``train``) and mergeable per-column summaries for monitoring at
scale (``drift_stats``). Optional: it needs the ``pipeline`` extra's dask packages."""

# The plug-in's own libraries, imported with it: without them ``churn.engine.plugin`` stops the
# run on a message that names the missing one, before any stage starts.
import dask  # noqa: F401
import distributed  # noqa: F401
