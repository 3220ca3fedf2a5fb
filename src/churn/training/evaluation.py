"""Evaluation on the held-out test split: metrics at the chosen threshold and diagnostic plots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure  # Figure objects, not pyplot: no GUI backend, no global state
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from churn import models


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float, prefix: str = "test_"
) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score, and F1 / precision / recall at ``threshold``."""
    pred = (proba >= threshold).astype(int)
    metrics = {
        "roc_auc": roc_auc_score(y_true, proba),
        "pr_auc": average_precision_score(y_true, proba),
        "brier": brier_score_loss(y_true, proba),
        "f1": f1_score(y_true, pred, zero_division=0),
        "precision": precision_score(y_true, pred, zero_division=0),
        "recall": recall_score(y_true, pred, zero_division=0),
        "positive_rate": float(pred.mean()),
    }
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def diagnostic_plots(
    y_true: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    baseline_proba: np.ndarray | None = None,
    importances: dict[str, float] | None = None,
    importance_kind: str = "XGBoost gain",
) -> dict[str, Figure]:
    """ROC, PR, calibration, confusion-matrix and feature-importance figures, by file name."""
    figs: dict[str, Figure] = {}

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    RocCurveDisplay.from_predictions(y_true, proba, ax=ax, name="model")
    if baseline_proba is not None:
        RocCurveDisplay.from_predictions(y_true, baseline_proba, ax=ax, name="baseline")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_title("ROC curve (test)")
    figs["roc_curve.png"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    PrecisionRecallDisplay.from_predictions(y_true, proba, ax=ax, name="model")
    if baseline_proba is not None:
        PrecisionRecallDisplay.from_predictions(y_true, baseline_proba, ax=ax, name="baseline")
    ax.set_title("Precision-recall curve (test)")
    figs["pr_curve.png"] = fig

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    ax.plot(mean_pred, frac_pos, "o-", label="model")
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfectly calibrated")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Calibration (test)")
    ax.legend()
    figs["calibration.png"] = fig

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        (proba >= threshold).astype(int),
        display_labels=["stays", "churns"],
        ax=ax,
        colorbar=False,
    )
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    figs["confusion_matrix.png"] = fig

    if importances:
        top = sorted(importances.items(), key=lambda kv: kv[1])[-20:]
        fig = Figure(figsize=(6, 6))
        ax = fig.subplots()
        ax.barh([k for k, _ in top], [v for _, v in top])
        ax.set_xlabel(importance_kind)
        ax.set_title(f"Feature importance ({importance_kind}, top 20)")
        fig.tight_layout()
        figs["feature_importance.png"] = fig
    return figs


def importances(model: object, feature_names: Sequence[str]) -> tuple[dict[str, float] | None, str]:
    """The model's own importances keyed by encoded feature name, and what they measure.

    What its kind declares (``churn.models``: XGBoost's gain, the forest's mean decrease in
    impurity); else its ``feature_importances_`` when it has them; else none (a linear model).
    """
    declared = models.kind_of(model)
    if declared is not None and declared.importances is not None:
        return declared.importances(model, list(feature_names))
    found = getattr(model, "feature_importances_", None)
    if found is None:
        return None, ""
    values = dict(zip(feature_names, map(float, found), strict=True))
    return values, f"{type(model).__name__} feature_importances_"
