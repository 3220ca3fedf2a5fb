"""Monitoring a window that does not fit in one process: a plug-in engine (``engine.kind: dask``).

The engine (``churn.engine.plugin``) prepares each partition of a Parquet window (exported
predictions: features and ``churn_probability``) with :func:`prepare_part`, summarises it on a
worker on the grid of the reference, merges the summaries (exact counts, means, extremes,
histograms, level counts) and computes the drift of every column over the whole window with the
distances Evidently itself picks above 1,000 reference rows. Evidently still writes the HTML
report, on a seeded uniform sample of at most ``monitor.max_current_rows`` rows drawn per
partition, and the decision is taken on the whole window's figures (:func:`check_data`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd

from churn.config.errors import DataError
from churn.config.params import DatasetConfig, Params
from churn.config.settings import Settings
from churn.engine import ColumnDrift, WindowSummary, plugin
from churn.prediction_store import SCORE_COLUMN, PredictionWindow
from monitoring import report
from monitoring.data import features_frame

# Columns of an exported window kept in the sample beside the features (labels join on the hash).
_KEPT = ("customer_hash", "model_version", "logged_at", "churn")


def _columns(dataset: DatasetConfig) -> tuple[list[str], list[str]]:
    return [*dataset.numeric, SCORE_COLUMN], list(dataset.categorical)


def prepare_part(part: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """One partition as monitoring judges it: the features, the score and the kept columns
    (runs on a worker)."""
    if SCORE_COLUMN not in part:
        raise DataError(f"the window has no {SCORE_COLUMN} column (exported predictions have)")
    current = features_frame(part, dataset)
    current[SCORE_COLUMN] = pd.to_numeric(part[SCORE_COLUMN], errors="coerce").to_numpy()
    for c in _KEPT:
        if c in part:
            current[c] = part[c].to_numpy()
    return current


def scan(
    settings: Settings, files: list[str], reference: pd.DataFrame, params: Params
) -> tuple[WindowSummary, PredictionWindow]:
    """``(whole-window summary, sampled window)`` on the plug-in engine ``engine.kind``."""
    dataset = params.dataset
    numeric, categorical = _columns(dataset)
    summary = plugin(params.engine.kind).summarize_window(
        settings,
        params,
        files,
        [*dataset.feature_columns, SCORE_COLUMN, *_KEPT],
        reference,
        partial(prepare_part, dataset=dataset),
        numeric,
        categorical,
        params.monitor.max_current_rows,
    )
    window = PredictionWindow(summary.sample, summary.rows, summary.sampled, None, None)
    return summary, window


def check_data(
    reference: pd.DataFrame,
    summary: WindowSummary,
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
    columns = {c: _column_drift(summary.drift[c]) for c in [*features, SCORE_COLUMN]}
    drifted = [c for c in features if columns[c].drifted]
    rows = max(summary.rows, 1)
    unseen = {}
    for c, levels in dataset.categorical.items():
        known = set(levels)
        unseen[c] = sum(n for k, n in summary.levels[c].items() if k not in known) / rows
    stats = {c: dict(s) for c, s in summary.stats.items()}
    for c, d in summary.drift.items():
        stats[c]["psi"] = d.psi
    return report.DataChecks(
        current_rows=summary.rows,
        reference_rows=len(reference),
        columns={c: columns[c] for c in features},
        prediction=columns[SCORE_COLUMN],
        drifted_columns=drifted,
        drifted_share=len(drifted) / len(features),
        missing_share={c: summary.missing[c] / rows for c in features},
        unseen_share=unseen,
        engine=params.engine.kind,
        evidently_rows=on_sample.current_rows,
        column_stats=stats,
    )


def _column_drift(d: ColumnDrift) -> report.ColumnDrift:
    return report.ColumnDrift(d.column, d.method, d.threshold, d.score, d.drifted)
