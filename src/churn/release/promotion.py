"""Promotion: build the run's record, log and register it, then let the gate decide.

Three steps, each a plain function the training flow wires as a task:

1. :func:`build_run` turns what training produced into a :class:`TrainingRun`: the champion
   record, the run's parameters, metrics, figures and documents. No I/O beyond reading
   ``dvc.lock`` and git.
2. :func:`log_and_register` logs that run to MLflow and registers the model as ``challenger``.
3. :func:`gate` scores the current champion on the same test split, decides, writes the decision
   on the new version and moves ``champion`` only when the gate says so (and, with
   ``move_champion=False``, not even then: the continuous-training job checks the approved
   version first and promotes it with ``registry.promote``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from churn import models
from churn.champion import ChampionInfo, ServingCheck
from churn.config.layout import DataLayout
from churn.config.params import DatasetConfig, Params
from churn.config.settings import Settings
from churn.data import versioning
from churn.data.lineage import lineage_of, split_identity
from churn.features.version import FEATURE_CODE_VERSION
from churn.release import registry, tracking
from churn.release.model_card import render_model_card
from churn.scoring.fallback_rules import FILE_NAME as RULES_FILE
from churn.scoring.fallback_rules import FallbackRules
from churn.training import comparison
from churn.training.stages import Evaluation, FeatureSet
from churn.training.train import TrainedModels, score

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """Everything one training run records: the champion record and the run's contents."""

    record: ChampionInfo
    model: Pipeline
    input_example: pd.DataFrame
    rules: FallbackRules
    params: dict[str, Any]
    metrics: dict[str, float]
    figures: dict[str, Figure] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    # split name -> (frame, DVC md5, path): the run's MLflow dataset inputs
    datasets: dict[str, tuple[pd.DataFrame, str, str]] = field(default_factory=dict)
    dataset: DatasetConfig | None = None  # the contract the model's signature is declared from
    # candidate -> (params, metrics): one MLflow child run each under the training run
    children: dict[str, tuple[dict[str, Any], dict[str, float]]] = field(default_factory=dict)


@dataclass
class Registered:
    """The version a training run registered and what the gate decided about it.

    ``recorded`` is the decision written on the version: ``promoted`` (it is champion now),
    ``approved`` (the gate said yes, the champion did not move) or ``rejected``.
    """

    run_id: str
    version: str
    record: ChampionInfo
    decision: registry.PromotionDecision
    recorded: str = registry.REJECTED

    @property
    def promoted(self) -> bool:
        """True when the champion moved to this version."""
        return self.recorded == registry.PROMOTED


def input_example(frame: pd.DataFrame, params: Params, n: int = 5) -> pd.DataFrame:
    """A few rows as serving receives them, with no personal data in the model artefact.

    Only the configured feature columns travel with the model (its signature is inferred from
    these rows): never the label, PII, or a column the config does not name (a row number, an
    internal key, a column that leaks the label). The id column, when the data set has one,
    comes first (serving sends it, the model ignores it) with made-up values.
    """
    ds = params.dataset
    example = frame[ds.feature_columns].head(n).copy()
    if ds.id_column:
        example.insert(0, ds.id_column, [f"example-{i}" for i in range(len(example))])
    return example


