"""A binary:logistic XGBoost booster evaluated outside XGBoost: the fast path for a few rows.

For one record, XGBoost's ``inplace_predict`` spends most of its time in Python, ctypes and its
own set-up, far longer than the arithmetic; the trees as flat arrays, walked by one compiled loop
(``churn.scoring.walk``), are a small part of the in-process one-row score that
``make bench-serve`` prints. Large batches still use the booster itself. The exact split values
come from the booster's JSON model, and ``churn.scoring.check`` checks both paths against the
pipeline at training and at load.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from scipy.special import expit, logit


class NotSupported(Exception):
    """The booster is not a plain binary:logistic tree ensemble."""


def logistic_trees(
    booster: Any, iterations: tuple[int, int] = (0, 0)
) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    """The trees of a ``binary:logistic`` gbtree booster (rounds ``[start, end)`` of
    ``iterations``; end 0: to the last), its base margin, and the booster's model section.

    Raises:
        NotSupported: another objective or booster kind.
    """
    learner = json.loads(booster.save_raw("json"))["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise NotSupported(f"objective {learner['objective']['name']}")
    gbm = learner["gradient_booster"]
    if gbm.get("name") != "gbtree":
        raise NotSupported(f"booster {gbm.get('name')}")
    start, end = iterations
    base = str(learner["learner_model_param"]["base_score"]).strip("[]")
    return gbm["model"]["trees"][start : end or None], float(logit(np.float32(float(base)))), gbm


class NumpyTrees:
    """All trees of a booster as flat arrays; ``margin(X)`` walks them (``churn.scoring.walk``)."""

    def __init__(self, booster: Any, iterations: tuple[int, int] = (0, 0)) -> None:
        from churn.scoring.walk import margins  # numba: imported where a booster is replayed

        trees, base_margin, gbm = logistic_trees(booster, iterations)
        if int(gbm["model"]["gbtree_model_param"].get("num_parallel_tree", "1")) != 1:
            raise NotSupported("num_parallel_tree > 1")
        feature, threshold, left, right, default_left, leaf = [], [], [], [], [], []
        roots, depth, offset = [], 0, 0
        for tree in trees:
            lc = np.asarray(tree["left_children"], dtype=np.int64)
            rc = np.asarray(tree["right_children"], dtype=np.int64)
            cond = np.asarray(tree["split_conditions"], dtype=np.float32)
            is_leaf = lc == -1
            own = np.arange(len(lc))
            # A leaf points to itself, so extra levels leave finished walks where they are.
            left.append(np.where(is_leaf, own, lc) + offset)
            right.append(np.where(is_leaf, own, rc) + offset)
            feature.append(np.where(is_leaf, 0, np.asarray(tree["split_indices"], np.int64)))
            threshold.append(np.where(is_leaf, np.inf, cond).astype(np.float32))
            default_left.append(np.asarray(tree["default_left"], dtype=bool))
            leaf.append(np.where(is_leaf, cond, 0.0).astype(np.float64))
            roots.append(offset)
            depth = max(depth, _depth(lc, rc))
            offset += len(lc)
        self._arrays = (
            np.concatenate(feature),
            np.concatenate(threshold),
            np.concatenate(default_left),
            np.concatenate(left),
            np.concatenate(right),
            np.concatenate(leaf),
            np.asarray(roots, dtype=np.int64),
            depth,
            base_margin,
        )
        self._margins = margins

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds) of the rows of ``X`` (float32, encoded features)."""
        return np.asarray(self._margins(np.asarray(X, dtype=np.float32), *self._arrays))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(positive class) for each row."""
        return np.asarray(expit(self.margin(X)), dtype=np.float64)

    def proba_one(self, x: np.ndarray) -> float:
        """``predict_proba`` of one row ``x`` (1-D) as a float: the same value, bit for bit
        (the same walk, and ``expit`` as ``expit_one`` computes it), without the numpy calls
        on one-element arrays (about a microsecond each) around the walk."""
        return expit_one(float(self._margins(x.reshape(1, -1), *self._arrays)[0]))


def expit_one(value: float) -> float:
    """``scipy.special.expit`` of one float, bit for bit (both are ``1 / (1 + exp(-x))``)."""
    try:
        return 1.0 / (1.0 + math.exp(-value))
    except OverflowError:  # exp(-x) is infinite: expit gives 0.0
        return 0.0


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth, frontier = 0, [0]
    while frontier:
        nxt = [c for n in frontier for c in (left[n], right[n]) if c != -1]
        if not nxt:
            break
        depth += 1
        frontier = nxt
    return depth


class NumpyForest:
    """A fitted scikit-learn random forest's trees as flat arrays: the mean of the trees' leaf
    churn shares, as ``RandomForestClassifier.predict_proba`` takes it, for a few rows.

    The same walk as :class:`NumpyTrees` (a row goes left when ``x <= threshold``, scikit-learn's
    rule, compared in float64 as scikit-learn compares its float32 input). Rows with a missing
    value are not its business: scikit-learn's routing of them depends on what each split saw
    at fit, so the caller gives those rows to the forest itself.
    """

    def __init__(self, forest: Any) -> None:
        if len(getattr(forest, "classes_", ())) != 2 or getattr(forest, "n_outputs_", 1) != 1:
            raise NotSupported("not a binary, single-output forest")
        feature, threshold, left, right, leaf, roots = [], [], [], [], [], []
        depth, offset = 0, 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            lc = np.asarray(tree.children_left, dtype=np.int64)
            rc = np.asarray(tree.children_right, dtype=np.int64)
            is_leaf = lc == -1
            own = np.arange(len(lc))
            left.append(np.where(is_leaf, own, lc) + offset)
            right.append(np.where(is_leaf, own, rc) + offset)
            feature.append(np.where(is_leaf, 0, tree.feature).astype(np.int64))
            # A leaf's threshold is +inf, so x <= inf keeps it where it is (a self loop anyway).
            threshold.append(np.where(is_leaf, np.inf, tree.threshold).astype(np.float64))
            value = np.asarray(tree.value[:, 0, :], dtype=np.float64)
            leaf.append(np.where(is_leaf, value[:, 1] / value.sum(axis=1), 0.0))
            roots.append(offset)
            depth = max(depth, int(tree.max_depth))
            offset += len(lc)
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)
        self.left = np.concatenate(left)
        self.right = np.concatenate(right)
        self.leaf = np.concatenate(leaf)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(positive class) for each row of ``X`` (float32, encoded features, none missing)."""
        n = X.shape[0]
        X = np.asarray(X, dtype=np.float64)
        if n == 1:
            # Every node's branch at once, then one gather per level (as NumpyTrees does).
            child = np.where(X[0, self.feature] <= self.threshold, self.left, self.right)
            node = self.roots
            for _ in range(self.depth):
                node = child[node]
            return np.asarray([self.leaf[node].mean()])
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = X[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return np.asarray(self.leaf[node].mean(axis=1), dtype=np.float64)
