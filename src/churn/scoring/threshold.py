"""The decision threshold: chosen from the costs of a missed churner and a needless offer.

Training picks each candidate's threshold on validation scores; the fallback rules pick theirs
the same way; serving applies the recorded one.
"""

from __future__ import annotations

import numpy as np

from churn.config.params import CostParams


def choose_threshold(y_true: np.ndarray, proba: np.ndarray, costs: CostParams) -> float:
    """The probability threshold with the lowest expected cost on (validation) data.

    Cost = ``false_negative`` x missed churners + ``false_positive`` x needless offers, evaluated
    at every distinct predicted probability at once (sorted cumulative counts, no Python loop).
    """
    order = np.argsort(-proba, kind="stable")
    p_sorted = proba[order]
    y_sorted = np.asarray(y_true)[order]
    # Predict positive for the top k rows, k = 0..n.
    tp = np.concatenate([[0], np.cumsum(y_sorted)])
    fp = np.concatenate([[0], np.cumsum(1 - y_sorted)])
    fn = y_sorted.sum() - tp
    cost = costs.false_negative * fn + costs.false_positive * fp
    # Only cut between distinct probabilities, so ties are never split.
    valid_k = np.concatenate([[True], p_sorted[:-1] != p_sorted[1:], [True]])
    k = int(np.flatnonzero(valid_k)[np.argmin(cost[valid_k])])
    if k == 0:
        return float(min(1.0, p_sorted[0] + 1e-9))
    return float(p_sorted[k - 1])
