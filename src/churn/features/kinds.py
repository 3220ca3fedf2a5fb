"""The derived-feature kinds' arithmetic, on a frame's columns and on one record, per kind.

What an entry of ``params.yaml``'s ``features`` block says (its model, the columns it reads and
their role) is declared in ``churn.config.features``, below the data stages that prune it; here is
what it computes, keyed by that entry model (``ARITHMETIC``). Training's pipeline step
(``churn.features.pipeline.DerivedFeatures``) and the serving replay (``churn.scoring.replay``)
both call these functions, so a change here is served exactly as it was trained.

Each kind gives, for one configured entry, two functions:

- ``frame(columns, n)``: the ``n`` values of the feature, float64, from 1-D columns by name (lists,
  numpy arrays or pandas categoricals; numbers already filled);
- ``record(values)``: the one value of one record from its values by name, as a Python float,
  with the same operations in the same order, so the same value to the last bit
  (``tests/unit/features/test_kinds.py``), without one-element arrays (for one record their fixed
  cost is the time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from churn.config.features import (
    CountFeature,
    DifferenceFeature,
    FeatureEntry,
    FeatureParams,
    RatioFeature,
)

# Below this many rows a count goes through plain Python (numpy's per-call cost is the time).
_FEW = 8

Frame = Callable[[Mapping[str, Any], int], np.ndarray]
Record = Callable[[Mapping[str, Any]], float]


class Arithmetic(NamedTuple):
    """One configured feature's two forms: on ``n`` rows of columns, and on one record."""

    frame: Frame
    record: Record


def as_float(value: Any) -> float:
    """One value as ``np.asarray(values, dtype=np.float64)`` converts it (None: NaN)."""
    return math.nan if value is None else float(value)


def _numbers(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# ratios ---------------------------------------------------------------------------------------


def ratio(numerator: Any, denominator: Any, maximum: Any = np.maximum) -> Any:
    """``numerator / max(denominator, 1)``, for arrays or (with ``maximum=max``, which gives the
    same value as ``np.maximum`` for every float, NaN included) floats."""
    return numerator / maximum(denominator, 1.0)


def _ratio(entry: RatioFeature) -> Arithmetic:
    num, den = entry.root
    return Arithmetic(
        lambda cols, n: ratio(_numbers(cols[num]), _numbers(cols[den])),
        lambda values: ratio(as_float(values[num]), as_float(values[den]), max),
    )


# counts ---------------------------------------------------------------------------------------


def count_present(columns: Sequence[Any], absent: Collection[Any], n: int) -> np.ndarray:
    """Per row, how many of ``columns`` hold a value that is not in ``absent``.

    A missing value (None, NaN) is not one of ``absent``, so it counts as present. ``columns``
    are 1-D sequences of ``n`` values each: lists, numpy arrays or pandas categoricals.
    """
    out = frozenset(absent)
    if n <= _FEW and columns:
        rows = zip(*columns, strict=True)
        return np.fromiter((present(row, out) for row in rows), np.float64, count=n)
    total = np.zeros(n, dtype=np.float64)
    for values in columns:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            # One test per level, not per row; code -1 (missing) picks the trailing "present".
            by_level = [v not in out for v in values.cat.categories] + [True]
            total += np.asarray(by_level, dtype=np.float64)[values.cat.codes.to_numpy()]
        elif isinstance(values, list):  # a request's column: set lookups beat building an array
            total += ~np.fromiter(map(out.__contains__, values), dtype=bool, count=n)
        else:  # the same membership test, hashed in pandas (twice as fast on 100k values)
            total += ~pd.Series(values, copy=False).isin(out).to_numpy()
    return total


def present(row: Sequence[Any], absent: frozenset[Any]) -> int:
    """One row of :func:`count_present`: how many of its values are not in ``absent``."""
    return len(row) - sum(map(absent.__contains__, row))


def _count(entry: CountFeature) -> Arithmetic:
    cols, absent = list(entry.columns), frozenset(entry.absent)
    return Arithmetic(
        lambda columns, n: count_present([columns[c] for c in cols], absent, n),
        lambda values: float(present([values[c] for c in cols], absent)),
    )


# differences ----------------------------------------------------------------------------------


def _difference(entry: DifferenceFeature) -> Arithmetic:
    a, b = entry.root
    return Arithmetic(
        lambda cols, n: _numbers(cols[a]) - _numbers(cols[b]),
        lambda values: as_float(values[a]) - as_float(values[b]),
    )


# The table: each entry model of churn.config.features.FeatureParams -> its arithmetic.
ARITHMETIC: dict[type[Any], Callable[[Any], Arithmetic]] = {
    RatioFeature: _ratio,
    CountFeature: _count,
    DifferenceFeature: _difference,
}


class UnknownKind(ValueError):
    """A kind of ``FeatureParams`` has no arithmetic in ``ARITHMETIC``: named, never skipped."""


@dataclass(frozen=True)
class Derived:
    """One configured derived feature, ready to compute: its name (its column), its kind, the
    columns it reads (the fields an explanation maps it back to) and its arithmetic."""

    name: str
    kind: str
    reads: tuple[str, ...]
    frame: Frame
    record: Record


def plan(features: FeatureParams) -> list[Derived]:
    """Every configured feature of the ``features`` block, in its order, with its arithmetic.

    Raises:
        UnknownKind: a kind declared in ``FeatureParams`` has no entry in ``ARITHMETIC``.
    """
    out = []
    for kind, name, entry in features.entries():
        make = ARITHMETIC.get(type(entry))
        if make is None:
            raise UnknownKind(
                f"features.{kind}: the kind {type(entry).__name__} has no arithmetic in "
                "churn/features/kinds.py (ARITHMETIC): add its frame and record functions there"
            )
        out.append(Derived(name, kind, _reads(entry), *make(entry)))
    return out


def _reads(entry: FeatureEntry) -> tuple[str, ...]:
    return tuple(entry.reads())
