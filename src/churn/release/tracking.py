"""MLflow tracking: connect to the configured store and log a training run with all it used."""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.pandas_dataset import from_pandas
from mlflow.environment_variables import MLFLOW_REGISTRY_URI, MLFLOW_TRACKING_URI
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from churn import models
from churn.config.params import DatasetConfig
from churn.config.settings import Settings

# Annotations only: connect() is on paths that never see a model (an unchanged `make train`),
# and these pull in matplotlib, scikit-learn and XGBoost.
if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

    from churn.scoring.fallback_rules import FallbackRules

# Pinned requirements for the logged model. Listing them avoids MLflow's requirement inference,
# which loads the model again in a subprocess and costs several seconds per run.
# With the candidates' own libraries (``churn.models``: ``libraries``; XGBoost is one of two
# distributions, ``xgboost-cpu`` on Linux, so whichever is installed is listed).
_BASE_PACKAGES = ("scikit-learn", "pandas", "numpy", "skops")

# MLflow saves scikit-learn models with skops, which refuses to load types nobody vouched for.
# These are the types the churn pipeline is made of around its model; each candidate's module
# vouches for its own model's types (``churn.models``: ``trusted_types``).
PIPELINE_TYPES = [
    "churn.features.pipeline.DerivedFeatures",
    "churn.features.pipeline.FillMissing",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
]


def trusted_model_types() -> list[str]:
    """The pipeline's own types and every declared candidate's (``churn.models``)."""
    return sorted({*PIPELINE_TYPES, *models.trusted_types()})


def model_packages() -> tuple[str, ...]:
    """The logged model's requirements: the pipeline's libraries and the candidates'."""
    return tuple(dict.fromkeys((*_BASE_PACKAGES, *models.libraries())))


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
        # set_registry_uri exports MLFLOW_REGISTRY_URI the same way: a child process (another
        # project's `churn train`) would register its models in this project's store.
        MLFLOW_REGISTRY_URI.unset()
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, prompts, token
# usage); "custom_model_development" is its classic ML view (runs, metrics, models, datasets).
# The tag and values are the UI's own (ExperimentKind in mlflow/server/js).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML_KIND = "custom_model_development"


def experiment_id(client: MlflowClient, settings: Settings, name: str | None = None) -> str:
    """Id of the named experiment, created with the project's artefact location if missing,
    and tagged as a classic ML experiment (also one created before the tag existed)."""
    name = name or settings.experiment_name
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return str(
            client.create_experiment(
                name,
                artifact_location=settings.artifact_location,
                tags={EXPERIMENT_KIND_TAG: CLASSIC_ML_KIND},
            )
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND)
    return str(experiment.experiment_id)


def model_requirements() -> list[str]:
    """``package==version`` for the packages the model needs at load time."""
    reqs = []
    for package in model_packages():
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
    datasets: Mapping[str, tuple[pd.DataFrame, str, str]] | None = None,
    dataset: DatasetConfig | None = None,
    children: Mapping[str, tuple[Mapping[str, Any], Mapping[str, float]]] | None = None,
) -> tuple[str, str]:
    """Log one training run and its model; returns ``(run_id, model_uri)``.

    The model is logged with a signature declared from the dataset config (the configured
    feature columns, and the id column when there is one: serving sends it, the pipeline ignores
    it), a few example rows, and the fallback rules beside it (``extra_files/fallback_rules.json``
    in the model's folder, so whoever downloads the model version has them). ``datasets`` maps
    each split's name to ``(frame, DVC md5, path)``: each is logged as an MLflow dataset input
    whose digest is the DVC hash, so the UI's Datasets column names the exact data file.
    ``children`` maps each candidate to its ``(params, metrics)``: one nested run each under
    this one (the parent holds the selected model, the comparison and the registered model).
    """
    from churn.scoring.fallback_rules import FILE_NAME as RULES_FILE

    exp_id = experiment_id(client, settings)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        for split, (frame, md5, path) in (datasets or {}).items():
            # No `source`: MLflow warns that a local path "can be interpreted in multiple
            # ways"; the split's path is fixed by churn.config.layout and logged as the input's tag.
            # The input records the split's schema and size, not its rows; integer columns are
            # described as doubles, as MLflow advises, since inferring an integer column warns
            # that it cannot hold a missing value (the model's own signature is declared).
            described = frame.astype(dict.fromkeys(frame.select_dtypes("integer").columns, float))
            split_input = from_pandas(described, name=split, digest=md5)
            mlflow.log_input(split_input, context=split, tags={"path": path})
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.log_metrics(dict(metrics))
        mlflow.set_tags(dict(tags))
        for name, (child_params, child_metrics) in (children or {}).items():
            with mlflow.start_run(experiment_id=exp_id, run_name=name, nested=True):
                mlflow.log_params({k: _param(v) for k, v in child_params.items()})
                mlflow.log_metrics(dict(child_metrics))
                mlflow.set_tag("candidate", name)
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
                signature=model_signature(input_example, proba, dataset),
                input_example=input_example,
                pip_requirements=model_requirements(),
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=trusted_model_types(),
                extra_files=[str(rules.write(Path(tmp) / RULES_FILE))],
            )
    return run.info.run_id, info.model_uri


def model_signature(
    input_example: pd.DataFrame, proba: Any, dataset: DatasetConfig | None
) -> ModelSignature:
    """The model's signature, its input types declared from the data contract (``params.yaml``).

    Inferred from a few rows, MLflow types the integer columns (``tenure``, the 0/1-coded
    ``SeniorCitizen``) as integers and warns, at every run, that an integer column cannot hold a
    missing value. The contract says which columns are integers and which may be missing: an
    integer column that is not nullable is ``long``, a nullable one ``double``; the id column is
    an optional string. Columns the contract does not name are inferred.
    """
    if dataset is None:
        return infer_signature(input_example, proba)
    declared: dict[str, ColSpec] = {}
    if dataset.id_column:
        declared[dataset.id_column] = ColSpec("string", dataset.id_column, False)
    for name, spec in dataset.numeric.items():
        kind = "long" if spec.integer and not spec.nullable else "double"
        declared[name] = ColSpec(kind, name, required=True)
    for name, levels in dataset.categorical.items():
        coded = all(isinstance(v, int) and not isinstance(v, bool) for v in levels)
        declared[name] = ColSpec("long" if coded else "string", name, required=True)
    others = [c for c in input_example.columns if c not in declared]
    inferred = (
        {c.name: c for c in infer_signature(input_example[others]).inputs.inputs} if others else {}
    )
    inputs = Schema([declared.get(c) or inferred[c] for c in input_example.columns])
    return ModelSignature(inputs=inputs, outputs=infer_signature(model_output=proba).outputs)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
