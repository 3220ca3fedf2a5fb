"""The files of a partitioned data set: one file, a directory of parts, or a glob."""

from __future__ import annotations

import glob
from pathlib import Path

from churn.config.errors import DataError

SUFFIXES = (".parquet", ".pq", ".csv")


def input_parts(source: str | Path) -> list[Path]:
    """The Parquet or CSV files of ``source``: a file, a directory of parts, or a glob."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True))  # noqa: PTH207 (absolute globs)
    elif Path(text).is_dir():
        files = sorted(p for p in Path(text).rglob("*") if p.suffix.lower() in SUFFIXES)
    else:
        files = [Path(text)] if Path(text).exists() else []
    files = [p for p in files if p.is_file() and p.suffix.lower() in SUFFIXES]
    if not files:
        raise DataError(
            f"{source}: no .parquet or .csv files there; give a file, a directory of parts "
            "or a glob"
        )
    kinds = {p.suffix.lower() == ".csv" for p in files}
    if len(kinds) > 1:
        raise DataError(f"{source}: mixes CSV and Parquet parts; give one kind")
    return files
