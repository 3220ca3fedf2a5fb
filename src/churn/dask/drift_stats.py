"""Mergeable per-column summaries and the drift distances computed from them.

Monitoring a window that does not fit in one process (the dask engine) summarises each partition
with :func:`summarize`, adds the summaries with :func:`merge` (exact: counts, sums, extremes,
histogram counts and level counts all add), and computes the drift distances Evidently itself
picks above 1,000 reference rows from the merged summaries, so that the figures of both engines
stay comparable:

* numeric columns: the normed Wasserstein distance, ``W1(reference, current) / std(reference)``
  (Evidently's ``wasserstein``: ``scipy.stats.wasserstein_distance`` over the population standard
  deviation of the reference, floored at 0.001), from histograms on a shared fine grid spanning the
  reference's range; the current window's mass below or above that range is kept as its count and
  sum, which keeps W1's tails exact, so the only error is the grid's (at most one bin width over
  the reference's standard deviation; :data:`NUMERIC_BINS` bins make it < 0.001 on the Telco
  columns, against a threshold of 0.1);
* categorical columns, and numeric columns with at most 5 distinct values in both frames (where
  Evidently switches to it): the Jensen-Shannon distance of the level shares
  (``scipy.spatial.distance.jensenshannon``, natural log, Evidently's default base);
* PSI, reported beside them (``monitor.num_method``/``cat_method: psi``): on level shares, and for
  numeric columns on the reference's deciles (Evidently bins both frames together with Sturges'
  rule, which needs both frames in one place: the dask engine's numeric PSI is the classic
  decile one).

Missing values are left out of the distances, as Evidently drops them before its tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import distance

from churn.config.errors import DataError

NUMERIC_BINS = 4096
"""Bins of the fine grid over the reference's range of each numeric column."""
EXACT_VALUES = 20
"""Distinct values a numeric column keeps exact counts of (Evidently's own cut for binning)."""
FEW_VALUES = 5
"""At most this many distinct numeric values (both frames): Evidently uses Jensen-Shannon."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
DISPLAY_NAMES = {
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
}
"""Evidently's names of the tests (what its reports, and so the pandas engine, call them)."""
DRIFT_METHODS = {"numeric": ("wasserstein", "psi"), "categorical": ("jensenshannon", "psi")}


@dataclass(frozen=True)
class Grid:
    """The shared bins of one numeric column: a fine grid and the reference's deciles."""

    edges: np.ndarray  # NUMERIC_BINS + 1 edges over the reference's [min, max]
    deciles: np.ndarray  # 11 edges, for PSI


@dataclass
class NumericSummary:
    """One numeric column of one frame (or of many, merged)."""

    count: int = 0  # values present
    missing: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean (merged with Chan's rule)
    min: float = math.inf
    max: float = -math.inf
    hist: np.ndarray | None = None  # counts on Grid.edges
    below: tuple[int, float] = (0, 0.0)  # (count, sum) of values under the grid
    above: tuple[int, float] = (0, 0.0)  # (count, sum) of values over the grid
    deciles: np.ndarray | None = None  # counts on Grid.deciles
    values: dict[float, int] | None = field(default_factory=dict)  # None once > EXACT_VALUES

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, Evidently's norm)."""
        return math.sqrt(self.m2 / self.count) if self.count else float("nan")

    def quantile(self, q: float) -> float:
        """The ``q`` quantile: exact from the value counts when kept, else within one bin."""
        if self.count == 0:
            return float("nan")
        if self.values is not None:
            keys = sorted(self.values)
            cum = np.cumsum([self.values[k] for k in keys])
            return float(keys[int(np.searchsorted(cum, q * self.count))])
        if self.hist is None:
            return float("nan")
        cum = np.concatenate([[self.below[0]], self.below[0] + np.cumsum(self.hist)])
        i = int(np.searchsorted(cum, q * self.count))
        if i == 0:
            return self.min
        if i >= len(cum):
            return self.max
        return float(np.clip(self._edges_mid[i - 1], self.min, self.max))

    _edges_mid: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean if self.count else None,
            "std": self.std if self.count else None,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "quantiles": {str(q): self.quantile(q) for q in QUANTILES} if self.count else {},
        }


@dataclass
class CategoricalSummary:
    """One categorical column of one frame (or of many, merged)."""

    count: int = 0
    missing: int = 0
    levels: dict[Any, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "missing": self.missing,
            "levels": {str(k): v for k, v in sorted(self.levels.items(), key=lambda kv: -kv[1])},
        }


Summary = NumericSummary | CategoricalSummary


@dataclass
class FrameSummary:
    """Every monitored column of a frame (rows: all rows, missing or not)."""

    rows: int
    columns: dict[str, Summary]


