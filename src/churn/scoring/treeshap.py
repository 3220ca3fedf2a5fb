"""XGBoost's exact TreeSHAP in numpy, for a few rows: the reasons of one score in well under 1 ms.

XGBoost's own ``pred_contribs`` costs about 1-3 ms per row and tree ensemble (measured on a
loaded 2-core machine with the default 144-300 trees), most of it per call. This computes the
same numbers (path-dependent TreeSHAP, covers from the training hessians) another way: for a leaf
whose path tests ``d`` distinct features, each feature's contribution depends only on which of
those ``d`` tests the row passes, so it is computed once per leaf for each of the ``2**d``
patterns when the model is loaded ("Fast TreeSHAP v2", Yang 2021). Explaining a row is then one
comparison per path test, one table look-up per leaf and one sum per feature.

The contribution of path feature ``k`` of a leaf with value ``v``, cover fractions ``z`` and
pattern ``o`` (1 where the row passes the feature's tests) is::

    v * (o_k - z_k) * sum_s  s! (d-1-s)! / d!  *  e_s

where ``e_s`` sums, over the sets ``S`` of ``s`` other path features, the product of ``o_j``
for ``j`` in ``S`` and of ``z_j`` for the others: Shapley weights over the path, as TreeSHAP
unwinds them. ``tests/unit/scoring/test_explain.py`` checks it against ``pred_contribs``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.scoring.trees import NotSupported, logistic_trees

# Paths with more distinct features than this get no table (2**d rows each), nor does an
# ensemble whose tables would hold more than MAX_TABLE numbers (8 bytes each): the caller uses
# XGBoost's own pred_contribs instead. 300 trees of depth 6 fit; 600 do not.
MAX_PATH_FEATURES = 10
MAX_TABLE = 6_000_000
# Rows explained at once (the look-ups take rows x leaves x d numbers).
BLOCK_ROWS = 256


class TooDeep(Exception):
    """The booster is not one this computes (objective, booster kind, or tables too large)."""


@dataclass
class _Group:
    """The leaves whose paths test ``d`` distinct features."""

    d: int
    table: np.ndarray  # (leaves, 2**d, d): each path feature's contribution, per pattern
    leaves: np.ndarray  # 0..leaves-1
    bits: np.ndarray  # 2**k for path position k
    scatter: Any  # sparse (features, leaves * d): which encoded column each position is
    slot_starts: np.ndarray  # where each (leaf, position)'s tests start among the tests
    # the path tests, flat: which (leaf, position) a test belongs to, its column, threshold,
    # whether the path goes left, and where a missing value goes
    test_feature: np.ndarray
    test_threshold: np.ndarray
    test_left: np.ndarray
    test_default_left: np.ndarray


class TreeShap:
    """Path-dependent TreeSHAP of a ``binary:logistic`` gbtree booster, for the rows of ``X``."""

    def __init__(self, booster: Any, n_features: int, iterations: tuple[int, int] = (0, 0)):
        try:
            trees, bias, _ = logistic_trees(booster, iterations)
        except NotSupported as exc:
            raise TooDeep(str(exc)) from exc
        self.n_features = n_features
        by_d: dict[int, list[tuple[float, list[tuple[int, float, list[Any]]]]]] = {}
        for tree in trees:
            for value, path in _leaf_paths(tree):
                bias += value * math.prod(z for _, z, _ in path)
                by_d.setdefault(len(path), []).append((value, path))
        self.bias = bias
        size = sum(len(leaves) * 2**d * d for d, leaves in by_d.items())
        if size > MAX_TABLE:
            raise TooDeep(f"the tables would hold {size:,} numbers (at most {MAX_TABLE:,})")
        self.groups = [_group(d, leaves, n_features) for d, leaves in sorted(by_d.items()) if d > 0]
        # leaves reached with no test (a stump) only add to the bias

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(contributions (n, features), bias (n,))``: ``bias + sum = margin`` per row."""
        n = X.shape[0]
        out = np.zeros((n, self.n_features), dtype=np.float64)
        for start in range(0, n, BLOCK_ROWS):  # bounded memory: (rows, leaves, d) at a time
            rows = X[start : start + BLOCK_ROWS]
            for g in self.groups:
                x = rows[:, g.test_feature]  # (rows, tests)
                went_left = np.where(np.isnan(x), g.test_default_left, x < g.test_threshold)
                passed = went_left == g.test_left
                # a path feature is passed when all its tests are (tests sorted by slot)
                ones = np.logical_and.reduceat(passed, g.slot_starts, axis=1)
                pattern = ones.reshape(len(rows), -1, g.d) @ g.bits  # (rows, leaves)
                picked = g.table[g.leaves, pattern]  # (rows, leaves, d)
                # each position's contribution added to its encoded column: (features, rows)
                out[start : start + len(rows)] += (g.scatter @ picked.reshape(len(rows), -1).T).T
        return out, np.full(n, self.bias)


