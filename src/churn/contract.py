"""The data contract: a pandera schema derived from the dataset config in ``params.yaml``."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from churn.params import DatasetConfig


def required_columns(dataset: DatasetConfig) -> list[str]:
    """Columns every raw batch must have: id, label, time (when set) and the features."""
    extra = [dataset.time_column] if dataset.time_column else []
    return [dataset.id_column, dataset.label_column, *extra, *dataset.feature_columns]


def coerce_known_quirks(raw: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Coerce values whose *representation* is off but whose meaning is clear.

    Numeric columns: surrounding blanks are stripped and blank cells become missing (the Telco
    ``TotalCharges == ' '`` quirk); text that is not a number becomes NaN here and is reported by
    :func:`unparseable_numbers`. Categorical columns whose levels are integers (``SeniorCitizen``)
    are parsed as numbers. Nothing is dropped.
    """
    out = raw.copy()
    for name in dataset.numeric:
        out[name] = pd.to_numeric(_blank_to_na(out[name]), errors="coerce").astype("float64")
    for name, levels in dataset.categorical.items():
        if levels and all(isinstance(level, int) for level in levels):
            out[name] = pd.to_numeric(_blank_to_na(out[name]), errors="coerce")
    if dataset.time_column:
        out[dataset.time_column] = pd.to_datetime(
            out[dataset.time_column], errors="coerce", utc=True
        )
    return out


def unparseable_numbers(raw: pd.DataFrame, coerced: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Per-row reasons for cells that held something but did not parse as a number."""
    reasons = pd.Series("", index=raw.index, dtype="object")
    for name in columns:
        bad = coerced[name].isna() & _blank_to_na(raw[name]).notna()
        reasons = reasons.where(~bad, reasons + f"{name}: not a number; ")
    return reasons


def build_schema(dataset: DatasetConfig) -> pa.DataFrameSchema:
    """The row-level contract, applied to a frame after :func:`coerce_known_quirks`."""
    columns: dict[str, pa.Column] = {
        dataset.id_column: pa.Column(
            nullable=False, unique=True, report_duplicates="exclude_first", coerce=False
        ),
        dataset.label_column: pa.Column(
            checks=pa.Check.isin([dataset.positive_label, dataset.negative_label]),
            nullable=False,
        ),
    }
    for name, spec in dataset.numeric.items():
        checks = []
        if spec.min is not None:
            checks.append(pa.Check.ge(spec.min))
        if spec.max is not None:
            checks.append(pa.Check.le(spec.max))
        if spec.integer:
            checks.append(
                pa.Check(lambda s: (s % 1 == 0) | s.isna(), element_wise=False, name="integer")
            )
        columns[name] = pa.Column("float64", checks=checks, nullable=spec.nullable)
    for name, levels in dataset.categorical.items():
        columns[name] = pa.Column(checks=pa.Check.isin(levels), nullable=False)
    if dataset.time_column:
        columns[dataset.time_column] = pa.Column(nullable=False)
    return pa.DataFrameSchema(columns, strict=False, name="churn-raw-contract")


def _blank_to_na(series: pd.Series) -> pd.Series:
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        stripped = series.astype("string").str.strip()
        return stripped.mask(stripped == "")
    return series