def grids(reference: pd.DataFrame, numeric: Iterable[str]) -> dict[str, Grid]:
    """The bins of each numeric column, from the reference (the frame every window meets)."""
    out = {}
    for c in numeric:
        x = pd.to_numeric(reference[c], errors="coerce").to_numpy(np.float64)
        x = x[np.isfinite(x)]
        lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        deciles = np.unique(np.quantile(x, np.linspace(0, 1, 11))) if len(x) else np.array([lo])
        deciles = deciles if len(deciles) > 1 else np.array([lo, hi])
        deciles = np.concatenate([[-np.inf], deciles[1:-1], [np.inf]])
        out[c] = Grid(np.linspace(lo, hi, NUMERIC_BINS + 1), deciles)
    return out


def summarize(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    grid: Mapping[str, Grid],
) -> FrameSummary:
    """The summary of one frame (a partition, or a whole in-memory frame)."""
    columns: dict[str, Summary] = {}
    for c in numeric:
        columns[c] = _numeric(frame[c], grid[c])
    for c in categorical:
        col = frame[c]
        present = col.dropna()
        counts = present.value_counts(sort=False)
        columns[c] = CategoricalSummary(
            count=len(present),
            missing=len(col) - len(present),
            levels={_key(k): int(v) for k, v in counts.items() if v},
        )
    return FrameSummary(len(frame), columns)