def _leaf_paths(tree: dict[str, Any]) -> list[tuple[float, list[tuple[int, float, list[Any]]]]]:
    """Each leaf's value and its path as ``[(feature, zero fraction, tests)]``, one entry per
    distinct feature (repeated tests of a feature multiply their cover fractions)."""
    left = tree["left_children"]
    right = tree["right_children"]
    feature = tree["split_indices"]
    cond = np.asarray(tree["split_conditions"], dtype=np.float32)
    default_left = tree["default_left"]
    cover = tree["sum_hessian"]
    out: list[tuple[float, list[tuple[int, float, list[Any]]]]] = []
    stack: list[tuple[int, list[tuple[int, float, list[Any]]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if left[node] == -1:
            out.append((float(cond[node]), path))
            continue
        f = int(feature[node])
        for child, goes_left in ((left[node], True), (right[node], False)):
            z = cover[child] / cover[node]
            test = (f, cond[node], goes_left, bool(default_left[node]))
            merged, seen = [], False
            for pf, pz, tests in path:
                if pf == f:
                    merged.append((pf, pz * z, [*tests, test]))
                    seen = True
                else:
                    merged.append((pf, pz, tests))
            if not seen:
                merged.append((f, z, [test]))
            stack.append((child, merged))
    return out


def _group(
    d: int, leaves: list[tuple[float, list[tuple[int, float, list[Any]]]]], n_features: int
) -> _Group:
    if d > MAX_PATH_FEATURES:
        raise TooDeep(f"a path tests {d} distinct features (at most {MAX_PATH_FEATURES})")
    n = len(leaves)
    value = np.array([v for v, _ in leaves])
    z = np.array([[pz for _, pz, _ in path] for _, path in leaves])  # (n, d)
    patterns = (np.arange(2**d)[:, None] >> np.arange(d)) & 1  # (2**d, d)
    o = np.broadcast_to(patterns, (n, 2**d, d)).astype(np.float64)
    zz = np.broadcast_to(z[:, None, :], (n, 2**d, d))
    weights = np.array([math.factorial(s) * math.factorial(d - 1 - s) for s in range(d)])
    weights = weights / math.factorial(d)
    table = np.empty((n, 2**d, d))
    for k in range(d):
        # e_s over the other features: the coefficients of prod_j (z_j + o_j t), j != k
        poly = np.zeros((n, 2**d, d))
        poly[..., 0] = 1.0
        for j in range(d):
            if j == k:
                continue
            shifted = np.concatenate([np.zeros((n, 2**d, 1)), poly[..., :-1]], axis=-1)
            poly = poly * zz[..., j : j + 1] + shifted * o[..., j : j + 1]
        table[..., k] = value[:, None] * (o[..., k] - zz[..., k]) * (poly @ weights)
    slot, feat, thr, go_left, dflt = [], [], [], [], []
    for i, (_, path) in enumerate(leaves):
        for k, (_, _, tests) in enumerate(path):
            for f, t, gl, dl in tests:
                slot.append(i * d + k)
                feat.append(f)
                thr.append(t)
                go_left.append(gl)
                dflt.append(dl)
    from scipy.sparse import csr_matrix

    features = np.array([[pf for pf, _, _ in path] for _, path in leaves], dtype=np.int64)
    scatter = csr_matrix(
        (np.ones(features.size), (features.ravel(), np.arange(features.size))),
        shape=(n_features, features.size),
    )
    slots = np.asarray(slot, dtype=np.int64)
    return _Group(
        d,
        table,
        np.arange(n),
        1 << np.arange(d),
        scatter,
        np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]]),
        np.array(feat, dtype=np.int64),
        np.array(thr, dtype=np.float32),
        np.array(go_left, dtype=bool),
        np.array(dflt, dtype=bool),
    )
