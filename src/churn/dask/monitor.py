"""The Dask engine's monitoring of a window that does not fit in one process.

Each partition of a Parquet window is prepared by the caller's function (monitoring's own: the
features and the score), summarised on a worker with :func:`churn.dask.drift_stats.summarize` on
the grid of the reference, and sampled; the summaries are merged here (exact counts, means,
extremes, histograms, level counts) and the drift of every column is computed over the whole
window with the distances Evidently itself picks above 1,000 reference rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from churn.config.params import Params
from churn.dask import drift_stats
from churn.dask.score import map_parts, read_parts
from churn.engine import ColumnDrift, WindowSummary

log = logging.getLogger(__name__)


def _summarize_part(
    part: pd.DataFrame,
    shared: tuple[Callable[[pd.DataFrame], pd.DataFrame], dict[str, drift_stats.Grid], Any],
    index: int,
) -> tuple[drift_stats.FrameSummary, pd.DataFrame]:
    """One partition's summary and its share of the sample (runs on a worker)."""
    prepare, grid, (numeric, categorical, fraction, seed) = shared
    current = prepare(part)
    summary = drift_stats.summarize(current, numeric, categorical, grid)
    if fraction < 1:
        current = current.sample(n=round(len(current) * fraction), random_state=seed + index)
    return summary, current.reset_index(drop=True)


def summarize_window(
    client: Any,
    params: Params,
    files: Sequence[str],
    columns: Sequence[str],
    reference: pd.DataFrame,
    prepare: Callable[[pd.DataFrame], pd.DataFrame],
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_sample_rows: int,
) -> WindowSummary:
    """The whole window against ``reference`` (see ``churn.engine.Engine.summarize_window``)."""
    m = params.monitor
    grid = drift_stats.grids(reference, numeric)
    ref_summary = drift_stats.summarize(reference, numeric, categorical, grid)
    total = sum(int(pq.ParquetFile(f).metadata.num_rows) for f in files)  # the footers
    fraction = min(1.0, max_sample_rows / total) if total else 1.0
    frame = read_parts(files, columns, "64MiB")

    def progress(done: int, count: int) -> None:
        log.info("monitoring (dask): %d of %d partitions summarised", done, count)

    spec = (list(numeric), list(categorical), fraction, m.sample_seed)
    results = map_parts(client, frame, _summarize_part, (prepare, grid, spec), progress)
    summary = drift_stats.merge(r[0] for r in results)
    sample = pd.concat([r[1] for r in results], ignore_index=True)
    distances = drift_stats.drift(
        ref_summary, summary, num_method=m.num_method, cat_method=m.cat_method
    )
    drift = {
        c: ColumnDrift(
            c, drift_stats.DISPLAY_NAMES[d.method], d.threshold, d.score, d.drifted, d.psi
        )
        for c, d in distances.items()
    }
    levels = {
        c: dict(s.levels)
        for c, s in summary.columns.items()
        if isinstance(s, drift_stats.CategoricalSummary)
    }
    return WindowSummary(
        rows=summary.rows,
        drift=drift,
        missing={c: s.missing for c, s in summary.columns.items()},
        levels=levels,
        stats={c: s.as_dict() for c, s in summary.columns.items()},
        sample=sample,
        sampled=fraction < 1,
    )
