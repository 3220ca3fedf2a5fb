"""The model stages: featurize, train and evaluate (promotion is ``churn.release.promotion``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.pipeline import Pipeline

from churn import models
from churn.config.params import BASELINE, Params
from churn.data.split import label_vector
from churn.features.pipeline import build_feature_pipeline, encoded_feature_names
from churn.scoring.fallback_rules import FallbackRules, fit_rules, with_test_auc
from churn.training import comparison, evaluation, fairness, value
from churn.training.train import (
    TrainedModels,
    assemble,
    monotone_constraints,
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
    # The splits' full row counts when ``frames`` are samples (the dask engine: churn.dask.train).
    rows: dict[str, int] = field(default_factory=dict)

    def row_counts(self) -> dict[str, int]:
        """Rows per split: ``rows``, else the frames' lengths."""
        return self.rows or {n: len(f) for n, f in self.frames.items()}


@dataclass
class Evaluation:
    """The selected model and the baseline on the test split, and everything measured there.

    ``metrics`` are the selected model's (``test_*``) with its segment gaps (``fairness_*``)
    and business value (``value_*``); ``candidates`` holds each candidate's own test metrics
    (its child run in MLflow); ``comparison`` is the side-by-side table.
    """

    model: Pipeline
    baseline: Pipeline
    threshold: float
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    rules: FallbackRules
    figures: dict[str, Figure] = field(default_factory=dict)
    selected: str = "xgboost"
    selection_metric: str = "valid_roc_auc"
    comparison: pd.DataFrame = field(default_factory=comparison.table)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    segments: fairness.SegmentReport | None = None
    value_table: str = ""


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
    """Fit every candidate of ``train.candidates`` on train, calibrate on valid, select one."""
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
    """Score every candidate once on the test split, each at its own cost threshold (chosen on
    valid); measure the selected one per segment and in business value; learn the fallback
    rules (``churn.scoring.fallback_rules``) and score them on the same split."""
    y_test, X_test, test = features.y["test"], features.X["test"], features.frames["test"]
    rows, per_candidate, probas = [], {}, {}
    for name, candidate in trained.candidates.items():
        threshold = candidate.valid["valid_threshold"]
        probas[name] = candidate.model.predict_proba(X_test)[:, 1]
        metrics = evaluation.classification_metrics(y_test, probas[name], threshold)
        speed = comparison.one_row_ms(
            assemble(features.pipeline, candidate.model), params.dataset, test
        )
        rows.append(comparison.row(candidate, trained.selected, metrics, threshold, speed))
        per_candidate[name] = {
            **candidate.valid,
            **metrics,
            "fit_seconds": candidate.fit_seconds,
            "predict_ms_one_row": speed[0],
            "size_kb": rows[-1]["size_kb"],
        }
    chosen = trained.chosen
    threshold = chosen.valid["valid_threshold"]
    proba, base_proba = probas[chosen.name], probas[BASELINE]
    base_threshold = trained.candidates[BASELINE].valid["valid_threshold"]
    segments = fairness.segment_metrics(
        test, y_test, proba, threshold, params.fairness.segments, params.fairness.min_rows
    )
    econ = value.economics(params)
    worth = value.value_summary(y_test, proba, threshold, econ)
    rules = fallback_rules(features, params)
    found, kind = evaluation.importances(chosen.estimator, features.feature_names)
    figures = evaluation.diagnostic_plots(y_test, proba, threshold, base_proba, found, kind)
    figures.update(value.value_plots(y_test, proba, threshold, econ))
    model = assemble(features.pipeline, trained.model)
    figures.update(models.explanation_figures(model, features.frames["test"], params.dataset))
    return Evaluation(
        model=model,
        baseline=assemble(features.pipeline, trained.baseline),
        threshold=threshold,
        metrics={
            **evaluation.classification_metrics(y_test, proba, threshold),
            **segments.metrics(),
            **worth,
        },
        baseline_metrics=evaluation.classification_metrics(
            y_test, base_proba, base_threshold, prefix="baseline_test_"
        ),
        rules=rules,
        figures=figures,
        selected=trained.selected,
        selection_metric=trained.metric,
        comparison=comparison.table(rows),
        candidates=per_candidate,
        segments=segments,
        value_table=value.value_markdown(worth, threshold, econ),
    )
