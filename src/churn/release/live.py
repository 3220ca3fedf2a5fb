"""Challengers on live traffic: who gets the canary, and whether live evidence says "better".

Pure functions on arrays and frames: the service assigns canary customers with
:func:`in_canary`; monitoring (and ``churn promote --from-live``) read the champion's and the
challenger's labelled predictions of the same window from the prediction store and call
:func:`compare`; :func:`require_better` is the rule a promotion from live evidence obeys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from churn.config.params import LiveParams

SHADOW, CANARY = "shadow", "canary"
LABEL = "churn_label"  # 1 = churned (``monitoring.report.TARGET``)
SCORE = "churn_probability"
_HASH_DIGITS = 13  # 52 bits of the keyed hash: a float in [0, 1) without rounding


def canary_bucket(customer_hash: str) -> float:
    """Where a customer falls in [0, 1), from the keyed HMAC of their id (the prediction
    store's ``hash_ids``): uniform, and the same for the same id as long as the key is."""
    return int(customer_hash[:_HASH_DIGITS], 16) / 16**_HASH_DIGITS


def in_canary(customer_hash: str | None, share: float) -> bool:
    """Whether the challenger answers this customer; a record without an id never is."""
    return customer_hash is not None and canary_bucket(customer_hash) < share


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney with tied ranks averaged), NaN without both classes."""
    return float(_auc_rows(np.asarray(labels)[None, :], np.asarray(scores)[None, :])[0])


def _auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of a (resamples, rows) pair of matrices, in one ranking."""
    ranks = rankdata(scores, axis=1)
    pos = labels.sum(axis=1)
    neg = labels.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * labels).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Mean |observed churn rate - mean score| over ten equal-width score bins, by rows."""
    which = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.sum() * abs(labels[mask].mean() - scores[mask].mean())
    return float(error / max(len(scores), 1))


@dataclass(frozen=True)
class LiveMetrics:
    """One model's quality on labelled live traffic."""

    version: str
    role: str
    labelled_rows: int
    positives: int
    roc_auc: float | None
    recall: float | None  # at its own decision threshold
    brier: float | None
    ece: float | None
    threshold: float

    @classmethod
    def of(
        cls, version: str, role: str, labels: np.ndarray, scores: np.ndarray, threshold: float
    ) -> LiveMetrics:
        n, positives = len(labels), int(labels.sum())
        if n == 0:
            return cls(version, role, 0, 0, None, None, None, None, threshold)
        auc = roc_auc(labels, scores)
        recall = (
            float(((scores >= threshold) & (labels == 1)).sum() / positives) if positives else None
        )
        return cls(
            version=version,
            role=role,
            labelled_rows=n,
            positives=positives,
            roc_auc=None if np.isnan(auc) else auc,
            recall=recall,
            brier=float(np.mean((scores - labels) ** 2)),
            ece=expected_calibration_error(labels, scores),
            threshold=threshold,
        )


@dataclass(frozen=True)
class LiveComparison:
    """Champion against challenger on the labelled traffic of one window, and the verdict.

    ``auc_difference`` is challenger minus champion; ``interval`` its bootstrap interval at
    ``confidence`` (paired by customer in shadow mode, where both models scored the same
    customers; two independent samples in canary mode). ``better`` holds when each model has
    ``min_labelled_rows`` labelled predictions and the interval lies above 0; ``reason`` says
    why, or what is missing.
    """

    mode: str
    champion: LiveMetrics
    challenger: LiveMetrics
    paired: bool
    auc_difference: float | None
    interval: tuple[float, float] | None
    confidence: float
    min_labelled_rows: int
    better: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """The evidence as ``promotion.live.*`` tag values (``registry.promote``)."""

        def fmt(x: float | None) -> str:
            return "" if x is None else f"{x:.4f}"

        lo, hi = self.interval if self.interval else (None, None)
        return {
            "mode": self.mode,
            "champion_version": self.champion.version,
            "champion_labelled_rows": str(self.champion.labelled_rows),
            "champion_roc_auc": fmt(self.champion.roc_auc),
            "challenger_labelled_rows": str(self.challenger.labelled_rows),
            "challenger_roc_auc": fmt(self.challenger.roc_auc),
            "roc_auc_difference": fmt(self.auc_difference),
            "interval_low": fmt(lo),
            "interval_high": fmt(hi),
            "confidence": f"{self.confidence:g}",
            "paired": str(self.paired),
            "reason": self.reason,
        }

    def format(self) -> str:
        """A few lines for a terminal: a row per model, then the verdict."""

        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.4f}"

        lines = [f"live comparison ({self.mode}{', paired by customer' if self.paired else ''}):"]
        for m in (self.champion, self.challenger):
            lines.append(
                f"  {m.role:<10} v{m.version:<4} labelled {m.labelled_rows:>6}  ROC AUC "
                f"{fmt(m.roc_auc)}  recall@{m.threshold:.3f} {fmt(m.recall)}  Brier "
                f"{fmt(m.brier)}  ECE {fmt(m.ece)}"
            )
        lines.append(
            f"  verdict: {'challenger better' if self.better else 'not proven'}: {self.reason}"
        )
        return "\n".join(lines)


