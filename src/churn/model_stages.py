"""The model stages with their I/O: featurize, train, evaluate, register and promote (MLflow)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from churn import evaluate, registry, tracking, versioning
from churn.features import build_feature_pipeline, encoded_feature_names
from churn.model_card import render_model_card
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

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Splits encoded by the feature pipeline, which is fitted once on the training split."""

    pipeline: Pipeline
    frames: dict[str, pd.DataFrame]
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    feature_names: list[str]


@dataclass
class Evaluation:
    model: Pipeline
    baseline: Pipeline
    threshold: float
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    figures: dict[str, Figure] = field(default_factory=dict)


@dataclass
class Registered:
    run_id: str
    version: str
    data_version: str
    decision: registry.PromotionDecision


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


def evaluate_models(features: FeatureSet, trained: TrainedModels, params: Params) -> Evaluation:
    """Choose the threshold on valid, then score both candidates once on the test split."""
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
    return Evaluation(
        model=assemble(features.pipeline, trained.xgboost),
        baseline=assemble(features.pipeline, trained.baseline),
        threshold=threshold,
        metrics=evaluate.classification_metrics(y_test, proba, threshold),
        baseline_metrics=evaluate.classification_metrics(
            y_test, base_proba, base_threshold, prefix="baseline_test_"
        ),
        figures=evaluate.diagnostic_plots(
            y_test,
            proba,
            threshold,
            base_proba,
            evaluate.xgboost_importances(xgb, features.feature_names),
        ),
    )


def champion_test_auc(
    client: MlflowClient, name: str, test: pd.DataFrame, y_test: np.ndarray
) -> tuple[str | None, float | None, str]:
    """Score the current champion on this run's test split: ``(version, roc_auc, note)``.

    A champion that cannot score these rows (another data set's columns, say) is not comparable;
    the note says why and the gate then treats the challenger as a first model.
    """
    champion = registry.current_champion(client, name)
    if champion is None:
        return None, None, ""
    try:
        model = mlflow.sklearn.load_model(f"models:/{name}@{registry.CHAMPION}")
        proba = score(model, test)
    except Exception as exc:
        note = f"champion v{champion.version} cannot score this test data ({type(exc).__name__})"
        log.warning("%s: %s", note, exc)
        return champion.version, None, note
    return champion.version, float(roc_auc_score(y_test, proba)), ""


def input_example(frame: pd.DataFrame, params: Params, n: int = 5) -> pd.DataFrame:
    """A few rows as serving receives them, with no personal data in the model artefact.

    The label and the PII columns are dropped; the id column stays (serving sends it, the model
    ignores it) but its values are replaced by made-up ones.
    """
    ds = params.dataset
    pii = [c for c in ds.pii_columns if c != ds.id_column and c in frame.columns]
    example = frame.drop(columns=[ds.label_column, *pii]).head(n).copy()
    example[ds.id_column] = [f"example-{i}" for i in range(len(example))]
    return example


def register_and_promote(
    settings: Settings,
    params: Params,
    features: FeatureSet,
    trained: TrainedModels,
    result: Evaluation,
) -> Registered:
    """Log the run to MLflow, register the model as challenger, and apply the promotion gate.

    Nothing that was promoted before changes unless the gate says so, and the decision is written
    on the new version either way.
    """
    client = tracking.connect(settings)
    data_files = versioning.locked_data_files(settings.project_dir)
    data_ver = versioning.data_version(data_files)
    commit = versioning.git_commit(settings.project_dir, settings.git_commit)
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        "data_version": data_ver,
        "git_commit": commit,
        "trained_at": trained_at,
        "decision_threshold": f"{result.threshold:.6f}",
        "test_roc_auc": f"{result.metrics['test_roc_auc']:.6f}",
        "baseline_test_roc_auc": f"{result.baseline_metrics['baseline_test_roc_auc']:.6f}",
    }
    run_params: dict[str, Any] = {
        "ingest": params.ingest.model_dump(),
        "split": params.split.model_dump(),
        "features": params.features.model_dump(),
        "calibration": params.train.calibration,
        "costs": params.train.costs.model_dump(),
        "search_trials": params.train.search.n_trials,
        "decision_threshold": result.threshold,
        **{f"xgb_{k}": v for k, v in trained.xgboost_params.items()},
        **{f"data_file:{p}": h for p, h in data_files.items()},
    }
    counts = {f"rows_{n}": float(len(f)) for n, f in features.frames.items()}
    run_id, model_uri = tracking.log_training_run(
        client,
        settings,
        model=result.model,
        input_example=input_example(features.frames["test"], params),
        params=run_params,
        metrics={
            **result.metrics,
            **result.baseline_metrics,
            **counts,
            "decision_threshold": result.threshold,
        },
        tags={**tags, "data_files": ", ".join(f"{p}={h}" for p, h in data_files.items())},
        figures=result.figures,
        documents={
            "search_trials.json": [t.__dict__ for t in trained.trials],
            "dataset.json": params.dataset.model_dump(),
            "model_card.md": render_model_card(
                name=settings.model_name,
                metrics={**result.metrics, **result.baseline_metrics},
                tags=tags,
                params=params,
                row_counts={n: len(f) for n, f in features.frames.items()},
                xgboost_params=trained.xgboost_params,
            ),
        },
        run_name=f"train-{data_ver}",
    )
    version = registry.register_challenger(client, settings.model_name, model_uri, run_id, tags)
    champ_version, champ_auc, note = champion_test_auc(
        client, settings.model_name, features.frames["test"], features.y["test"]
    )
    decision = registry.decide_promotion(
        result.metrics["test_roc_auc"],
        result.baseline_metrics["baseline_test_roc_auc"],
        champ_auc,
        params.promote,
        champion_version=champ_version,
        champion_note=note,
    )
    registry.record_decision(client, settings.model_name, version.version, decision)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags(
            {
                "registered_version": version.version,
                "promotion": "promoted" if decision.promote else "rejected",
                "promotion_reason": decision.reason,
            }
        )
    return Registered(run_id, str(version.version), data_ver, decision)


def model_info(settings: Settings, alias: str = registry.CHAMPION) -> dict[str, Any]:
    """What ``churn model-info`` prints: the aliased version and where it came from.

    Raises:
        LookupError: when no version carries the alias.
    """
    client = tracking.connect(settings)
    try:
        version = client.get_model_version_by_alias(settings.model_name, alias)
    except mlflow.exceptions.MlflowException as exc:
        raise LookupError(
            f"model {settings.model_name!r} has no {alias!r} version in {settings.tracking_uri}; "
            "run `make train` first"
        ) from exc
    tags = version.tags
    return {
        "name": settings.model_name,
        "version": str(version.version),
        "alias": alias,
        "test_roc_auc": float(tags["test_roc_auc"]) if "test_roc_auc" in tags else None,
        "baseline_test_roc_auc": float(tags.get("baseline_test_roc_auc", "nan")),
        "decision_threshold": float(tags.get("decision_threshold", "nan")),
        "data_version": tags.get("data_version"),
        "git_commit": tags.get("git_commit"),
        "trained_at": tags.get("trained_at"),
        "run_id": version.run_id,
        "model_uri": f"models:/{settings.model_name}@{alias}",
        "tracking_uri": settings.tracking_uri,
    }
