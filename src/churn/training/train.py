"""Training: every candidate of ``train.candidates`` as its module declares it (``churn.models``:
the logistic-regression baseline, the random forest, XGBoost, a forker's model), each with its
bounded search, calibration, the selection on validation, and each candidate's cost-based
threshold (``churn.scoring.threshold``)."""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline

from churn import models
from churn.config.params import BASELINE, CostParams, TrainParams
from churn.features.pipeline import FEATURES, MODEL
from churn.models import FitContext, ModelKind
from churn.models.kind import SearchSpace
from churn.scoring.threshold import choose_threshold

log = logging.getLogger(__name__)


@dataclass
class Trial:
    params: dict[str, Any]
    valid_roc_auc: float
    candidate: str = "xgboost"


@dataclass
class FittedCandidate:
    """One candidate: calibrated on valid, with its chosen hyperparameters and how it was found.

    ``valid`` holds the selection metrics (``valid_roc_auc``, ``valid_pr_auc``, ``valid_cost``:
    ``train.costs`` per validation row at the candidate's own cost threshold, ``valid_threshold``).
    """

    name: str
    model: CalibratedClassifierCV
    params: dict[str, Any]
    trials: list[Trial]
    fit_seconds: float
    valid: dict[str, float] = field(default_factory=dict)

    @property
    def estimator(self) -> Any:
        """The fitted, uncalibrated model inside the calibration."""
        return self.model.estimator.estimator


@dataclass
class TrainedModels:
    """Every fitted, calibrated candidate (in ``train.candidates`` order) and the selected one.

    ``selected`` is the challenger (never the baseline) with the best ``train.select.metric``
    on the validation split; ``baseline`` is the logistic regression it must beat.
    """

    candidates: dict[str, FittedCandidate]
    selected: str
    metric: str = "valid_roc_auc"
    # Candidates of ``train.candidates`` the engine did not train, each with why (said in the
    # log and the run's summary).
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def chosen(self) -> FittedCandidate:
        return self.candidates[self.selected]

    @property
    def model(self) -> CalibratedClassifierCV:
        """The selected, calibrated model (what goes to the gate)."""
        return self.chosen.model

    @property
    def baseline(self) -> CalibratedClassifierCV:
        return self.candidates[BASELINE].model

    @property
    def trials(self) -> list[Trial]:
        return [t for c in self.candidates.values() for t in c.trials]


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


def search_grid(candidate: ModelKind, params: TrainParams) -> list[dict[str, Any]]:
    """The configured values of ``candidate``, then its ``search_trials`` seeded neighbours
    within its ``search_space`` (the keys it does not search keep the configured values)."""
    configured = models.block(params, candidate)
    grid = [configured.model_dump()]
    if not candidate.search_space:
        return grid
    rng = np.random.default_rng(params.seed + candidate.search_seed)
    for _ in range(candidate.search_trials(params.search)):
        sampled = _sample(rng, candidate.search_space)
        grid.append(candidate.params(**{**configured.model_dump(), **sampled}).model_dump())
    return grid


def search(
    candidate: ModelKind,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    monotone: tuple[int, ...],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, list[Trial]]:
    """Fit ``candidate``'s grid (``search_grid``) on train and keep the best by validation ROC
    AUC; the test split stays untouched until evaluation. A candidate without a search space
    is fitted once with its configured values (no trials recorded)."""
    context = FitContext(seed=params.seed, monotone=monotone, n_jobs=params.n_jobs)
    grid = search_grid(candidate, params)
    if not candidate.search_space:
        return candidate.fit(X_train, y_train, grid[0], context), []
    return _best_of(
        candidate.name,
        grid,
        lambda v: candidate.fit(X_train, y_train, v, context),
        X_valid,
        y_valid,
        progress,
    )


