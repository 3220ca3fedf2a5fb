"""Quality per segment (``fairness.segments`` in ``params.yaml``) and the largest gaps between
the levels of each segment column: at training, in the model card, and in monitoring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

# One row per (column, level): the table's columns, in order.
COLUMNS = ["column", "level", "rows", "churn_rate", "roc_auc", "recall", "false_positive_rate"]
# The gaps measured between the levels of one column.
GAPS = ("recall", "false_positive_rate", "roc_auc")


@dataclass
class SegmentReport:
    """Per-segment figures and, per column, the largest gap between two of its levels.

    Levels with fewer than ``min_rows`` rows are in the table but not in the gaps (a handful of
    rows gives a recall of 0 or 1 by chance); so are undefined figures (a recall with no
    churner, an ROC AUC with one class).
    """

    table: pd.DataFrame
    gaps: dict[str, dict[str, float | None]]
    min_rows: int

    @property
    def max_recall_gap(self) -> float | None:
        """The largest recall gap over all segment columns (None when none could be measured)."""
        values = [g["recall"] for g in self.gaps.values() if g["recall"] is not None]
        return max(values) if values else None

    @property
    def worst_column(self) -> str | None:
        """The column with the largest recall gap."""
        known = {c: g["recall"] for c, g in self.gaps.items() if g["recall"] is not None}
        return max(known, key=lambda c: known[c]) if known else None

    def metrics(self, prefix: str = "fairness_") -> dict[str, float]:
        """The gaps as metrics: ``fairness_<column>_<figure>_gap``, ``fairness_max_recall_gap``."""
        out = {
            f"{prefix}{column}_{name}_gap": value
            for column, gaps in self.gaps.items()
            for name, value in gaps.items()
            if value is not None
        }
        if self.max_recall_gap is not None:
            out[f"{prefix}max_recall_gap"] = self.max_recall_gap
        return out

    def markdown(self) -> str:
        """The table and the gaps, as Markdown."""
        if self.table.empty:
            return "No segment columns configured (`fairness.segments` in params.yaml).\n"
        lines = [
            "| segment | rows | churn rate | ROC AUC | recall | false-positive rate |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.records():
            small = " (few rows)" if r["rows"] < self.min_rows else ""
            lines.append(
                f"| {r['column']} = {r['level']}{small} | {r['rows']:,} | {_f(r['churn_rate'])} "
                f"| {_f(r['roc_auc'])} | {_f(r['recall'])} | {_f(r['false_positive_rate'])} |"
            )
        lines += ["", "| column | recall gap | false-positive-rate gap | ROC AUC gap |"]
        lines.append("|---|---|---|---|")
        for column, g in self.gaps.items():
            lines.append(
                f"| {column} | {_f(g['recall'])} | {_f(g['false_positive_rate'])} | "
                f"{_f(g['roc_auc'])} |"
            )
        return "\n".join(lines) + "\n"

    def records(self) -> list[dict[str, Any]]:
        """The table's rows as dicts (an undefined figure is None)."""
        return [
            {str(k): None if isinstance(v, float) and v != v else v for k, v in row.items()}
            for row in self.table.to_dict("records")
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rows, gaps and the rule."""
        return {"min_rows": self.min_rows, "segments": self.records(), "gaps": self.gaps}


def segment_metrics(
    frame: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    segments: Sequence[str],
    min_rows: int = 30,
) -> SegmentReport:
    """Rows, churn rate, ROC AUC, recall and false-positive rate at ``threshold`` per level.

    Args:
        frame: the rows, holding the segment columns (raw values, as the data has them).
        y: their labels (1 = churned).
        proba: the model's churn probabilities for them.
        threshold: the decision threshold (a row is flagged when ``proba >= threshold``).
        segments: the segment columns.
        min_rows: levels with fewer rows are left out of the gaps.
    """
    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    if not (len(frame) == len(y) == len(proba)):
        raise ValueError(
            f"segment_metrics: {len(frame)} rows, {len(y)} labels, {len(proba)} scores"
        )
    flagged = proba >= threshold
    rows: list[dict[str, Any]] = []
    gaps: dict[str, dict[str, float | None]] = {}
    for column in segments:
        if column not in frame.columns:
            raise KeyError(f"fairness.segments: column {column!r} is not in the scored rows")
        levels = frame[column].astype(object).where(frame[column].notna(), "(missing)")
        per_column = []
        for level in sorted(levels.unique(), key=str):
            mask = (levels == level).to_numpy()
            row = _segment(column, level, y[mask], proba[mask], flagged[mask])
            rows.append(row)
            per_column.append(row)
        counted = [r for r in per_column if r["rows"] >= min_rows]
        gaps[column] = {name: _gap([r[name] for r in counted]) for name in GAPS}
    table = pd.DataFrame(rows, columns=COLUMNS)
    return SegmentReport(table=table, gaps=gaps, min_rows=min_rows)


def _segment(
    column: str, level: Any, y: np.ndarray, proba: np.ndarray, flagged: np.ndarray
) -> dict[str, Any]:
    positives, negatives = int(y.sum()), int((1 - y).sum())
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    return {
        "column": column,
        "level": level.item() if hasattr(level, "item") else level,
        "rows": len(y),
        "churn_rate": float(y.mean()) if len(y) else None,
        "roc_auc": float(roc_auc_score(y, proba)) if positives and negatives else None,
        "recall": tp / positives if positives else None,
        "false_positive_rate": fp / negatives if negatives else None,
    }


def _gap(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(max(known) - min(known)) if len(known) >= 2 else None


def _f(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
