"""Training: logistic-regression baseline, XGBoost with a bounded search, calibration, threshold."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churn.params import CostParams, TrainParams, XGBoostParams

log = logging.getLogger(__name__)

# Bounds of the random search around the configured XGBoost values.
_SEARCH_SPACE: dict[str, tuple[float, float, str]] = {
    "n_estimators": (100, 600, "int"),
    "max_depth": (2, 6, "int"),
    "learning_rate": (0.01, 0.2, "log"),
    "subsample": (0.6, 1.0, "lin"),
    "colsample_bytree": (0.4, 1.0, "lin"),
    "min_child_weight": (0.5, 20.0, "log"),
    "reg_lambda": (0.1, 20.0, "log"),
}


@dataclass
class Trial:
    params: dict[str, Any]
    valid_roc_auc: float


@dataclass
class TrainedModels:
    """Fitted, calibrated candidates and what the search saw."""

    xgboost: CalibratedClassifierCV
    baseline: CalibratedClassifierCV
    xgboost_params: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)


def monotone_constraints(
    feature_names: Sequence[str], constraints: dict[str, dict[str, int]]
) -> tuple[int, ...]:
    """Map ``{column: {level: +1/-1}}`` onto the encoded one-hot columns ``column_level``."""
    wanted = {
        f"{col}_{level}": sign
        for col, levels in constraints.items()
        for level, sign in levels.items()
    }
    unknown = set(wanted) - set(feature_names)
    if unknown:
        raise ValueError(
            f"train.monotone names encoded features that do not exist: {sorted(unknown)}"
        )
    return tuple(wanted.get(name, 0) for name in feature_names)


def fit_baseline(X: np.ndarray, y: np.ndarray, params: TrainParams) -> LogisticRegression:
    """Plain L2 logistic regression on the encoded features."""
    return LogisticRegression(C=params.baseline.C, max_iter=2000).fit(X, y)


def fit_xgboost(
    X: np.ndarray,
    y: np.ndarray,
    values: dict[str, Any],
    seed: int,
    monotone: tuple[int, ...],
    n_jobs: int = 1,
) -> XGBClassifier:
    """One XGBoost fit with the given hyperparameters."""
    model = XGBClassifier(
        **values,
        objective="binary:logistic",
        eval_metric="auc",
        tree_method="hist",
        random_state=seed,
        n_jobs=n_jobs,
        monotone_constraints=monotone if any(monotone) else None,
    )
    return model.fit(X, y)


def search_xgboost(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    monotone: tuple[int, ...],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[XGBClassifier, list[Trial]]:
    """Fit the configured XGBoost, then ``search.n_trials`` random neighbours; keep the best.

    The search is seeded and bounded; trials are scored by ROC AUC on the validation split only,
    so the test split stays untouched until evaluation.
    """
    candidates = [params.xgboost.model_dump()]
    rng = np.random.default_rng(params.seed)
    candidates += [_sample(rng) for _ in range(params.search.n_trials)]
    best: tuple[float, XGBClassifier] | None = None
    trials: list[Trial] = []
    for i, values in enumerate(candidates):
        model = fit_xgboost(X_train, y_train, values, params.seed, monotone, params.n_jobs)
        score = float(roc_auc_score(y_valid, model.predict_proba(X_valid)[:, 1]))
        trials.append(Trial(params=values, valid_roc_auc=score))
        log.info(
            "xgboost trial %d/%d: valid ROC AUC %.4f %s", i + 1, len(candidates), score, values
        )
        if best is None or score > best[0]:
            best = (score, model)
        if progress:
            progress(i + 1, len(candidates))
    assert best is not None
    return best[1], trials


def calibrate(
    model: Any, X_valid: np.ndarray, y_valid: np.ndarray, method: str
) -> CalibratedClassifierCV:
    """Calibrate a fitted classifier's probabilities on the validation split."""
    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(X_valid, y_valid)


def train_models(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    monotone: tuple[int, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> TrainedModels:
    """Fit and calibrate both candidates on already-encoded matrices."""
    xgb, trials = search_xgboost(X_train, y_train, X_valid, y_valid, params, monotone, progress)
    baseline = fit_baseline(X_train, y_train, params)
    best = max(trials, key=lambda t: t.valid_roc_auc)
    return TrainedModels(
        xgboost=calibrate(xgb, X_valid, y_valid, params.calibration),
        baseline=calibrate(baseline, X_valid, y_valid, params.calibration),
        xgboost_params=best.params,
        trials=trials,
    )


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


def assemble(features: Pipeline, model: Any) -> Pipeline:
    """The single artefact serving loads: fitted feature pipeline + calibrated model."""
    return Pipeline([("features", features), ("model", model)])


def score(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities for raw (validated) rows."""
    return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")


def _sample(rng: np.random.Generator) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (lo, hi, kind) in _SEARCH_SPACE.items():
        if kind == "int":
            values[name] = int(rng.integers(int(lo), int(hi) + 1))
        elif kind == "log":
            values[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        else:
            values[name] = float(rng.uniform(lo, hi))
    return XGBoostParams(**values).model_dump()
