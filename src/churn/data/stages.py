"""The data stages with their I/O: what ``dvc.yaml`` runs through the CLI and the flow runs via DVC.

Kept free of MLflow and model imports so that each DVC stage starts quickly. With
a plug-in engine (``engine.kind: dask``) each stage is the plug-in's (``churn.engine.plugin``):
per part on its cluster, with the same per-frame functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from churn.config.layout import SPLITS, DataLayout, clear
from churn.config.params import Params, label_text, label_texts
from churn.config.settings import Settings
from churn.data.events import empty_events, generate_events
from churn.data.ingest import read_source, write_snapshot
from churn.data.split import split_frame
from churn.engine import plugin

if TYPE_CHECKING:  # pandera (the contract) is imported when a run validates, not on every run
    from churn.data.validate import ValidationReport


def ingest(settings: Settings, params: Params) -> int:
    """Read the configured source and write the raw snapshot; returns the row count."""
    if params.engine.kind != "pandas":
        return plugin(params.engine.kind).ingest(settings, params)
    frame = read_source(
        params.ingest, base_dir=settings.project_dir, partition_rows=params.engine.partition_rows
    )
    write_snapshot(frame, DataLayout(settings.data_dir).raw)
    return len(frame)


def events(settings: Settings, params: Params) -> int:
    """Write the activity events and label times of the raw customers; returns the event count.

    Only the generated data set has events (``churn.data.events``), on the pandas engine (the
    feature store joins on it only; a plug-in engine's millions of customers would make billions
    of events in this process); otherwise the two tables are written empty, which leaves the
    feature store off (``feature_store`` in ``params.yaml``).
    """
    layout = DataLayout(settings.data_dir)
    dataset = params.dataset
    generated = params.ingest.kind == "generator" and params.engine.kind == "pandas"
    if not generated or dataset.id_column is None:
        activity = empty_events()
    else:
        wanted = [dataset.id_column, dataset.label_column, "tenure", "PaymentMethod"]
        frame = pd.read_parquet(layout.raw, columns=wanted)
        activity = generate_events(
            frame[dataset.id_column],
            label_texts(frame[dataset.label_column]) == label_text(dataset.positive_label),
            params.ingest.generator.seed,
            tenure_months=frame["tenure"],
            electronic_check=frame["PaymentMethod"] == "Electronic check",
        )
    for path, table in (
        (layout.events, activity.events),
        (layout.label_times, activity.label_times),
    ):
        clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_parquet(path, index=False)
    return len(activity.events)


def validate(settings: Settings, params: Params) -> ValidationReport:
    """Apply the data contract to the raw snapshot; write valid rows, quarantine and report.

    Raises:
        ContractError: after writing the outputs, when the quarantined share is too high.
    """
    if params.engine.kind != "pandas":
        report: ValidationReport = plugin(params.engine.kind).validate(settings, params)
        return report
    from churn.data.validate import check_quarantine_share, validate_frame, write_outputs

    layout = DataLayout(settings.data_dir)
    result = validate_frame(pd.read_parquet(layout.raw), params.dataset)
    for path in (layout.validated, layout.quarantine):
        clear(path)
    write_outputs(result, layout.validated, layout.quarantine, layout.validation_report)
    check_quarantine_share(result.report, params.validate_.max_quarantine_share)
    return result.report


def split(settings: Settings, params: Params) -> dict[str, int]:
    """Split the validated rows into train / valid / test Parquet files; returns row counts."""
    if params.engine.kind != "pandas":
        return plugin(params.engine.kind).split(settings, params)
    layout = DataLayout(settings.data_dir)
    parts = split_frame(
        pd.read_parquet(layout.validated), params.dataset, params.split, params.split_method
    )
    for name, part in parts.items():
        clear(layout.split(name))
        layout.split(name).parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(layout.split(name), index=False)
    return {name: len(part) for name, part in parts.items()}


def load_splits(settings: Settings) -> dict[str, pd.DataFrame]:
    layout = DataLayout(settings.data_dir)
    return {name: pd.read_parquet(layout.split(name)) for name in SPLITS}