def compare(
    champion: pd.DataFrame,
    challenger: pd.DataFrame,
    *,
    mode: str,
    champion_version: str,
    challenger_version: str,
    champion_threshold: float,
    challenger_threshold: float,
    params: LiveParams,
    seed: int = 0,
) -> LiveComparison:
    """Compare the two models on their labelled predictions of the same window.

    Args:
        champion: the champion's labelled predictions (``customer_hash``, ``churn_probability``,
            ``churn_label``), oldest first.
        challenger: the challenger's (shadow or canary rows), the same columns.
        mode: ``shadow`` (pairs the customers both scored) or ``canary`` (two groups).
    """
    champion = champion.drop_duplicates("customer_hash", keep="last")
    challenger = challenger.drop_duplicates("customer_hash", keep="last")
    paired = mode == SHADOW
    if paired:
        both = champion[["customer_hash", SCORE, LABEL]].merge(
            challenger[["customer_hash", SCORE]], on="customer_hash", suffixes=("_a", "_b")
        )
        y = both[LABEL].to_numpy(dtype=np.int64)
        ya, pa = y, both[f"{SCORE}_a"].to_numpy(dtype=float)
        yb, pb = y, both[f"{SCORE}_b"].to_numpy(dtype=float)
    else:
        ya, pa = champion[LABEL].to_numpy(dtype=np.int64), champion[SCORE].to_numpy(dtype=float)
        yb, pb = challenger[LABEL].to_numpy(dtype=np.int64), challenger[SCORE].to_numpy(dtype=float)
    a = LiveMetrics.of(champion_version, "champion", ya, pa, champion_threshold)
    b = LiveMetrics.of(challenger_version, "challenger", yb, pb, challenger_threshold)

    def verdict(
        better: bool, reason: str, diff: float | None = None, ci: Any = None
    ) -> LiveComparison:
        return LiveComparison(
            mode,
            a,
            b,
            paired,
            diff,
            ci,
            params.confidence,
            params.min_labelled_rows,
            better,
            reason,
        )

    missing = [
        f"{m.role} v{m.version} has {m.labelled_rows} labelled predictions in the window"
        + (" (paired with the champion's)" if paired and m.role == "challenger" else "")
        + f", live.min_labelled_rows needs {params.min_labelled_rows}"
        for m in (a, b)
        if m.labelled_rows < params.min_labelled_rows
    ]
    missing += [
        f"{m.role} v{m.version}'s labelled predictions hold one class only: no ROC AUC"
        for m in (a, b)
        if m.labelled_rows >= params.min_labelled_rows and m.roc_auc is None
    ]
    if missing:
        return verdict(False, "not enough evidence: " + "; ".join(missing))
    assert a.roc_auc is not None and b.roc_auc is not None
    diff = b.roc_auc - a.roc_auc
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, params.bootstrap, 200):
        k = min(200, params.bootstrap - start)
        ia = rng.integers(0, len(ya), size=(k, len(ya)))
        ib = ia if paired else rng.integers(0, len(yb), size=(k, len(yb)))
        diffs.append(_auc_rows(yb[ib], pb[ib]) - _auc_rows(ya[ia], pa[ia]))
    samples = np.concatenate(diffs)
    tail = (1 - params.confidence) / 2 * 100
    lo, hi = (float(x) for x in np.nanpercentile(samples, [tail, 100 - tail]))
    ci = (lo, hi)
    level = f"{params.confidence:.0%}"
    figures = (
        f"ROC AUC v{b.version} {b.roc_auc:.4f} vs v{a.version} {a.roc_auc:.4f}, difference "
        f"{diff:+.4f}, {level} interval [{lo:+.4f}, {hi:+.4f}] on {a.labelled_rows} / "
        f"{b.labelled_rows} labelled rows"
    )
    if lo > 0:
        return verdict(True, f"{figures}: the interval lies above 0", diff, ci)
    if hi < 0:
        return verdict(False, f"{figures}: the champion is better", diff, ci)
    return verdict(False, f"{figures}: the interval includes 0 (no evidence either way)", diff, ci)


class NotProven(ValueError):
    """The live evidence does not show the challenger is better; the message says what lacks."""


def require_better(comparison: LiveComparison) -> None:
    """The rule of a promotion from live evidence.

    Raises:
        NotProven: naming what is missing (labelled rows, the interval's position) and the fix.
    """
    if comparison.better:
        return
    raise NotProven(
        f"v{comparison.challenger.version} is not promoted from live evidence: "
        f"{comparison.reason}. Keep it in {comparison.mode} until the labels arrive (live "
        "params in params.yaml), or promote it on the gate's offline decision with `churn "
        "promote`"
    )
