"""Monitoring a window that does not fit in one process: the dask engine.

Each partition of a Parquet window (exported predictions: features and ``churn_probability``) is
summarised on a worker with :func:`churn.dask.drift_stats.summarize` on the grid of the reference;
the
summaries are merged here (exact counts, means, extremes, histograms, level counts), and the drift
of every column is computed over the whole window with the distances Evidently itself picks above
1,000 reference rows. Evidently still writes the HTML report, on a seeded uniform sample of at most
``monitor.max_current_rows`` rows drawn per partition, and the decision is taken on the whole
window's figures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from churn.config.errors import DataError
from churn.config.params import DatasetConfig, Params
from churn.dask import drift_stats
from churn.prediction_store import SCORE_COLUMN, PredictionWindow
from monitoring import report
from monitoring.data import features_frame, window_rows

log = logging.getLogger(__name__)

# Columns of an exported window kept in the sample beside the features (labels join on the hash).
_KEPT = ("customer_hash", "model_version", "logged_at", "churn")


def _columns(dataset: DatasetConfig) -> tuple[list[str], list[str]]:
    return [*dataset.numeric, SCORE_COLUMN], list(dataset.categorical)


def summarize_partition(
    part: pd.DataFrame,
    dataset: DatasetConfig,
    grid: dict[str, drift_stats.Grid],
    fraction: float,
    seed: int,
) -> tuple[drift_stats.FrameSummary, pd.DataFrame]:
    """One partition's summary and its share of the sample (runs on a worker)."""
    if SCORE_COLUMN not in part:
        raise DataError(f"the window has no {SCORE_COLUMN} column (exported predictions have)")
    current = features_frame(part, dataset)
    current[SCORE_COLUMN] = pd.to_numeric(part[SCORE_COLUMN], errors="coerce").to_numpy()
    numeric, categorical = _columns(dataset)
    summary = drift_stats.summarize(current, numeric, categorical, grid)
    for c in _KEPT:
        if c in part:
            current[c] = part[c].to_numpy()
    if fraction < 1:
        current = current.sample(n=round(len(current) * fraction), random_state=seed)
    return summary, current.reset_index(drop=True)


def scan(
    client: Any,
    files: list[str],
    reference: pd.DataFrame,
    params: Params,
) -> tuple[drift_stats.FrameSummary, drift_stats.FrameSummary, PredictionWindow]:
    """``(reference summary, whole-window summary, sampled window)`` over the cluster."""
    import dask
    import dask.dataframe as dd
    from dask.delayed import delayed
    from distributed import as_completed

    dataset, m = params.dataset, params.monitor
    numeric, categorical = _columns(dataset)
    grid = drift_stats.grids(reference, numeric)
    ref_summary = drift_stats.summarize(reference, numeric, categorical, grid)
    total = window_rows(files)
    fraction = min(1.0, m.max_current_rows / total) if total else 1.0
    present = set(pq.read_schema(files[0]).names)
    wanted = [c for c in [*dataset.feature_columns, SCORE_COLUMN, *_KEPT] if c in present]
    with dask.config.set({"dataframe.convert-string": False}):
        frame = dd.read_parquet(files, columns=wanted)
    shared = client.scatter(grid, broadcast=True, hash=False)
    tasks = [
        delayed(summarize_partition, pure=False)(part, dataset, shared, fraction, m.sample_seed + i)
        for i, part in enumerate(frame.to_delayed())
    ]
    futures = client.compute(tasks)
    order = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, future in enumerate(as_completed(futures), start=1):
        results[order[future.key]] = future.result()
        log.info("monitoring (dask): %d of %d partitions summarised", done, len(futures))
    summary = drift_stats.merge(r[0] for r in results)
    sample = pd.concat([r[1] for r in results], ignore_index=True)
    window = PredictionWindow(sample, summary.rows, fraction < 1, None, None)
    return ref_summary, summary, window


def check_data(
    reference: pd.DataFrame,
    ref_summary: drift_stats.FrameSummary,
    summary: drift_stats.FrameSummary,
    window: PredictionWindow,
    params: Params,
    html: Path | None,
) -> report.DataChecks:
    """The data checks of the whole window: drift, missing and unseen shares from the merged
    summaries; Evidently's report (``html``) on the sample."""
    dataset, m = params.dataset, params.monitor
    features = dataset.feature_columns
    on_sample = report.check_data(
        reference, window.frame[[*features, SCORE_COLUMN]], dataset, m, html
    )
    distances = drift_stats.drift(
        ref_summary, summary, num_method=m.num_method, cat_method=m.cat_method
    )
    columns = {c: _column_drift(distances[c]) for c in [*features, SCORE_COLUMN]}
    drifted = [c for c in features if columns[c].drifted]
    rows = max(summary.rows, 1)
    unseen = {}
    for c, levels in dataset.categorical.items():
        col = summary.columns[c]
        assert isinstance(col, drift_stats.CategoricalSummary)
        known = set(levels)
        unseen[c] = sum(n for k, n in col.levels.items() if k not in known) / rows
    stats = {c: s.as_dict() for c, s in summary.columns.items()}
    for c, d in distances.items():
        stats[c]["psi"] = d.psi
    return report.DataChecks(
        current_rows=summary.rows,
        reference_rows=len(reference),
        columns={c: columns[c] for c in features},
        prediction=columns[SCORE_COLUMN],
        drifted_columns=drifted,
        drifted_share=len(drifted) / len(features),
        missing_share={c: summary.columns[c].missing / rows for c in features},
        unseen_share=unseen,
        engine="dask",
        evidently_rows=on_sample.current_rows,
        column_stats=stats,
    )


def _column_drift(d: drift_stats.Distance) -> report.ColumnDrift:
    method = drift_stats.DISPLAY_NAMES[d.method]
    return report.ColumnDrift(d.column, method, d.threshold, d.score, d.drifted)
