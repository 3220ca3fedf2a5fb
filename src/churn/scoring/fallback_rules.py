"""The fallback rules: a few readable per-column scores learned from the training split.

When the model cannot be loaded or run, the service answers with these rules instead (see
docs/serving.md, "Fallback rules"). They are a points table, as a credit scorecard is:

* each kept column gives **points** to a record: one value per level of a categorical column,
  one per quantile bin of a numeric column, and one for a missing or never-seen value (0 when
  the training split had none). The points of a value are its smoothed churn log-odds minus the
  training split's (its weight of evidence): positive means "churns more often than average";
* only the ``MAX_COLUMNS`` columns that separate churners best on the training split (highest
  information value, and at least ``MIN_INFORMATION_VALUE``) are kept, so a person can read the
  whole table;
* ``probability = 1 / (1 + exp(-(intercept + scale * total points)))``: ``intercept`` and
  ``scale`` are fitted on the validation split (adding up the columns' evidence as if they were
  independent over-counts it; the scale takes that back), and the decision threshold is the
  cheapest one for the training costs on the validation split, as the model's is;
* the test split's ROC AUC is recorded with them (``test_roc_auc``).

With nothing learned (no rules cached), :meth:`FallbackRules.prior` is the prior-rate rule:
every record scores the base churn rate, so the threshold decides every customer the same way.

The rules travel as ``fallback_rules.json`` in the logged model (``extra_files``), in the
training run's artefacts, and in the service's model cache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from churn.config.params import CostParams, DatasetConfig, Level
from churn.scoring.columns import Columns, level_codes, level_index, numeric_column
from churn.scoring.threshold import choose_threshold

FILE_NAME = "fallback_rules.json"
# Columns kept in the table: enough to rank customers, few enough to read at a glance.
MAX_COLUMNS = 5
# A column whose information value is below this says next to nothing about churn (the usual
# scorecard cut-off): it is left out even when fewer than MAX_COLUMNS columns remain.
MIN_INFORMATION_VALUE = 0.02
# Quantile bins per numeric column (fewer when the column has fewer distinct values).
N_BINS = 5
# Pseudo-rows at the base rate added to every level and bin: a level seen on 3 customers moves
# its points a little, one never seen gets none (0 points: the base rate).
SMOOTHING = 20.0
# Probabilities are kept inside (EPS, 1 - EPS) so log-odds stay finite.
EPS = 1e-6

HOW_TO_READ = (
    "probability = 1 / (1 + exp(-(intercept + scale * total points))); a record's total points "
    "are the sum, over the columns below, of the points of its value (a level, or the numeric "
    "bin whose 'upto' is the first at or above the value; 'upto' null is the last bin). A "
    "missing value, or a level not listed, gets 'missing_points'. Points are smoothed churn "
    "log-odds minus the training split's: positive churns more often than average. A record "
    "is flagged as a churner when its probability is at or above decision_threshold."
)


class RulesError(ValueError):
    """A rules file that cannot be read (its path and the problem are in the message)."""


@dataclass(frozen=True)
class ColumnRule:
    """The points one column gives.

    Attributes:
        column: the feature column.
        type: ``categorical`` (``levels``) or ``numeric`` (``bins``).
        information_value: how well the column alone separates churners (training split).
        levels: ``[{"level": value, "points": p}, ...]`` for a categorical column.
        bins: ``[{"upto": edge or None, "points": p}, ...]`` for a numeric column, ascending.
        missing_points: points of a missing value or a level not listed.
    """

    column: str
    type: Literal["categorical", "numeric"]
    information_value: float
    levels: list[dict[str, Any]] = field(default_factory=list)
    bins: list[dict[str, Any]] = field(default_factory=list)
    missing_points: float = 0.0

    def points(self, values: Any, n: int) -> np.ndarray:
        """The points of each of ``n`` raw values (a list, array or Series)."""
        if self.type == "categorical":
            table = np.array([*(e["points"] for e in self.levels), self.missing_points])
            index = level_index([e["level"] for e in self.levels])
            return np.asarray(table[level_codes(values, index, n)], dtype=np.float64)
        x = numeric_column(values)
        edges = np.array([b["upto"] for b in self.bins[:-1]], dtype=np.float64)
        table = np.array([b["points"] for b in self.bins], dtype=np.float64)
        out = table[np.searchsorted(edges, np.nan_to_num(x, nan=0.0), side="left")]
        return np.where(np.isnan(x), self.missing_points, out)


@dataclass(frozen=True)
class FallbackRules:
    """The learned rules (``kind`` ``rules``), or the prior-rate rule (``prior-rate``).

    Also a serving ``Scorer``: :meth:`score` takes the raw feature columns.
    """

    kind: Literal["rules", "prior-rate"]
    base_rate: float
    intercept: float
    scale: float
    decision_threshold: float
    columns: list[ColumnRule]
    test_roc_auc: float | None = None
    valid_roc_auc: float | None = None
    train_rows: int = 0

    @classmethod
    def prior(cls, base_rate: float, decision_threshold: float) -> FallbackRules:
        """Every record scores ``base_rate``: the rule when no learned rules are at hand."""
        rate = float(np.clip(base_rate, EPS, 1 - EPS))
        return cls("prior-rate", rate, float(logit(rate)), 0.0, decision_threshold, [])

    def score(self, columns: Columns, n: int) -> np.ndarray:
        """Churn probability of each of the ``n`` rows, from the raw feature columns."""
        total = np.zeros(n, dtype=np.float64)
        for rule in self.columns:
            total += rule.points(columns[rule.column], n)
        return np.asarray(expit(self.intercept + self.scale * total), dtype=np.float64)

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """:meth:`score` on a data frame (training, evaluation)."""
        return self.score({c.column: frame[c.column] for c in self.columns}, len(frame))

    def summary(self) -> str:
        """One line for logs and ``/ready``: what scores and how well it ranked on test."""
        if self.kind == "prior-rate":
            return (
                f"prior-rate rule: every customer scores {self.base_rate:.3f} "
                f"(threshold {self.decision_threshold:.3f}: all are "
                f"{'flagged' if self.base_rate >= self.decision_threshold else 'not flagged'})"
            )
        names = ", ".join(c.column for c in self.columns)
        auc = "n/a" if self.test_roc_auc is None else f"{self.test_roc_auc:.3f}"
        return f"learned rules on {names} (test ROC AUC {auc})"

    def to_dict(self) -> dict[str, Any]:
        """The readable document (``fallback_rules.json``)."""
        doc = {"how_to_read": HOW_TO_READ, **asdict(self)}
        for column in doc["columns"]:  # a column has levels or bins, never both
            for key in ("levels", "bins"):
                if not column[key]:
                    del column[key]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FallbackRules:
        values = {k: v for k, v in doc.items() if k != "how_to_read"}
        values["columns"] = [ColumnRule(**c) for c in values.get("columns", [])]
        return cls(**values)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> FallbackRules:
        """The rules in ``path`` (written by :meth:`write`).

        Raises:
            RulesError: the file is not a rules document.
        """
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise RulesError(f"cannot read the fallback rules in {path}: {exc}") from exc


def fit_rules(
    train: pd.DataFrame,
    y_train: np.ndarray,
    valid: pd.DataFrame,
    y_valid: np.ndarray,
    dataset: DatasetConfig,
    costs: CostParams,
    max_columns: int = MAX_COLUMNS,
) -> FallbackRules:
    """Learn the points on ``train``, keep the strongest columns, calibrate on ``valid``.

    Args:
        train: validated rows with the dataset's feature columns.
        y_train: 1 for churn, 0 otherwise, per row of ``train``.
        valid: validated rows, as ``train``, to calibrate on.
        y_valid: the labels of ``valid``.
        dataset: the column roles (only ``dataset.feature_columns`` are considered).
        costs: the training costs; the threshold is the cheapest on ``valid``.
        max_columns: how many columns to keep.
    """
    y = np.asarray(y_train, dtype=np.float64)
    rate = float(np.clip(y.mean(), EPS, 1 - EPS)) if len(y) else 0.5
    rules = [_categorical_rule(c, train[c], y, rate, lv) for c, lv in dataset.categorical.items()]
    rules += [_numeric_rule(c, train[c], y, rate) for c in dataset.numeric]
    ranked = sorted(rules, key=lambda r: r.information_value, reverse=True)
    useful = [r for r in ranked if r.information_value >= MIN_INFORMATION_VALUE]
    kept = (useful or ranked[:1])[:max_columns]
    total_valid = _total_points(kept, valid)
    yv = np.asarray(y_valid, dtype=np.int64)
    intercept, scale = float(logit(rate)), 1.0
    if len(np.unique(yv)) == 2 and np.ptp(total_valid) > 0:
        fit = LogisticRegression(C=1e6).fit(total_valid.reshape(-1, 1), yv)
        intercept, scale = float(fit.intercept_[0]), float(fit.coef_[0, 0])
    calibrated = FallbackRules("rules", rate, intercept, scale, 0.5, kept, train_rows=len(train))
    proba_valid = calibrated.score_frame(valid)
    threshold = choose_threshold(yv, proba_valid, costs) if len(yv) else 0.5
    return replace(calibrated, decision_threshold=threshold, valid_roc_auc=_auc(yv, proba_valid))


def with_test_auc(rules: FallbackRules, test: pd.DataFrame, y_test: np.ndarray) -> FallbackRules:
    """The rules with their ROC AUC on the held-out ``test`` rows recorded."""
    auc = _auc(np.asarray(y_test), rules.score_frame(test))
    return replace(rules, test_roc_auc=auc)


def _total_points(rules: Sequence[ColumnRule], frame: pd.DataFrame) -> np.ndarray:
    total = np.zeros(len(frame), dtype=np.float64)
    for rule in rules:
        total += rule.points(frame[rule.column], len(frame))
    return total


def _auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    return float(roc_auc_score(y, proba)) if len(np.unique(y)) == 2 else None


def _woe(pos: np.ndarray, total: np.ndarray, rate: float) -> np.ndarray:
    """Smoothed log-odds of each group minus the overall log-odds (0 for an empty group)."""
    neg = total - pos
    odds = (pos + SMOOTHING * rate) / (neg + SMOOTHING * (1 - rate))
    return np.asarray(np.log(odds) - logit(rate), dtype=np.float64)


def _information_value(pos: np.ndarray, total: np.ndarray, points: np.ndarray) -> float:
    """Sum over groups of (share of churners - share of the others) x points."""
    neg = total - pos
    pos_share = pos / max(pos.sum(), 1.0)
    neg_share = neg / max(neg.sum(), 1.0)
    return float(np.sum((pos_share - neg_share) * points))


def _group_counts(groups: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Churners and rows per group ``0..k-1`` (``groups`` holds -1 for missing rows)."""
    seen = groups >= 0
    pos = np.bincount(groups[seen], weights=y[seen], minlength=k).astype(np.float64)
    total = np.bincount(groups[seen], minlength=k).astype(np.float64)
    return pos, total