def _key(value: Any) -> Any:
    """One dict key per level: numpy scalars as Python values (1 and 1.0 hash alike)."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric(column: pd.Series, grid: Grid) -> NumericSummary:
    x = pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    x = x[np.isfinite(x)]
    s = NumericSummary(count=len(x), missing=len(column) - len(x), _edges_mid=_mids(grid))
    if not len(x):
        s.hist = np.zeros(NUMERIC_BINS, np.int64)
        s.deciles = np.zeros(len(grid.deciles) - 1, np.int64)
        return s
    s.mean = float(x.mean())
    s.m2 = float(((x - s.mean) ** 2).sum())
    s.min, s.max = float(x.min()), float(x.max())
    lo, hi = grid.edges[0], grid.edges[-1]
    under, over = x < lo, x > hi
    s.below = (int(under.sum()), float(x[under].sum()))
    s.above = (int(over.sum()), float(x[over].sum()))
    s.hist = np.histogram(x[~(under | over)], grid.edges)[0].astype(np.int64)
    s.deciles = np.histogram(x, grid.deciles)[0].astype(np.int64)
    distinct, counts = np.unique(x, return_counts=True)
    s.values = (
        {float(v): int(n) for v, n in zip(distinct, counts, strict=True)}
        if len(distinct) <= EXACT_VALUES
        else None
    )
    return s


def _mids(grid: Grid) -> np.ndarray:
    return (grid.edges[:-1] + grid.edges[1:]) / 2


def merge(summaries: Iterable[FrameSummary]) -> FrameSummary:
    """The summary of the frames together: what :func:`summarize` gives on their concatenation
    (up to floating-point rounding of the mean and variance)."""
    items = list(summaries)
    if not items:
        raise ValueError("nothing to merge: the window has no partitions")
    out = FrameSummary(sum(s.rows for s in items), {})
    for c in items[0].columns:
        parts = [s.columns[c] for s in items]
        if isinstance(parts[0], NumericSummary):
            out.columns[c] = _merge_numeric([p for p in parts if isinstance(p, NumericSummary)])
        else:
            levels: dict[Any, int] = {}
            for p in parts:
                assert isinstance(p, CategoricalSummary)
                for k, v in p.levels.items():
                    levels[k] = levels.get(k, 0) + v
            out.columns[c] = CategoricalSummary(
                sum(p.count for p in parts), sum(p.missing for p in parts), levels
            )
    return out


def _merge_numeric(parts: list[NumericSummary]) -> NumericSummary:
    s = NumericSummary(_edges_mid=parts[0]._edges_mid)
    for p in parts:
        s.missing += p.missing
        if p.count == 0:
            continue
        n = s.count + p.count
        delta = p.mean - s.mean
        s.m2 += p.m2 + delta**2 * s.count * p.count / n
        s.mean += delta * p.count / n
        s.count = n
        s.min, s.max = min(s.min, p.min), max(s.max, p.max)
        s.below = (s.below[0] + p.below[0], s.below[1] + p.below[1])
        s.above = (s.above[0] + p.above[0], s.above[1] + p.above[1])
        if s.values is not None and p.values is not None:
            for k, v in p.values.items():
                s.values[k] = s.values.get(k, 0) + v
            if len(s.values) > EXACT_VALUES:
                s.values = None
        else:
            s.values = None
    s.hist = np.sum([p.hist for p in parts if p.hist is not None], axis=0)
    s.deciles = np.sum([p.deciles for p in parts if p.deciles is not None], axis=0)
    return s


@dataclass(frozen=True)
class Distance:
    """The drift verdict on one column, computed from the summaries."""

    column: str
    method: str
    threshold: float
    score: float
    drifted: bool
    psi: float


def drift(
    reference: FrameSummary,
    current: FrameSummary,
    *,
    num_method: str | None = None,
    cat_method: str | None = None,
    threshold: float = 0.1,
) -> dict[str, Distance]:
    """Per-column drift of ``current`` against ``reference``, with Evidently's default tests
    above 1,000 reference rows (or ``num_method`` / ``cat_method``: see :data:`DRIFT_METHODS`).

    A column drifted when its score reaches ``threshold`` (Evidently's ``>=``).
    """
    for kind, method in (("numeric", num_method), ("categorical", cat_method)):
        if method is not None and method not in DRIFT_METHODS[kind]:
            key = "num_method" if kind == "numeric" else "cat_method"
            raise DataError(
                f"monitor.{key}: {method!r} is not computed by the dask engine, which takes "
                f"{' or '.join(DRIFT_METHODS[kind])} (or null: Evidently's default); set "
                f"monitor.{key} to one of those, or use engine.kind: pandas"
            )
    out = {}
    for c, ref in reference.columns.items():
        cur = current.columns[c]
        if isinstance(ref, NumericSummary):
            assert isinstance(cur, NumericSummary)
            few = _few_values(ref, cur)
            psi = _psi_counts(*_value_shares(ref, cur)) if few else _psi_deciles(ref, cur)
            if num_method == "psi":
                method, score = "psi", psi
            elif few is not None and len(few) <= FEW_VALUES and num_method is None:
                method, score = "jensenshannon", _js(*_value_shares(ref, cur))
            else:
                method, score = "wasserstein", wasserstein_normed(ref, cur)
        else:
            assert isinstance(cur, CategoricalSummary)
            shares = _level_shares(ref.levels, cur.levels)
            psi = _psi_counts(*shares)
            method, score = ("psi", psi) if cat_method == "psi" else ("jensenshannon", _js(*shares))
        out[c] = Distance(c, method, threshold, float(score), bool(score >= threshold), float(psi))
    return out


def _few_values(ref: NumericSummary, cur: NumericSummary) -> set[float] | None:
    if ref.values is None or cur.values is None:
        return None
    keys = set(ref.values) | set(cur.values)
    return keys if len(keys) <= EXACT_VALUES else None


def _value_shares(ref: NumericSummary, cur: NumericSummary) -> tuple[np.ndarray, np.ndarray]:
    assert ref.values is not None and cur.values is not None
    return _level_shares(ref.values, cur.values)


def _level_shares(ref: Mapping[Any, int], cur: Mapping[Any, int]) -> tuple[np.ndarray, np.ndarray]:
    keys = list({**ref, **cur})
    r = np.array([ref.get(k, 0) for k in keys], np.float64)
    c = np.array([cur.get(k, 0) for k in keys], np.float64)
    return r / max(r.sum(), 1), c / max(c.sum(), 1)


def _js(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(distance.jensenshannon(ref, cur))


def _psi_counts(ref: np.ndarray, cur: np.ndarray) -> float:
    """PSI with Evidently's rule for empty bins (a tiny share instead of zero)."""
    ref, cur = _fill_zeroes(ref.copy()), _fill_zeroes(cur.copy())
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    nonzero = p[p != 0]
    if len(nonzero) == 0:
        return np.full_like(p, 1 / len(p))
    low = nonzero.min()
    np.place(p, p == 0, low / 10**6 if low <= 0.0001 else 0.0001)
    return p


def _psi_deciles(ref: NumericSummary, cur: NumericSummary) -> float:
    assert ref.deciles is not None and cur.deciles is not None
    return _psi_counts(
        ref.deciles / max(ref.deciles.sum(), 1), cur.deciles / max(cur.deciles.sum(), 1)
    )


def wasserstein_normed(ref: NumericSummary, cur: NumericSummary) -> float:
    """``W1(reference, current) / max(std(reference), 0.001)`` from the histograms.

    Each bin's mass sits at its centre, and the current window's mass outside the grid at the
    mean of those values: W1 between these two discrete distributions differs from the exact W1
    by at most one bin width (the tails are exact: only their mean enters W1 beyond the range).
    """
    if ref.count == 0 or cur.count == 0 or ref.hist is None or cur.hist is None:
        return float("nan")
    mids = ref._edges_mid
    below_at = cur.below[1] / cur.below[0] if cur.below[0] else mids[0]
    above_at = cur.above[1] / cur.above[0] if cur.above[0] else mids[-1]
    support = np.concatenate([[min(below_at, mids[0])], mids, [max(above_at, mids[-1])]])
    p = np.concatenate([[ref.below[0]], ref.hist, [ref.above[0]]]) / ref.count
    q = np.concatenate([[cur.below[0]], cur.hist, [cur.above[0]]]) / cur.count
    gaps = np.diff(support)
    w1 = float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q))[:-1] * gaps))
    return w1 / max(ref.std, 0.001)
