"""The model stages: featurize, train and evaluate (promotion is ``churn.promotion``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.pipeline import Pipeline

from churn import evaluation, registry, tracking
from churn.fallback_rules import FallbackRules, fit_rules, with_test_auc
from churn.features import build_feature_pipeline, encoded_feature_names
from churn.params import Params
from churn.settings import Settings
from churn.split import label_vector
from churn.train import (
    TrainedModels,
    assemble,
    choose_threshold,
    monotone_constraints,
    score,
    train_models,
)


@dataclass
class FeatureSet:
    """Splits encoded by the feature pipeline, which is fitted once on the training split."""

    pipeline: Pipeline
    frames: dict[str, pd.DataFrame]
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    feature_names: list[str]
    # The splits' full row counts when ``frames`` are samples (the dask engine: churn.dask_train).
    rows: dict[str, int] = field(default_factory=dict)

    def row_counts(self) -> dict[str, int]:
        """Rows per split: ``rows``, else the frames' lengths."""
        return self.rows or {n: len(f) for n, f in self.frames.items()}


@dataclass
class Evaluation:
    model: Pipeline
    baseline: Pipeline
    threshold: float
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    rules: FallbackRules
    figures: dict[str, Figure] = field(default_factory=dict)


def featurize(splits: dict[str, pd.DataFrame], params: Params) -> FeatureSet:
    """Fit the feature pipeline on ``train`` and encode every split with it."""
    pipeline = build_feature_pipeline(params.dataset, params.features).fit(splits["train"])
    return FeatureSet(
        pipeline=pipeline,
        frames=splits,
        X={n: np.asarray(pipeline.transform(f), dtype="float32") for n, f in splits.items()},
        y={n: label_vector(f, params.dataset).to_numpy() for n, f in splits.items()},
        feature_names=encoded_feature_names(pipeline),
    )


def train(
    features: FeatureSet, params: Params, progress: Callable[[int, int], None] | None = None
) -> TrainedModels:
    """Fit the baseline and the XGBoost search on train, calibrate both on valid."""
    monotone = monotone_constraints(features.feature_names, params.train.monotone)
    return train_models(
        features.X["train"],
        features.y["train"],
        features.X["valid"],
        features.y["valid"],
        params.train,
        monotone,
        progress,
    )


def fallback_rules(features: FeatureSet, params: Params) -> FallbackRules:
    """The service's fallback rules: learned on train, calibrated on valid, scored on test."""
    frames, y = features.frames, features.y
    rules = fit_rules(
        frames["train"], y["train"], frames["valid"], y["valid"], params.dataset, params.train.costs
    )
    return with_test_auc(rules, frames["test"], y["test"])


def evaluate_models(features: FeatureSet, trained: TrainedModels, params: Params) -> Evaluation:
    """Choose the threshold on valid, then score both candidates once on the test split; learn
    the fallback rules (``churn.fallback_rules``) and score them on the same split."""
    threshold = choose_threshold(
        features.y["valid"],
        trained.xgboost.predict_proba(features.X["valid"])[:, 1],
        params.train.costs,
    )
    base_threshold = choose_threshold(
        features.y["valid"],
        trained.baseline.predict_proba(features.X["valid"])[:, 1],
        params.train.costs,
    )
    y_test = features.y["test"]
    proba = trained.xgboost.predict_proba(features.X["test"])[:, 1]
    base_proba = trained.baseline.predict_proba(features.X["test"])[:, 1]
    xgb = trained.xgboost.estimator.estimator  # the frozen, uncalibrated booster
    rules = fallback_rules(features, params)
    return Evaluation(
        model=assemble(features.pipeline, trained.xgboost),
        baseline=assemble(features.pipeline, trained.baseline),
        threshold=threshold,
        metrics=evaluation.classification_metrics(y_test, proba, threshold),
        baseline_metrics=evaluation.classification_metrics(
            y_test, base_proba, base_threshold, prefix="baseline_test_"
        ),
        rules=rules,
        figures=evaluation.diagnostic_plots(
            y_test,
            proba,
            threshold,
            base_proba,
            evaluation.xgboost_importances(xgb, features.feature_names),
        ),
    )


def evaluate_registered(
    settings: Settings, params: Params, test: pd.DataFrame, alias: str = registry.CHAMPION
) -> dict[str, Any]:
    """Evaluate a registered version on ``test`` at its recorded decision threshold.

    Raises:
        LookupError: when no version carries ``alias`` (or it has no champion record).
    """
    import mlflow

    client = tracking.connect(settings)
    record = registry.aliased_record(client, settings.model_name, alias)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@{alias}")
    metrics = evaluation.classification_metrics(
        label_vector(test, params.dataset).to_numpy(), score(model, test), record.decision_threshold
    )
    return {"version": record.version, "alias": alias, **metrics}