def _best_of(
    name: str,
    grid: list[dict[str, Any]],
    fit: Callable[[dict[str, Any]], Any],
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, list[Trial]]:
    best: tuple[float, Any] | None = None
    trials: list[Trial] = []
    for i, values in enumerate(grid):
        model = fit(values)
        score = float(roc_auc_score(y_valid, model.predict_proba(X_valid)[:, 1]))
        trials.append(Trial(params=values, valid_roc_auc=score, candidate=name))
        log.info("%s trial %d/%d: valid ROC AUC %.4f %s", name, i + 1, len(grid), score, values)
        if best is None or score > best[0]:
            best = (score, model)
        if progress:
            progress(i + 1, len(grid))
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
    """Fit, calibrate and measure every candidate on already-encoded matrices; select one.

    Each candidate is searched and fitted on train, calibrated on valid, and measured on valid
    (``FittedCandidate.valid``); the selected model is the challenger with the best
    ``params.select.metric``. Nothing here sees the test split.
    """

    # Progress (when asked for) follows the candidate with the most trials.
    followed = max(params.candidates, key=lambda n: len(search_grid(models.kind(n), params)))

    def fit(name: str) -> FittedCandidate:
        start = time.perf_counter()
        model, trials = search(
            models.kind(name),
            X_train,
            y_train,
            X_valid,
            y_valid,
            params,
            monotone,
            progress if name == followed else None,
        )
        if trials:
            chosen = max(trials, key=lambda t: t.valid_roc_auc).params
        else:
            chosen = models.values(params, name)
        calibrated = calibrate(model, X_valid, y_valid, params.calibration)
        seconds = time.perf_counter() - start
        proba = calibrated.predict_proba(X_valid)[:, 1]
        candidate = FittedCandidate(
            name=name,
            model=calibrated,
            params=chosen,
            trials=trials,
            fit_seconds=seconds,
            valid=validation_metrics(y_valid, proba, params.costs),
        )
        log.info(
            "%s: valid ROC AUC %.4f, fitted in %.1f s",
            models.title(name),
            candidate.valid["valid_roc_auc"],
            seconds,
        )
        return candidate

    # The candidates are independent and their fits run in C with the GIL released (XGBoost's
    # booster, scikit-learn's trees and solver), so one thread each uses the machine's cores
    # (train.n_jobs stays the threads inside one fit). Each fit is seeded: the same models,
    # whatever the order they finish in.
    # Each thread runs in a copy of this context, so what it logs belongs to the caller's run
    # (Prefect sends it to the flow run's log; without it, every line warned of a missing run).
    # OpenMP-based estimators (scikit-learn's histogram boosting, ...) take every core unless
    # told: their pools are bounded to train.n_jobs for the whole fit, as n_jobs bounds the rest.
    from threadpoolctl import threadpool_limits

    workers = min(len(params.candidates), os.cpu_count() or 1)
    with (
        threadpool_limits(limits=params.n_jobs, user_api="openmp"),
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="candidate") as pool,
    ):
        futures = [pool.submit(contextvars.copy_context().run, fit, c) for c in params.candidates]
        fitted: dict[str, FittedCandidate] = {
            name: future.result() for name, future in zip(params.candidates, futures, strict=True)
        }
    selected = select(fitted, params.select.metric, params.select.tolerance, params.select.prefer)
    return TrainedModels(candidates=fitted, selected=selected, metric=params.select.metric)


def validation_metrics(y: np.ndarray, proba: np.ndarray, costs: CostParams) -> dict[str, float]:
    """What the selection may use: ROC AUC, PR AUC, and the cost per row at the cost threshold."""
    threshold = choose_threshold(y, proba, costs)
    pred = proba >= threshold
    cost = costs.false_negative * np.sum(~pred & (y == 1)) + costs.false_positive * np.sum(
        pred & (y == 0)
    )
    return {
        "valid_roc_auc": float(roc_auc_score(y, proba)),
        "valid_pr_auc": float(average_precision_score(y, proba)),
        "valid_cost": float(cost / max(len(y), 1)),
        "valid_threshold": threshold,
    }


def select(
    candidates: dict[str, FittedCandidate],
    metric: str,
    tolerance: float = 0.0,
    prefer: Sequence[str] = (),
) -> str:
    """The challenger (any candidate but the baseline) with the best validation ``metric``.

    ``valid_cost`` is minimised, the others maximised. Among the challengers within
    ``tolerance`` of the best figure, the first in ``prefer`` wins (then the earlier in
    ``train.candidates``). The baseline is never selected: it is what the selection must beat.
    """
    sign = -1.0 if metric == "valid_cost" else 1.0
    challengers = [c for c in candidates.values() if c.name != BASELINE]
    if not challengers:
        raise ValueError("no candidate besides the baseline to select (see train.candidates)")
    best = max(sign * c.valid[metric] for c in challengers)
    near = [c for c in challengers if sign * c.valid[metric] >= best - tolerance]
    order = list(prefer)

    def rank(c: FittedCandidate) -> tuple[int, int]:
        return (order.index(c.name) if c.name in order else len(order), challengers.index(c))

    return min(near, key=rank).name


def assemble(features: Pipeline, model: Any) -> Pipeline:
    """The single artefact serving loads: fitted feature pipeline + calibrated model."""
    return Pipeline([(FEATURES, features), (MODEL, model)])  # its readers find them by name


def score(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Churn probabilities for raw (validated) rows."""
    return np.asarray(model.predict_proba(frame)[:, 1], dtype="float64")


def _sample(rng: np.random.Generator, space: SearchSpace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (lo, hi, scale) in space.items():
        if scale == "int":
            values[name] = int(rng.integers(int(lo), int(hi) + 1))
        elif scale == "log":
            values[name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        elif scale == "logint":
            values[name] = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        else:
            values[name] = float(rng.uniform(lo, hi))
    return values
