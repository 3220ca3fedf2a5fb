"""Profiling a churn data set: what ``churn init-dataset`` infers from the file(s).
``churn.data.params_file`` writes the ``ingest`` and ``dataset`` blocks of ``params.yaml`` from it.

Every decision has a reason a person can read (``ColumnDecision.why``); the summary table and
the comments in the written YAML show them. The rules, in the order they apply to a column:

1. the label (given) and its positive value (given, else the minority of the two values);
2. the id: ``--id``, else a unique column whose name ends in ``id`` (``customerID``, ``user_id``)
   or whose values look like codes (``7590-VHVEG``); none is fine (rows are keyed by content);
3. PII candidates by name (surname, email, phone, address...) or free text (many distinct
   strings): never features, listed under ``pii_columns``;
4. ignored: constant columns, row numbers and second identifiers, text with too many levels to
   one-hot, and a column that separates the label almost perfectly on its own (a leak: a value
   recorded after the churn, such as a closing date or a refund);
5. numbers with few distinct integer values (``CODE_MAX_LEVELS``: 0/1 flags, 1/2 plans, 1-5
   groups) are categorical; other numbers are numeric with a range widened by ``RANGE_SLACK``;
   text columns are categorical with their levels.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from churn.config.errors import DataError
from churn.config.params import (
    DatasetConfig,
    IngestParams,
    Level,
    NumericColumn,
    label_text,
    label_texts,
)
from churn.data.ingest import CsvFormat, detect_csv_format, sample_files

CODE_MAX_LEVELS = 5  # integer columns with at most this many values are codes (categorical)
MAX_LEVELS = 50  # text columns with more levels are not one-hot encoded (ignored or PII)
FREE_TEXT_SHARE = 0.5  # text with more distinct values than this share of rows is free text
LEAK_AUC = 0.99  # a single column with this ROC AUC on the label leaks it
RANGE_SLACK = 0.5  # ranges widen by this share of the observed span above (and below if < 0)
PII_MIN_DISTINCT = 20  # a personal column by its name has many values ("PhoneService" has two)
NUMERIC_SHARE = 0.98  # text columns whose non-blank cells are numbers at least this often
# Rows profiled at most (init-dataset --sample-rows): a seeded uniform sample of a larger file.
# 100,000 rows hold a level of 1 row in 10,000 with probability 1 - e^-10 (99.995 %), and are
# profiled in seconds.
SAMPLE_ROWS = 100_000

PII_TOKENS = frozenset(
    {
        "surname", "firstname", "lastname", "fullname", "email", "mail", "phone", "mobile",
        "telephone", "tel", "address", "street", "ssn", "iban", "passport", "birthdate", "dob",
        "birthday", "ip",
    }
)  # fmt: skip
ID_TOKENS = frozenset({"id", "uuid", "guid", "identifier"})
# Words in a categorical column's name that mark a group of customers a model should treat
# alike: the suggested ``fairness.segments``.
SEGMENT_TOKENS = frozenset({"gender", "sex", "senior", "age", "marital", "nationality", "race"})


class ProfileError(DataError):
    """The file(s) cannot make a churn data set as asked (no such label, not binary...)."""


@dataclass(frozen=True)
class ColumnDecision:
    """What ``init-dataset`` decided for one column, and why."""

    name: str
    role: str  # label, id, numeric, categorical, pii, ignored
    kind: str  # text, integer, number
    summary: str  # levels, or the observed range
    why: str


@dataclass(frozen=True)
class DatasetProfile:
    """The inferred ``ingest`` and ``dataset`` blocks, with the reason for each decision."""

    ingest: IngestParams
    n_rows: int
    n_duplicate_rows: int
    dataset: DatasetConfig
    columns: list[ColumnDecision]
    label_why: str
    id_why: str
    notes: list[str] = field(default_factory=list)
    total_rows: int | None = None  # the files' rows when ``n_rows`` of them were sampled
    encoding_how: str | None = None  # how the CSV encoding was found (detect_encoding)

    def by_role(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]


def profile_files(
    files: Sequence[Path],
    label: str,
    *,
    positive: str | None = None,
    id_column: str | None = None,
    written_paths: Sequence[str] | None = None,
    encoding: str | None = None,
    sample_rows: int | None = SAMPLE_ROWS,
    progress: Callable[[int, int, int], None] | None = None,
) -> DatasetProfile:
    """Read the file(s) as ingestion will, and profile them (or a seeded sample of their rows).

    CSV files get their separator, encoding and decimal mark detected (from the first file;
    ``detect_encoding``: a byte-order mark, UTF-8, else charset-normalizer's guess); Parquet
    files carry their own. Several files must have the same columns. The files are read in
    chunks (``sample_files``); with more than ``sample_rows`` rows, a seeded uniform sample of
    ``sample_rows`` of them is profiled, and the profile says so.

    Args:
        files: the data files, read in this order.
        label: the label column.
        positive: the label's churn value as the file holds it (default: the minority value).
        id_column: the id column (default: inferred, or none).
        written_paths: how ``ingest.path`` names the files (default: as given).
        encoding: the CSV files' encoding (default: detected).
        sample_rows: rows profiled at most; None or 0: every row.
        progress: called after each chunk read with (bytes read, bytes in all, rows read).

    Raises:
        ProfileError, IngestError: naming what is wrong and what to pass instead (an encoding
            that cannot be told: ``--encoding``).
    """
    if not files:
        raise ProfileError("no data file given")
    csv_files = [f for f in files if not f.name.lower().endswith((".parquet", ".pq"))]
    fmt = None
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ProfileError(
                f"--encoding {encoding!r} is not an encoding Python knows (utf-8, cp1252, "
                "cp932, utf-16...)"
            ) from None
    if csv_files:
        with csv_files[0].open("rb") as handle:
            head = handle.read(65537)  # detect_csv_format reads 64 KiB; one more: "cut"
        fmt = detect_csv_format(head, encoding)
        if encoding is not None:
            fmt = replace(fmt, encoding_how="--encoding")
        if not fmt.confident:
            raise ProfileError(
                f"cannot tell the encoding of {csv_files[0]}: {fmt.encoding_how}; pass "
                f"--encoding with the file's encoding (e.g. --encoding {fmt.encoding}, cp1252, "
                "cp932 for Shift-JIS, utf-16), then check the levels printed"
            )
    paths = list(written_paths or [str(f) for f in files])
    ingest = IngestParams(
        kind="file",
        path=paths[0] if len(paths) == 1 else paths,
        **({"sep": fmt.sep, "encoding": fmt.encoding, "decimal": fmt.decimal} if fmt else {}),
    )
    sample = sample_files(list(files), ingest, sample_rows or None, progress=progress)
    profile = profile_frame(
        sample.frame,
        label,
        positive=positive,
        id_column=id_column,
        ingest=ingest,
        row_positions=sample.positions if sample.sampled else None,
    )
    if sample.sampled:
        profile = replace(profile, total_rows=sample.total_rows)
        profile.notes.insert(
            0,
            f"profiled a seeded uniform sample of {len(sample.frame):,} of {sample.total_rows:,} "
            f"rows (--sample-rows {sample_rows}; 0 reads every row): levels seen only in other "
            "rows are quarantined by validation; add them under dataset.categorical",
        )
    if fmt is not None:
        profile = replace(profile, encoding_how=fmt.encoding_how)
        profile.notes.insert(0, _format_note(fmt))
    return profile


def profile_frame(
    frame: pd.DataFrame,
    label: str,
    *,
    positive: str | None = None,
    id_column: str | None = None,
    ingest: IngestParams | None = None,
    row_positions: np.ndarray | None = None,
) -> DatasetProfile:
    """Profile a raw frame (as ingestion reads it): the roles, types and contract of each column.

    ``row_positions``: each row's position in the file(s) when the frame is a sample of them
    (a row-number column then still reads as one).

    Raises:
        ProfileError: the label is missing or not binary, ``positive`` is not one of its values,
            or ``id_column`` is missing or not unique.
    """
    if label not in frame.columns:
        raise ProfileError(
            f"--label {label!r} is not a column; the columns are {list(frame.columns)}"
        )
    y, positive_value, negative_value, label_why = _label(frame[label], label, positive)
    decisions = [
        ColumnDecision(
            label, "label", _kind(frame[label]), f"{positive_value!r} = churn", label_why
        )
    ]
    rest = [c for c in frame.columns if c != label]
    chosen_id, id_why = _id_column(frame, rest, id_column)
    numeric: dict[str, NumericColumn] = {}
    categorical: dict[str, list[Level]] = {}
    pii: list[str] = []
    ignored: list[str] = []
    for name in rest:
        column = frame[name]
        if name == chosen_id:
            decisions.append(ColumnDecision(name, "id", _kind(column), "unique", id_why))
            continue
        decision, spec = _feature(
            name, column, y, identifier=bool(_tokens(name) & ID_TOKENS), positions=row_positions
        )
        decisions.append(decision)
        if decision.role == "numeric":
            assert isinstance(spec, NumericColumn)
            numeric[name] = spec
        elif decision.role == "categorical":
            assert isinstance(spec, list)
            categorical[name] = spec
        elif decision.role == "pii":
            pii.append(name)
        else:
            ignored.append(name)
    if chosen_id is not None:
        pii.insert(0, chosen_id)  # an id is personal data: hashed in the log, never in clear
    dataset = DatasetConfig(
        id_column=chosen_id,
        # The id as the file has it: an integer column stays an integer in the API.
        id_type="integer"
        if chosen_id is not None and _kind(frame[chosen_id]) == "integer"
        else "string",
        label_column=label,
        positive_label=positive_value,
        negative_label=negative_value,
        time_column=None,
        pii_columns=pii,
        ignore_columns=ignored,
        numeric=numeric,
        categorical=categorical,
    )
    if not dataset.feature_columns:
        raise ProfileError(
            "no column is left as a feature: "
            + "; ".join(f"{d.name}: {d.why}" for d in decisions if d.role not in ("label", "id"))
        )
    notes = []
    segments = suggest_segments(dataset)
    if segments:
        notes.append(
            f"segment columns for fairness.segments: {', '.join(segments)} (their names mark "
            "groups of customers; the per-segment figures are at training and in monitoring)"
        )
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        notes.append(
            f"{duplicates} rows are exact duplicates of another: kept (a split can put twins on "
            "both sides)"
        )
    return DatasetProfile(
        ingest=ingest or IngestParams(),
        n_rows=len(frame),
        n_duplicate_rows=duplicates,
        dataset=dataset,
        columns=decisions,
        label_why=label_why,
        id_why=id_why,
        notes=notes,
    )


# -- the rules --------------------------------------------------------------------------------


def suggest_segments(dataset: DatasetConfig) -> list[str]:
    """Categorical columns whose names mark groups of customers (``SEGMENT_TOKENS``)."""
    return [name for name in dataset.categorical if _tokens(name) & SEGMENT_TOKENS]


def _label(column: pd.Series, name: str, positive: str | None) -> tuple[np.ndarray, Any, Any, str]:
    texts = label_texts(column)
    counts = texts.value_counts()
    if len(counts) != 2:
        found = ", ".join(f"{v!r} ({n} rows)" for v, n in counts.head(10).items())
        raise ProfileError(
            f"the label {name!r} holds {len(counts)} distinct value(s): {found or 'none'}; a "
            "churn label has two (churned / stayed): pick another --label, or map its values "
            "to two in the file"
        )
    missing = int(texts.isna().sum())
    if positive is not None:
        wanted = label_text(positive)
        if wanted not in counts.index:
            raise ProfileError(
                f"--positive {positive!r} is not a value of {name!r}; it holds {list(counts.index)}"
            )
        why = "--positive"
    else:
        if counts.iloc[0] == counts.iloc[1]:
            raise ProfileError(
                f"the label {name!r} holds {list(counts.index)} equally often: pass --positive "
                "with the value that means churn"
            )
        wanted = str(counts.index[-1])  # value_counts sorts descending: the minority is last
        why = "minority"
    other = next(t for t in counts.index if t != wanted)
    share = counts[wanted] / counts.sum()
    why += f": {counts[wanted]}/{counts.sum()} ({share:.1%})"
    if missing:
        why += f"; {missing} rows without a label will be quarantined"
    return (
        (texts == wanted).to_numpy(),
        _as_written(column[texts == wanted].iloc[0]),
        _as_written(column[texts == other].iloc[0]),
        why,
    )


def _id_column(frame: pd.DataFrame, names: list[str], given: str | None) -> tuple[str | None, str]:
    if given is not None:
        if given not in frame.columns:
            raise ProfileError(f"--id {given!r} is not a column; the columns are {names}")
        if not _unique(frame[given]):
            dupes = int(frame[given].duplicated().sum())
            raise ProfileError(
                f"--id {given!r} is not unique ({dupes} repeated values) or has empty cells: an "
                "id names one customer; leave --id out to key rows by content"
            )
        return given, "--id"
    by_name = [n for n in names if _tokens(n) & ID_TOKENS and _unique(frame[n])]
    if by_name:
        return by_name[0], "unique, and its name says id"
    by_shape = [
        n for n in names if _looks_like_codes(frame[n]) and not _tokens(n) & (PII_TOKENS | {"name"})
    ]
    if by_shape:
        return by_shape[0], "unique codes of one shape (letters and digits)"
    return None, "no unique id-like column: rows are keyed by their content (_row_key)"


def _feature(
    name: str,
    column: pd.Series,
    y: np.ndarray,
    *,
    identifier: bool,
    positions: np.ndarray | None = None,
) -> tuple[ColumnDecision, NumericColumn | list[Level] | None]:
    kind = _kind(column)
    values = column.dropna()
    distinct = values.nunique()
    tokens = _tokens(name)
    if tokens & (PII_TOKENS | {"name"}) and distinct > PII_MIN_DISTINCT:
        return ColumnDecision(
            name, "pii", kind, f"{distinct} values", "personal data by its name"
        ), None
    if distinct <= 1:
        shown = repr(values.iloc[0]) if distinct else "empty"
        return ColumnDecision(name, "ignored", kind, shown, "constant: carries no signal"), None
    numbers = _numbers(column)
    if numbers is None:
        return _text_feature(name, column, y, distinct)
    present = numbers.dropna()
    integer = bool((present % 1 == 0).all())
    if integer and (identifier or _is_row_number(present, positions)) and present.is_unique:
        why = "a second identifier" if identifier else "a row number (1, 2, 3...)"
        return ColumnDecision(
            name, "ignored", kind, _range_text(present), why + ": not a feature"
        ), None
    if integer and distinct <= CODE_MAX_LEVELS:
        levels: list[Level] = sorted(int(v) for v in present.unique())
        leak = _leak(name, present.astype("int64").astype(str), y, present.index)
        if leak:
            return ColumnDecision(name, "ignored", "integer", str(levels), leak), None
        why = f"{distinct} integer codes: categories"
        return ColumnDecision(name, "categorical", "integer", _levels_text(levels), why), levels
    leak = _leak(name, present, y, present.index)
    if leak:
        return ColumnDecision(name, "ignored", kind, _range_text(present), leak), None
    lo, hi = float(present.min()), float(present.max())
    spec = NumericColumn(
        min=_slack_min(lo, hi),
        max=_slack_max(lo, hi),
        integer=integer,
        nullable=bool(numbers.isna().any()),
    )
    why = f"{distinct} distinct numbers"
    if spec.nullable:
        why += f"; {int(numbers.isna().sum())} blanks (training median)"
    summary = f"{_range_text(present)} (allowed {_short(spec.min)}..{_short(spec.max)})"
    kind = "integer" if integer else "number"
    return ColumnDecision(name, "numeric", kind, summary, why), spec


def _text_feature(
    name: str, column: pd.Series, y: np.ndarray, distinct: int
) -> tuple[ColumnDecision, list[Level] | None]:
    values = column.dropna().astype(str)
    if distinct > MAX_LEVELS:
        if distinct > FREE_TEXT_SHARE * len(values):
            why = f"free text ({distinct} distinct strings): possibly personal, never a feature"
            return ColumnDecision(name, "pii", "text", f"{distinct} values", why), None
        why = f"{distinct} levels: too many to one-hot; group them in the file to use it"
        return ColumnDecision(name, "ignored", "text", f"{distinct} values", why), None
    leak = _leak(name, values, y, values.index)
    if leak:
        return ColumnDecision(name, "ignored", "text", f"{distinct} values", leak), None
    counts = values.value_counts()
    levels: list[Level] = sorted(counts.index)
    why = f"{distinct} levels"
    missing = int(column.isna().sum())
    if missing:
        why += f"; {missing} empty cells: those rows will be quarantined"
    return ColumnDecision(name, "categorical", "text", _levels_text(levels), why), levels


def _leak(name: str, values: pd.Series, y: np.ndarray, index: pd.Index) -> str | None:
    """Why the column leaks the label (its single-column ROC AUC), or None."""
    target = pd.Series(y, index=range(len(y))).loc[index].to_numpy()
    if len(set(target)) < 2:
        return None
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        score = values.map(pd.Series(target, index=values.index).groupby(values).mean())
    else:
        score = values.astype("float64")
    auc = float(roc_auc_score(target, score.to_numpy()))
    auc = max(auc, 1 - auc)
    if auc < LEAK_AUC:
        return None
    return (
        f"leaks the label: on its own it separates churners with ROC AUC {auc:.3f} "
        "(probably recorded after the churn); add it back under numeric/categorical if not"
    )


# -- small helpers ----------------------------------------------------------------------------


def _tokens(name: str) -> set[str]:
    """Lower-case words of a column name: ``customerID`` -> {customer, id}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {t.lower() for t in re.split(r"[^A-Za-z0-9]+", spaced) if t}


def _unique(column: pd.Series) -> bool:
    return bool(column.notna().all() and column.is_unique)


def _looks_like_codes(column: pd.Series) -> bool:
    if _kind(column) != "text" or not _unique(column):
        return False
    text = column.astype(str)
    lengths = text.str.len()
    return bool(
        text.str.fullmatch(r"[A-Za-z0-9_-]+").all()
        and text.str.contains(r"\d").all()
        and lengths.max() - lengths.min() <= 2
    )


def _is_row_number(values: pd.Series, positions: np.ndarray | None = None) -> bool:
    """1, 2, 3...: each value one more than the row before (in a sample: than the rows between)."""
    ordered = values.to_numpy()
    steps = 1 if positions is None else np.diff(positions[values.index.to_numpy()])
    return bool(len(ordered) > 2 and (np.diff(ordered) == steps).all())


def _kind(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "integer"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    return "text"


def _numbers(column: pd.Series) -> pd.Series | None:
    """The column as numbers (blank cells missing), or None when it is text."""
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    stripped = column.astype("string").str.strip()
    stripped = stripped.mask(stripped == "")
    numbers = pd.to_numeric(stripped, errors="coerce")
    present = stripped.notna()
    if not present.any() or numbers[present].notna().mean() < NUMERIC_SHARE:
        return None
    return numbers.astype("float64")


def _nice(value: float, up: bool) -> float:
    """Round away from the data to two significant digits (108.4 -> 110)."""
    if value == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(round(rounded, 10))


def _slack_max(lo: float, hi: float) -> float:
    return _nice(hi + RANGE_SLACK * (hi - lo), up=True)


def _slack_min(lo: float, hi: float) -> float:
    return 0.0 if lo >= 0 else _nice(lo - RANGE_SLACK * (hi - lo), up=False)


def _range_text(values: pd.Series) -> str:
    lo, hi = values.min(), values.max()
    return f"{_short(lo)}..{_short(hi)}"


def _short(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.4g}"


def _levels_text(levels: Sequence[Level], limit: int = 40) -> str:
    text = ", ".join(str(level) for level in levels)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_written(value: Any) -> Any:
    """A label value as the file holds it, as a plain Python value (for YAML)."""
    return value.item() if hasattr(value, "item") else value


def _format_note(fmt: CsvFormat) -> str:
    sep = {"\t": "tab"}.get(fmt.sep, repr(fmt.sep))
    return (
        f"CSV: separator {sep}, decimal mark {fmt.decimal!r} (detected), encoding {fmt.encoding} "
        f"({fmt.encoding_how}; --encoding to change it)"
    )
