"""The data contract: a pandera schema derived from the dataset config in ``params.yaml``."""

from __future__ import annotations

import hashlib

import pandas as pd
import pandera.pandas as pa

from churn.config.params import DatasetConfig, label_text, label_texts


def required_columns(dataset: DatasetConfig) -> list[str]:
    """Columns every raw batch must have: id (when set), label, time (when set), the features."""
    ids = [dataset.id_column] if dataset.id_column else []
    extra = [dataset.time_column] if dataset.time_column else []
    return [*ids, dataset.label_column, *extra, *dataset.feature_columns]


def row_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """The stable key of each row of a data set without ids (``dataset.id_column: null``).

    ``<first 16 hex digits of the SHA-256 of the row's values>-<n>``, where ``n`` counts earlier
    identical rows (0 for the first): the same row gets the same key whatever its position in the
    file or how many rows are added around it, and exact duplicates still get distinct keys.
    Only ``columns`` (the label and the feature columns) are hashed.
    """
    text = frame[columns].astype("string").fillna("\x00")
    joined = text.iloc[:, 0].str.cat(text.iloc[:, 1:], sep="\x1f") if columns else text.iloc[:, 0]
    digests = joined.map(lambda row: hashlib.sha256(row.encode()).hexdigest()[:16])
    occurrence = digests.groupby(digests).cumcount()
    return digests + "-" + occurrence.astype(str)


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
    labels = {label_text(dataset.positive_label), label_text(dataset.negative_label)}
    columns: dict[str, pa.Column] = {
        dataset.key_column: pa.Column(
            nullable=False, unique=True, report_duplicates="exclude_first", coerce=False
        ),
        dataset.label_column: pa.Column(
            checks=pa.Check(lambda s: label_texts(s).isin(labels), name=f"isin({sorted(labels)})"),
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
