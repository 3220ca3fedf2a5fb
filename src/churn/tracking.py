"""MLflow tracking: connect to the configured store and log a training run with all it used."""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from churn.fallback_rules import FILE_NAME as RULES_FILE
from churn.fallback_rules import FallbackRules
from churn.settings import Settings

# Pinned requirements for the logged model. Listing them avoids MLflow's requirement inference,
# which loads the model again in a subprocess and costs several seconds per run.
# XGBoost is one of two distributions (``xgboost-cpu`` on Linux): whichever is installed is listed.
_MODEL_PACKAGES = ("scikit-learn", "xgboost", "xgboost-cpu", "pandas", "numpy", "skops")

# MLflow saves scikit-learn models with skops, which refuses to load types nobody vouched for.
# These are the types the churn pipeline is made of; a new model type is added here on purpose.
TRUSTED_MODEL_TYPES = [
    "churn.features.DerivedFeatures",
    "churn.features.FillMissing",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (creating the local one) and return a client."""
    if settings.tracking_is_local:
        settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if settings.tracking_is_local:
        # set_tracking_uri also exports MLFLOW_TRACKING_URI; left there, the project-local
        # default would read as a user override to every Settings built later in this process
        # (another project, a test).
        MLFLOW_TRACKING_URI.unset()
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def experiment_id(client: MlflowClient, settings: Settings, name: str | None = None) -> str:
    """Id of the named experiment, created with the project's artefact location if missing."""
    name = name or settings.experiment_name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=settings.artifact_location))


def model_requirements() -> list[str]:
    """``package==version`` for the packages the model needs at load time."""
    reqs = []
    for package in _MODEL_PACKAGES:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        reqs.append(f"{package}=={version}")
    return reqs


def log_training_run(
    client: MlflowClient,
    settings: Settings,
    *,
    model: Pipeline,
    input_example: pd.DataFrame,
    rules: FallbackRules,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    figures: Mapping[str, Figure],
    documents: Mapping[str, Any],
    run_name: str | None = None,
) -> tuple[str, str]:
    """Log one training run and its model; returns ``(run_id, model_uri)``.

    The model is logged with a signature inferred from raw input rows (the configured feature
    columns, and the id column when there is one: serving sends it, the pipeline ignores it), a
    few example rows, and the fallback rules beside it (``extra_files/fallback_rules.json`` in
    the model's folder, so whoever downloads the model version has them).
    """
    exp_id = experiment_id(client, settings)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags(dict(tags))
        with tempfile.TemporaryDirectory() as tmp:
            for name, fig in figures.items():
                fig.savefig(Path(tmp) / name, dpi=110, bbox_inches="tight")
                mlflow.log_artifact(str(Path(tmp) / name), artifact_path="plots")
            for name, doc in documents.items():
                (Path(tmp) / name).write_text(
                    doc if isinstance(doc, str) else json.dumps(doc, indent=2, default=str)
                )
                mlflow.log_artifact(str(Path(tmp) / name))
        proba = model.predict_proba(input_example)[:, 1]
        with tempfile.TemporaryDirectory() as tmp:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(input_example, proba),
                input_example=input_example,
                pip_requirements=model_requirements(),
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=TRUSTED_MODEL_TYPES,
                extra_files=[str(rules.write(Path(tmp) / RULES_FILE))],
            )
    return run.info.run_id, info.model_uri


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
