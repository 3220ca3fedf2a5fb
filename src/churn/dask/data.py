"""The data stages on a Dask cluster: partitioned Parquet in and out, one task per part.

Each task runs the pandas engine's own function on one part (``generate_part``,
``read_table``, ``validate_frame``, ``hash_assign``), so the logic has one implementation and
no process ever holds more than a part. Every output path of ``DataLayout`` becomes a directory
of ``part-NNNNN`` files that DVC versions as a directory out. The workers read and write the
paths directly: on a cluster of several machines ``data/`` must be a shared file system (or
point the layout at object storage; docs/scaling.md). A stage writes its parts into
``<output>.partial`` and replaces the output only when every part is written
(``churn.config.layout.staged``): a stage that fails half-way (a part that breaks, a cluster
that lost its workers) leaves the outputs DVC recorded as they were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.config.layout import SPLITS, DataLayout, part_name, parts_of, staged
from churn.config.params import DatasetConfig, FeedbackSource, IngestParams, Params, SplitParams
from churn.config.settings import Settings
from churn.data.generator import generate_part, part_sizes
from churn.data.ingest import append_feedback, read_source, read_table, source_files
from churn.data.split import check_split_sizes, hash_assign, label_vector
from churn.data.validate import ValidationReport, check_quarantine_share, validate_frame

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


def run_parts(client: Client, label: str, fn: Callable[..., Any], args: Sequence[Any]) -> list[Any]:
    """``fn(*a)`` for each ``a`` of ``args`` on the cluster, results in order; logs progress."""
    from distributed import as_completed

    futures = [client.submit(fn, *a, pure=False) for a in args]
    for done, _ in enumerate(as_completed(futures), start=1):
        log.info("%s: part %d/%d done", label, done, len(futures))
    return list(client.gather(futures))


# ---- ingest ----------------------------------------------------------------------------------


def _write_generated(n_rows: int, seed: int, index: int, per_part: int, out: Path) -> int:
    frame = generate_part(n_rows, seed, index, per_part)
    frame.to_parquet(out / part_name(index), index=False)
    return len(frame)


def _write_file(path: Path, index: int, source: IngestParams, out: Path) -> int:
    frame = read_table(path.read_bytes(), str(path), source)
    frame.to_parquet(out / part_name(index), index=False)
    return len(frame)


def ingest(client: Client, settings: Settings, params: Params) -> int:
    """Write the raw snapshot as parts: one per generated part, or per source file.

    A URL or SQL source is read in this process (one answer) and written in parts of
    ``engine.partition_rows``. Newly labelled feedback, when there is any, is one more part.
    Returns the row count.
    """
    raw = DataLayout(settings.data_dir).raw
    with staged(raw) as (out,):
        total, n_parts = _ingest_parts(client, settings, params, out)
    log.info("raw snapshot: %d rows in %d parts -> %s", total, n_parts, raw)
    return total


def _ingest_parts(client: Client, settings: Settings, params: Params, out: Path) -> tuple[int, int]:
    source = params.ingest
    if source.kind == "generator":
        n, seed = source.generator.n_rows, source.generator.seed
        per_part = params.engine.partition_rows
        args = [(n, seed, i, per_part, out) for i in range(len(part_sizes(n, per_part)))]
        counts = run_parts(client, "ingest", _write_generated, args)
    elif source.kind == "file":
        files = source_files(source, settings.project_dir)
        counts = run_parts(
            client, "ingest", _write_file, [(f, i, source, out) for i, f in enumerate(files)]
        )
        _check_same_columns(out, files)
    else:
        without_feedback = source.model_copy(update={"feedback": FeedbackSource(path=None)})
        frame = read_source(without_feedback, base_dir=settings.project_dir)
        counts = []
        for i, start in enumerate(range(0, len(frame), params.engine.partition_rows)):
            part = frame.iloc[start : start + params.engine.partition_rows]
            part.to_parquet(out / part_name(i), index=False)
            counts.append(len(part))
    import pyarrow.parquet as pq

    schema = pq.read_schema(parts_of(out)[0]).empty_table().to_pandas()
    extra = append_feedback(schema, source.feedback, settings.project_dir)
    if len(extra):
        extra.to_parquet(out / part_name(len(counts)), index=False)
        counts.append(len(extra))
    return int(sum(counts)), len(counts)


def _check_same_columns(out: Path, files: list[Path]) -> None:
    import pyarrow.parquet as pq

    parts = parts_of(out)
    first = pq.read_schema(parts[0]).names
    for path, part in zip(files[1:], parts[1:], strict=True):
        names = pq.read_schema(part).names
        if names != first:
            from churn.data.ingest import IngestError

            raise IngestError(
                f"{path} does not have the columns of {files[0]} (extra "
                f"{sorted(set(names) - set(first))}, lacking {sorted(set(first) - set(names))}, "
                "or another order): files of one source must have the same shape"
            )


# ---- validate --------------------------------------------------------------------------------


def _validate_part(
    raw: Path,
    index: int,
    dataset: DatasetConfig,
    valid_dir: Path,
    quarantine_dir: Path,
    taken_ids: frozenset[Any] = frozenset(),
) -> ValidationReport:
    result = validate_frame(pd.read_parquet(raw), dataset, taken_ids)
    result.valid.to_parquet(valid_dir / part_name(index), index=False)
    result.quarantine.to_csv(quarantine_dir / part_name(index, ".csv"), index=False)
    return result.report


def _part_ids(path: Path, index: int, column: str) -> pd.DataFrame:
    ids = pd.read_parquet(path, columns=[column])
    ids["part"] = index
    return ids


def repeated_ids(client: Client, parts: Sequence[Path], column: str) -> dict[Any, int]:
    """The ids found in more than one part, each with the first part that holds it.

    Only the id column is read, and the counting is a Dask groupby whose output is split in
    several partitions, so no process holds every id; only the repeated ones reach this one
    (normally none).
    """
    import dask.dataframe as dd

    if len(parts) < 2:
        return {}
    ids = dd.from_map(_part_ids, list(parts), range(len(parts)), column=column)
    spread = ids.groupby(column)["part"].agg(["min", "max"], split_out=len(parts))
    first = spread[spread["min"] < spread["max"]]["min"]
    found = client.compute(first).result()
    return {key: int(part) for key, part in found.items()}


def merge_reports(reports: Sequence[ValidationReport]) -> ValidationReport:
    """One report for the whole data set from the reports of its parts (counts add up)."""
    n_rows = sum(r.n_rows for r in reports)
    n_quarantined = sum(r.n_quarantined for r in reports)
    reasons: dict[str, int] = {}
    for r in reports:
        for reason, count in r.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    return ValidationReport(
        n_rows=n_rows,
        n_valid=sum(r.n_valid for r in reports),
        n_quarantined=n_quarantined,
        quarantined_share=n_quarantined / n_rows if n_rows else 0.0,
        reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


def validate(client: Client, settings: Settings, params: Params) -> ValidationReport:
    """The data contract per part: valid parts, quarantine parts (CSV, with the reason of each
    row) and one report; the same ``validate.max_quarantine_share`` on the whole data set.

    An id is unique across the whole data set, as on the pandas engine: an id repeated within a
    part keeps its first row, and one found in several parts (``repeated_ids``) keeps its rows
    in the first of them; every later row is quarantined with the same reason.

    Raises:
        ContractError: after writing the outputs, when the quarantined share is too high (or a
            part breaks the contract as a whole).
    """
    layout = DataLayout(settings.data_dir)
    parts = parts_of(layout.raw)
    first: dict[Any, int] = {}
    if params.dataset.id_column is not None:
        first = repeated_ids(client, parts, params.dataset.id_column)
        if first:
            log.info("validate: %d ids occur in more than one part", len(first))
    with staged(layout.validated, layout.quarantine) as (valid_dir, quarantine_dir):
        args = [
            (
                raw,
                i,
                params.dataset,
                valid_dir,
                quarantine_dir,
                frozenset(key for key, part in first.items() if part < i),
            )
            for i, raw in enumerate(parts)
        ]
        report = merge_reports(run_parts(client, "validate", _validate_part, args))
    layout.validation_report.write_text(json.dumps(asdict(report), indent=2) + "\n")
    log.info(
        "validated %d rows in %d parts: %d valid, %d quarantined (%.2f%%) -> %s",
        report.n_rows,
        len(args),
        report.n_valid,
        report.n_quarantined,
        100 * report.quarantined_share,
        layout.quarantine,
    )
    check_quarantine_share(report, params.validate_.max_quarantine_share)
    return report


# ---- split -----------------------------------------------------------------------------------


def _split_part(
    path: Path, index: int, dataset: DatasetConfig, split: SplitParams, dirs: dict[str, Path]
) -> dict[str, tuple[int, int]]:
    frame = pd.read_parquet(path)
    assigned = hash_assign(frame, dataset, split)
    counts = {}
    for name in SPLITS:
        part = frame[assigned == name]
        part.to_parquet(dirs[name] / part_name(index), index=False)
        positives = int(label_vector(part, dataset).sum())
        counts[name] = (len(part), positives)
    return counts


def split(client: Client, settings: Settings, params: Params) -> dict[str, int]:
    """Split each validated part by the keyed hash of its rows' ids (``split.method: hash``).

    Raises:
        ValueError: when a split would be empty or lack a label class.
    """
    layout = DataLayout(settings.data_dir)
    with staged(*(layout.split(name) for name in SPLITS)) as staging:
        dirs = dict(zip(SPLITS, staging, strict=True))
        args = [
            (path, i, params.dataset, params.split, dirs)
            for i, path in enumerate(parts_of(layout.validated))
        ]
        per_part = run_parts(client, "split", _split_part, args)
        rows = {}
        for name in SPLITS:
            n = sum(c[name][0] for c in per_part)
            positives = sum(c[name][1] for c in per_part)
            check_split_sizes(name, n, int(positives > 0) + int(positives < n))
            rows[name] = n
    log.info("split by hash: %s", rows)
    return rows
