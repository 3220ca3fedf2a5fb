"""Raw feature columns as every scorer takes them: numbers, category codes and unseen levels."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn.config.params import DatasetConfig

# Raw values of one column: a Python list (the API), a numpy array or a categorical Series
# (batch files).
Values = Sequence[Any] | np.ndarray | pd.Series
# Raw values per feature column.
Columns = Mapping[str, Values]

# Up to this many rows a dict lookup per value beats building a pandas Categorical
# (measured per column: 1000 rows 0.05 vs 0.20 ms; they break even between 4000 and 8000).
SMALL = 4096
# Up to this many rows, plain Python encodes a record faster than a sequence of numpy calls.
ROW_BY_ROW = 8


def level_codes(values: Values, index: Mapping[Any, int], n: int) -> np.ndarray:
    """Position of each value in ``index`` (level -> position); -1 for unseen or missing values."""
    if n <= SMALL:
        return np.fromiter(map(index.get, values, itertools.repeat(-1, n)), dtype=np.intp, count=n)
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        recoded = values.cat.set_categories(list(index))  # unknown values become missing
        return recoded.cat.codes.to_numpy(np.intp)
    codes = pd.Categorical(np.asarray(values, dtype=object), categories=list(index)).codes
    return codes.astype(np.intp)


def level_index(levels: Sequence[Any]) -> dict[Any, int]:
    """``{level: position}`` for :func:`level_codes`."""
    return {level: i for i, level in enumerate(levels)}


def numeric_column(values: Values) -> np.ndarray:
    """Float64 values with None (and, from files, blanks or text) as NaN."""
    if isinstance(values, np.ndarray | pd.Series) and values.dtype.kind in "fiub":
        return np.asarray(values, dtype=np.float64)
    try:
        return np.asarray(values, dtype=np.float64)  # None becomes NaN
    except (TypeError, ValueError):
        return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)


class UnseenLevels:
    """Finds categorical values that are not configured levels (accepted, scored, flagged)."""

    def __init__(self, dataset: DatasetConfig) -> None:
        self._indices = {c: level_index(levels) for c, levels in dataset.categorical.items()}

    def masks(self, columns: Columns, n: int) -> dict[str, np.ndarray]:
        """Per categorical column with at least one unseen value, which rows hold one."""
        out = {}
        for name, index in self._indices.items():
            values = columns[name]
            if isinstance(values, list) and all(v in index for v in set(values)):
                continue  # the common case, without building codes
            mask = level_codes(values, index, n) < 0
            if mask.any():
                out[name] = mask
        return out

    def per_row(self, columns: Columns, n: int) -> list[list[str]] | None:
        """For each row, the columns holding an unseen value; None when there is none at all."""
        if n == 1:  # one request's record
            one = [c for c, index in self._indices.items() if columns[c][0] not in index]
            return [one] if one else None
        if n <= ROW_BY_ROW:
            flagged = [
                [c for c, index in self._indices.items() if columns[c][i] not in index]
                for i in range(n)
            ]
            return flagged if any(flagged) else None
        masks = self.masks(columns, n)
        if not masks:
            return None
        rows: list[list[str]] = [[] for _ in range(n)]
        for name, mask in masks.items():
            for i in np.flatnonzero(mask):
                rows[i].append(name)
        return rows
