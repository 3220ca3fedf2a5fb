"""The candidates side by side: one row each on the test split, as a table (CSV, Markdown, the
console) and as the model card's "why this model" paragraph."""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churn import models
from churn.config.params import BASELINE, DatasetConfig
from churn.training.train import FittedCandidate

# The table's columns, in order (``candidate`` is the key of ``train.candidates``).
COLUMNS = [
    "candidate",
    "role",
    "valid_roc_auc",
    "test_roc_auc",
    "test_pr_auc",
    "test_brier",
    "threshold",
    "test_recall",
    "test_precision",
    "fit_seconds",
    "predict_ms_one_row",
    "scorer",
    "size_kb",
]
_REPEATS = 200  # one-row scoring calls timed per candidate (the median is kept)


def one_row_ms(
    pipeline: Pipeline, dataset: DatasetConfig, frame: pd.DataFrame
) -> tuple[float, str]:
    """Median milliseconds to score one row with the scorer serving would use, and its kind.

    The scorer is chosen as serving chooses it (``churn.models.serving_scorer``): the compiled
    numpy replay when the model's kind declares one, else the replayed features and the model's
    own ``predict_proba`` (kind ``predict_proba``), else the pipeline itself.
    """
    scorer = models.serving_scorer(pipeline, dataset)
    row = {c: frame[c].iloc[:1].tolist() for c in dataset.feature_columns}
    scorer.score(row, 1)  # warm-up
    times = []
    for _ in range(_REPEATS):
        start = time.perf_counter()
        scorer.score(row, 1)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000), scorer.kind


def model_kb(model: Any) -> float:
    """The fitted (calibrated) model's pickled size in kilobytes (the feature pipeline aside)."""
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 1024


def row(
    candidate: FittedCandidate,
    selected: str,
    test_metrics: Mapping[str, float],
    threshold: float,
    speed: tuple[float, str],
) -> dict[str, Any]:
    """One candidate's row (``test_metrics`` from ``evaluation.classification_metrics``)."""
    role = "baseline" if candidate.name == BASELINE else ""
    if candidate.name == selected:
        role = "selected"
    return {
        "candidate": candidate.name,
        "role": role,
        "valid_roc_auc": candidate.valid["valid_roc_auc"],
        "test_roc_auc": test_metrics["test_roc_auc"],
        "test_pr_auc": test_metrics["test_pr_auc"],
        "test_brier": test_metrics["test_brier"],
        "threshold": threshold,
        "test_recall": test_metrics["test_recall"],
        "test_precision": test_metrics["test_precision"],
        "fit_seconds": candidate.fit_seconds,
        "predict_ms_one_row": speed[0],
        "scorer": speed[1],
        "size_kb": model_kb(candidate.model),
    }


def table(rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The comparison as a frame, one row per candidate (``COLUMNS``)."""
    return pd.DataFrame(rows or [], columns=COLUMNS)


def markdown(comparison: pd.DataFrame) -> str:
    """The table as Markdown (also what ``churn train`` prints)."""
    head = (
        "| candidate | role | valid ROC AUC | test ROC AUC | PR AUC | Brier | threshold | "
        "recall | precision | fit s | 1-row ms | size KB |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in comparison.to_dict("records"):
        ms = f"{r['predict_ms_one_row']:.3f}"
        ms += "" if r["scorer"] == "compiled" else f" ({r['scorer']})"
        lines.append(
            f"| {models.title(r['candidate'])} | {r['role']} | "
            f"{r['valid_roc_auc']:.4f} | {r['test_roc_auc']:.4f} | {r['test_pr_auc']:.4f} | "
            f"{r['test_brier']:.4f} | {r['threshold']:.3f} | {r['test_recall']:.3f} | "
            f"{r['test_precision']:.3f} | {r['fit_seconds']:.1f} | {ms} | {r['size_kb']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def why_this_model(
    comparison: pd.DataFrame, metric: str, tolerance: float = 0.0, prefer: Sequence[str] = ()
) -> str:
    """The model card's paragraph: which candidate was selected, by which rule, over which."""
    by = comparison.set_index("candidate")
    chosen = comparison.loc[comparison["role"] == "selected"].iloc[0]
    name = models.title(chosen.candidate)
    direction = "lowest" if metric == "valid_cost" else "highest"
    others = [
        f"{models.title(c)} (valid ROC AUC {by.loc[c, 'valid_roc_auc']:.4f}, test "
        f"{by.loc[c, 'test_roc_auc']:.4f})"
        for c in by.index
        if c not in (chosen.candidate, BASELINE)
    ]
    base = by.loc[BASELINE]
    text = (
        f"The {name} was selected among {len(by)} candidates trained on the same splits and "
        f"calibrated the same way, by the rule in `params.yaml` (`train.select.metric: "
        f"{metric}`, {direction} wins, measured on the validation split, never on test"
        + (
            f"; within {tolerance:g} of the best, the first of `train.select.prefer` "
            f"({', '.join(models.title(p) for p in prefer)})"
            if tolerance and prefer
            else ""
        )
        + "): "
        f"valid ROC AUC {chosen.valid_roc_auc:.4f}, test ROC AUC {chosen.test_roc_auc:.4f}, "
        f"PR AUC {chosen.test_pr_auc:.4f}, Brier {chosen.test_brier:.4f}."
    )
    if others:
        text += " It was preferred over " + "; ".join(others) + "."
    gain = chosen.test_roc_auc - base.test_roc_auc
    text += (
        f" The logistic-regression baseline reaches test ROC AUC {base.test_roc_auc:.4f}: the "
        f"selected model is {abs(gain):.4f} {'above' if gain > 0 else 'below'} it, and the "
        "gate only promotes a model that beats it."
    )
    text += (
        f" At its cost threshold it flags customers with recall {chosen.test_recall:.3f} and "
        f"precision {chosen.test_precision:.3f}; it fits in {chosen.fit_seconds:.1f} s, scores "
        f"one row in {chosen.predict_ms_one_row:.3f} ms ({chosen.scorer} scorer) and weighs "
        f"{chosen.size_kb:,.0f} KB."
    )
    return text