def build_run(
    settings: Settings,
    params: Params,
    features: FeatureSet,
    trained: TrainedModels,
    result: Evaluation,
    serving_check: ServingCheck | None = None,
) -> TrainingRun:
    """The record and contents of one training run (nothing is logged yet).

    ``serving_check`` (``churn.scoring.check_serving``) is recorded on the version, and its
    largest difference is the run metric ``serving_max_abs_diff``.
    """
    data_files = versioning.locked_data_files(settings.project_dir)
    record = ChampionInfo(
        decision_threshold=result.threshold,
        test_roc_auc=result.metrics["test_roc_auc"],
        baseline_test_roc_auc=result.baseline_metrics["baseline_test_roc_auc"],
        data_version=versioning.data_version(data_files),
        data_files=data_files,
        git_commit=versioning.git_commit(settings.project_dir, settings.git_commit),
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        serving_check=serving_check,
        rules_test_roc_auc=result.rules.test_roc_auc,
        lineage=lineage_of(params.dataset, settings.model_name),
        feature_code=FEATURE_CODE_VERSION,
        split=split_identity(params),
    )
    row_counts = features.row_counts()
    run_params: dict[str, Any] = {
        "ingest": params.ingest.model_dump(),
        "split": params.split.model_dump(),
        "features": params.features.model_dump(),
        "calibration": params.train.calibration,
        "costs": params.train.costs.model_dump(),
        "search_trials": params.train.search.n_trials,
        "decision_threshold": result.threshold,
        "candidates": params.train.candidates,
        "selected": trained.selected,
        "selection_metric": trained.metric,
        "fairness_segments": params.fairness.segments,
        **{
            # each candidate's chosen values, named by its declared prefix (churn.models)
            f"{models.kind(c.name).param_prefix}_{k}": v
            for c in trained.candidates.values()
            for k, v in c.params.items()
        },
    }
    comparison_md = comparison.markdown(result.comparison)
    return TrainingRun(
        record=record,
        model=result.model,
        input_example=input_example(features.frames["test"], params),
        rules=result.rules,
        params=run_params,
        metrics={
            **result.metrics,
            **result.baseline_metrics,
            **(
                {"rules_test_roc_auc": result.rules.test_roc_auc}
                if result.rules.test_roc_auc is not None
                else {}
            ),
            **{f"rows_{n}": float(c) for n, c in row_counts.items()},
            "decision_threshold": result.threshold,
            **(
                {"serving_max_abs_diff": serving_check.max_abs_diff}
                if serving_check is not None and serving_check.max_abs_diff is not None
                else {}
            ),
        },
        figures=result.figures,
        datasets=_split_datasets(features, data_files),
        dataset=params.dataset,
        children={
            name: (
                {"candidate": name, **trained.candidates[name].params},
                result.candidates[name],
            )
            for name in trained.candidates
        },
        documents={
            "search_trials.json": [t.__dict__ for t in trained.trials],
            "comparison.csv": result.comparison.to_csv(index=False),
            "comparison.md": comparison_md,
            **({"fairness.json": result.segments.to_dict()} if result.segments else {}),
            "dataset.json": params.dataset.model_dump(),
            RULES_FILE: result.rules.to_dict(),
            # The data version in full: `dvc pull` with this file brings the run's data back.
            "dvc.lock": (settings.project_dir / "dvc.lock").read_text(),
            "model_card.md": render_model_card(
                name=settings.model_name,
                record=record,
                metrics={**result.metrics, **result.baseline_metrics},
                params=params,
                row_counts=row_counts,
                model_params=trained.chosen.params,
                selected=trained.selected,
                comparison=result.comparison,
                selection_metric=trained.metric,
                segments=result.segments,
                value_table=result.value_table,
            ),
        },
    )


def _split_datasets(
    features: FeatureSet, data_files: dict[str, str]
) -> dict[str, tuple[pd.DataFrame, str, str]]:
    """Each split the run used, with its file's DVC md5 (from ``dvc.lock``) and path."""
    out = {}
    for name, frame in features.frames.items():
        path = DataLayout(Path("data")).split(name).as_posix()
        if path in data_files:
            out[name] = (frame, data_files[path], path)
    return out


def log_and_register(settings: Settings, run: TrainingRun) -> ChampionInfo:
    """Log the run and its model to MLflow and register it as ``challenger``.

    Returns:
        The record with its ``run_id`` and registry ``version`` filled in.
    """
    client = tracking.connect(settings)
    tags = run.record.to_tags()
    run_id, model_uri = tracking.log_training_run(
        client,
        settings,
        model=run.model,
        input_example=run.input_example,
        rules=run.rules,
        params=run.params,
        metrics=run.metrics,
        tags=tags,
        figures=run.figures,
        documents=run.documents,
        run_name=f"train-{run.record.data_version}",
        datasets=run.datasets,
        dataset=run.dataset,
        children=run.children,
    )
    version = registry.register_challenger(client, settings.model_name, model_uri, run_id, tags)
    return ChampionInfo.from_version(version)


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


def gate(
    settings: Settings,
    params: Params,
    features: FeatureSet,
    challenger: ChampionInfo,
    *,
    move_champion: bool = True,
) -> Registered:
    """Decide on a registered challenger against the champion, on the same test split.

    Nothing that was promoted before changes unless the gate says so (and ``move_champion``
    allows it), and the decision is written on the new version either way.
    """
    if challenger.version is None or challenger.run_id is None:
        raise ValueError("the gate decides on a registered version (run log_and_register first)")
    client = tracking.connect(settings)
    champ_version, champ_auc, note = champion_test_auc(
        client, settings.model_name, features.frames["test"], features.y["test"]
    )
    decision = registry.decide_promotion(
        challenger.test_roc_auc,
        challenger.baseline_test_roc_auc,
        champ_auc,
        params.promote,
        champion_version=champ_version,
        champion_note=note,
        recall_gap=client.get_run(challenger.run_id).data.metrics.get("fairness_max_recall_gap"),
        max_recall_gap=params.fairness.max_recall_gap,
    )
    recorded = registry.record_decision(
        client, settings.model_name, challenger.version, decision, move_champion=move_champion
    )
    with mlflow.start_run(run_id=challenger.run_id):
        mlflow.set_tags(
            {
                "registered_version": challenger.version,
                "promotion": recorded,
                "promotion_reason": decision.reason,
            }
        )
    return Registered(challenger.run_id, challenger.version, challenger, decision, recorded)