def _missing_points(missing: np.ndarray, y: np.ndarray, rate: float) -> tuple[float, float, float]:
    """Points of the missing group, and its churners and rows."""
    pos, n = float(y[missing].sum()), float(missing.sum())
    if n == 0:
        return 0.0, 0.0, 0.0
    return float(_woe(np.array([pos]), np.array([n]), rate)[0]), pos, n


def _categorical_rule(
    column: str, values: pd.Series, y: np.ndarray, rate: float, levels: Sequence[Level]
) -> ColumnRule:
    codes = level_codes(values.astype(object).to_numpy(), level_index(levels), len(values))
    pos, total = _group_counts(codes, y, len(levels))
    points = _woe(pos, total, rate)
    miss, miss_pos, miss_n = _missing_points(codes < 0, y, rate)
    iv = _information_value(
        np.append(pos, miss_pos), np.append(total, miss_n), np.append(points, miss)
    )
    return ColumnRule(
        column,
        "categorical",
        round(iv, 6),
        levels=[
            {"level": lv, "points": round(float(p), 4)}
            for lv, p in zip(levels, points, strict=True)
        ],
        missing_points=round(miss, 4),
    )


def _numeric_rule(column: str, values: pd.Series, y: np.ndarray, rate: float) -> ColumnRule:
    x = numeric_column(values)
    seen = ~np.isnan(x)
    inner = np.linspace(0, 1, N_BINS + 1)[1:-1]
    # Edges rounded to 6 significant digits (readable), then the bins are counted on them.
    quantiles = np.quantile(x[seen], inner) if seen.any() else np.array([])
    edges = np.unique([float(f"{q:.6g}") for q in quantiles])
    groups = np.where(seen, np.searchsorted(edges, np.nan_to_num(x), side="left"), -1)
    pos, total = _group_counts(groups, y, len(edges) + 1)
    points = _woe(pos, total, rate)
    miss, miss_pos, miss_n = _missing_points(~seen, y, rate)
    iv = _information_value(
        np.append(pos, miss_pos), np.append(total, miss_n), np.append(points, miss)
    )
    uptos: list[float | None] = [float(e) for e in edges]
    return ColumnRule(
        column,
        "numeric",
        round(iv, 6),
        bins=[
            {"upto": u, "points": round(float(p), 4)}
            for u, p in zip([*uptos, None], points, strict=True)
        ],
        missing_points=round(miss, 4),
    )
