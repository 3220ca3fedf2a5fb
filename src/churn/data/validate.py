"""Validation: apply the data contract, quarantine invalid rows with reasons, report the share."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.errors

from churn.config.errors import DataError
from churn.config.params import ROW_KEY, DatasetConfig, label_text, label_texts
from churn.data.contract import (
    build_schema,
    coerce_known_quirks,
    required_columns,
    row_keys,
    unparseable_numbers,
)

log = logging.getLogger(__name__)

REASON_COLUMN = "_quarantine_reason"
# pandera's name for a repeated id; repeats across the dask engine's parts get the same reason
UNIQUENESS_CHECK = "field_uniqueness"


class ContractError(DataError):
    """The batch as a whole breaks the contract (missing columns, labels, too many invalid rows)."""


@dataclass
class ValidationReport:
    n_rows: int
    n_valid: int
    n_quarantined: int
    quarantined_share: float
    reasons: dict[str, int] = field(default_factory=dict)  # "column: check" -> rows


@dataclass
class ValidationResult:
    valid: pd.DataFrame
    quarantine: pd.DataFrame  # the invalid rows as they arrived, plus REASON_COLUMN
    report: ValidationReport


def validate_frame(
    raw: pd.DataFrame, dataset: DatasetConfig, taken_ids: Collection[Any] = ()
) -> ValidationResult:
    """Split a raw batch into rows that meet the contract and quarantined rows with reasons.

    Valid rows come back with known quirks coerced (blank numbers -> NaN, numeric text ->
    numbers), without ``dataset.ignore_columns``, and keyed by ``ROW_KEY`` when the data set has
    no id column. Every input row ends up in exactly one of the two outputs.

    An id that repeats within the batch is kept on its first row; ``taken_ids`` are ids whose
    first row is in another, earlier batch of the same data set (the dask engine's parts), so
    every row of theirs here is a repeat: both get the same uniqueness reason.

    Raises:
        ContractError: when required columns are missing, the batch is empty, or the label
            column does not hold both configured labels.
    """
    if raw.empty:
        raise ContractError(
            "the raw data has no rows: the source is empty or holds only a header; "
            "check ingest in params.yaml"
        )
    missing = [c for c in required_columns(dataset) if c not in raw.columns]
    if missing:
        raise ContractError(
            f"the data lacks required columns {missing}; params.yaml 'dataset' names them "
            f"(found: {list(raw.columns)})"
        )
    raw = raw.reset_index(drop=True)
    check_labels(raw[dataset.label_column], dataset)
    coerced = coerce_known_quirks(raw, dataset)
    kept = [c for c in dataset.ignore_columns if c in coerced.columns]
    coerced = coerced.drop(columns=kept)
    if dataset.id_column is None:
        coerced.insert(0, ROW_KEY, row_keys(raw, [dataset.label_column, *dataset.feature_columns]))
    reasons = unparseable_numbers(raw, coerced, list(dataset.numeric))
    try:
        build_schema(dataset).validate(coerced, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        reasons = reasons + _row_reasons(exc.failure_cases, index=raw.index)
    if taken_ids and dataset.id_column is not None:
        reasons = reasons + _repeated_ids(raw[dataset.id_column], taken_ids, reasons)

    bad = reasons != ""
    quarantine = raw.loc[bad].copy()
    quarantine[REASON_COLUMN] = reasons[bad].str.rstrip("; ")
    valid = coerced.loc[~bad].reset_index(drop=True)
    report = ValidationReport(
        n_rows=len(raw),
        n_valid=len(valid),
        n_quarantined=int(bad.sum()),
        quarantined_share=float(bad.mean()) if len(raw) else 0.0,
        reasons=_count_reasons(quarantine[REASON_COLUMN]),
    )
    return ValidationResult(valid=valid, quarantine=quarantine, report=report)


def check_labels(labels: pd.Series, dataset: DatasetConfig) -> None:
    """Both configured labels occur in the label column, compared as data (``label_text``).

    A few rows with a third value are quarantined like any invalid row (and logged here); a
    column that lacks one of the two labels is an error that lists the values it holds.

    Raises:
        ContractError: naming the values found and the keys to set.
    """
    counts = label_texts(labels).value_counts()
    found = ", ".join(f"{v!r} ({n} rows)" for v, n in counts.head(10).items())
    found = found or "nothing (every cell is empty)"
    wanted = [label_text(dataset.positive_label), label_text(dataset.negative_label)]
    name = dataset.label_column
    if len(counts) < 2:
        raise ContractError(
            f"the label column {name!r} holds {len(counts)} distinct value(s): {found}; "
            "a churn label needs two (churned / stayed)"
        )
    absent = [w for w in wanted if w not in counts.index]
    if absent:
        raise ContractError(
            f"the label column {name!r} holds {found}, but dataset.positive_label "
            f"{dataset.positive_label!r} / negative_label {dataset.negative_label!r} "
            f"expect {absent} too: set them to two of the values found"
        )
    if len(counts) > 2:
        log.warning(
            "the label column %r holds %d distinct values (%s): rows outside %s are quarantined",
            name,
            len(counts),
            found,
            wanted,
        )


def check_quarantine_share(report: ValidationReport, max_share: float) -> None:
    """Fail the run when too many rows were quarantined; say which reasons dominate.

    Raises:
        ContractError: when ``report.quarantined_share`` exceeds ``max_share``.
    """
    if report.quarantined_share > max_share:
        top = ", ".join(f"{r} ({n} rows)" for r, n in list(report.reasons.items())[:5])
        raise ContractError(
            f"{report.n_quarantined} of {report.n_rows} rows ({report.quarantined_share:.1%}) "
            f"failed the data contract, above validate.max_quarantine_share={max_share:.1%}. "
            f"Most frequent reasons: {top}. The rows and their reasons are in the quarantine file."
        )


def write_outputs(
    result: ValidationResult, valid_path: Path, quarantine_path: Path, report_path: Path
) -> None:
    """Write valid rows (Parquet), quarantined rows with reasons (CSV) and the report (JSON)."""
    for path in (valid_path, quarantine_path, report_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    result.valid.to_parquet(valid_path, index=False)
    result.quarantine.to_csv(quarantine_path, index=False)
    report_path.write_text(json.dumps(asdict(result.report), indent=2) + "\n")
    r = result.report
    log.info(
        "validated %d rows: %d valid, %d quarantined (%.2f%%) -> %s",
        r.n_rows,
        r.n_valid,
        r.n_quarantined,
        100 * r.quarantined_share,
        quarantine_path,
    )


def _row_reasons(failure_cases: pd.DataFrame, index: pd.Index) -> pd.Series:
    """Turn pandera's failure cases into one reason string per row index."""
    rows = failure_cases.dropna(subset=["index"])
    if len(rows) != len(failure_cases):
        # A failure without a row index concerns the whole column (for instance a dtype that
        # cannot hold the values): no row-level quarantine can fix that.
        whole = failure_cases[failure_cases["index"].isna()]
        raise ContractError(f"column-level contract failures: {whole.to_dict('records')}")
    text = (
        rows["column"].astype(str)
        + ": "
        + rows["check"].astype(str)
        + " (got "
        + rows["failure_case"].astype(str).str.slice(0, 40)
        + "); "
    )
    per_row = text.groupby(rows["index"].astype(int)).sum()
    return per_row.reindex(index, fill_value="").astype(str)


def _repeated_ids(ids: pd.Series, taken_ids: Collection[Any], reasons: pd.Series) -> pd.Series:
    """The uniqueness reason, as pandera words it, for rows whose id is in ``taken_ids``
    (unless pandera already gave it: a repeat within the batch too)."""
    name = f"{ids.name}: {UNIQUENESS_CHECK}"
    repeat = ids.isin(taken_ids) & ~reasons.str.contains(name, regex=False)
    return (name + " (got " + ids.astype(str).str.slice(0, 40) + "); ").where(repeat, "")


def _count_reasons(reasons: pd.Series) -> dict[str, int]:
    """Count rows per 'column: check' (values stripped so that the counts group)."""
    parts = reasons.str.split("; ").explode().dropna()
    counts = parts.str.split(" (got ", regex=False).str[0].value_counts()
    return {str(k): int(v) for k, v in counts.items()}
