"""The tree walk of :class:`churn.scoring.trees.NumpyTrees`, compiled by numba.

A handful of records go through every tree in one compiled loop, instead of the dozen numpy
calls per record it took before, whose fixed costs, not the arithmetic, were the time (what the
walk costs a request in the server: ``churn bench serve --in-process``, "without the tree walk";
docs/serving.md, "Against the HTTP floor"). Compiled once per machine: ``cache=True`` keeps
the machine code beside this file (or in ``NUMBA_CACHE_DIR``), so later processes load it in
milliseconds. Imported only where a booster is replayed (``NumpyTrees``), never at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

log = logging.getLogger(__name__)


def _compiled(function: Callable[..., Any]) -> Any:
    """``numba.njit(cache=True)``, or without the cache when no folder for it is writable (a
    read-only image whose home is read-only too): then it compiles at each start, and says so."""
    try:
        return numba.njit(cache=True)(function)
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        log.warning(
            "the tree walk is compiled at each start (about half a second): %s; set "
            "NUMBA_CACHE_DIR to a writable folder to keep it",
            exc,
        )
        return numba.njit(function)


@_compiled
def margins(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    default_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    leaf: np.ndarray,
    roots: np.ndarray,
    depth: int,
    base: float,
) -> np.ndarray:  # pragma: no cover - compiled: its Python lines never run
    """The raw score of each row of ``X`` (float32, encoded): ``base`` plus each tree's leaf.

    XGBoost's rule at a split node: a missing value (NaN) takes the node's default branch,
    any other goes left when ``value < threshold``, both in float32 as XGBoost compares.
    A leaf is its own child, so ``depth`` steps end every walk on its leaf.
    """
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        total = 0.0
        for tree in range(roots.shape[0]):
            node = roots[tree]
            for _ in range(depth):
                value = X[i, feature[node]]  # NaN: the one value unequal to itself
                go_left = default_left[node] if value != value else value < threshold[node]
                node = left[node] if go_left else right[node]
            total += leaf[node]
        out[i] = total + base
    return out
