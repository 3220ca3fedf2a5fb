"""Promotion: build the run's record, log and register it, then let the gate decide.

Three steps, each a plain function the training flow wires as a task:

1. :func:`build_run` turns what training produced into a :class:`TrainingRun`: the champion
   record, the run's parameters, metrics, figures and documents. No I/O beyond reading
   ``dvc.lock`` and git.
2. :func:`log_and_register` logs that run to MLflow and registers the model as ``challenger``.
3. :func:`gate` scores the current champion of the lineage on test rows neither model learnt
   from (:func:`compare_with_champion`; it fails closed), decides, writes the decision
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
from churn.champion import ChampionInfo, ChampionRecordError, ServingCheck, SplitIdentity
from churn.config.feature_store import StoreVersion
from churn.config.layout import DataLayout
from churn.config.params import DatasetConfig, Params, SplitParams
from churn.config.settings import Settings
from churn.data import versioning
from churn.data.lineage import lineage_of, split_identity
from churn.data.split import hash_assign
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
    feature_store: StoreVersion | None = None,
) -> TrainingRun:
    """The record and contents of one training run (nothing is logged yet).

    ``serving_check`` (``churn.scoring.check_serving``) is recorded on the version, and its
    largest difference is the run metric ``serving_max_abs_diff``. ``feature_store``, the store
    the rows were joined to (``churn.training.store_features``), goes on the version and the
    run as the ``feature_store`` tag.
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
        feature_store=feature_store,
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


# Fewest rows held out from both models the gate compares them on (and both classes).
MIN_COMPARISON_ROWS = 50


@dataclass(frozen=True)
class ChampionComparison:
    """The champion and the challenger scored on the same rows, or why the gate cannot decide.

    Attributes:
        version: the champion's version; None when there is no champion yet.
        champion_auc: its ROC AUC on ``rows`` test rows (None with ``refusal``).
        challenger_auc: the challenger's on the same rows: its own test ROC AUC when the rows are
            the whole test split.
        rows: test rows compared.
        note: how the rows were chosen, when not the whole test split.
        refusal: non-empty when the gate cannot decide (the champion cannot score, another
            lineage, too few rows held out from both): the challenger is rejected with it and
            the champion stays.
    """

    version: str | None = None
    champion_auc: float | None = None
    challenger_auc: float | None = None
    rows: int = 0
    note: str = ""
    refusal: str = ""


def _split_text(split: SplitIdentity) -> str:
    return f"{split.method}, seed {split.seed}, key {split.key}"


def champion_held_out(
    champion: ChampionInfo, test: pd.DataFrame, params: Params, project_dir: Path
) -> tuple[np.ndarray, str]:
    """Which of this run's test rows the champion also held out (``(mask, how)``).

    The champion's own test split is read back by its DVC md5 (exact, whatever its method);
    when it is gone from the cache and the remote, a hash split is recomputed from the
    champion's split identity (a row's hash split depends on its key only).

    Raises:
        LookupError: when neither can tell (the message says why).
    """
    split = champion.split
    key = params.dataset.key_column
    if split is None or split.key != key or key not in test.columns:
        raise LookupError(
            f"champion v{champion.version}'s rows are keyed by "
            f"{split.key if split else 'an unrecorded key'}, this run's by {key!r}"
        )
    try:
        paths = versioning.versioned_paths(project_dir, champion.split_md5("test"))
        keys = pd.concat([pd.read_parquet(p, columns=[key]) for p in paths], ignore_index=True)
        held = test[key].astype(str).isin(set(keys[key].astype(str)))
        return held.to_numpy(), "its test split read back by DVC md5"
    except (ChampionRecordError, versioning.VersioningError, OSError, KeyError) as exc:
        if split.method != "hash":
            raise LookupError(
                f"champion v{champion.version}'s test split cannot be read back "
                f"({type(exc).__name__}: {exc}) and its {split.method} split cannot be "
                "recomputed row by row"
            ) from exc
    assigned = hash_assign(
        test,
        params.dataset,
        SplitParams(seed=split.seed, valid_size=split.valid_size, test_size=split.test_size),
    )
    return assigned == "test", "its hash split recomputed from its split identity"


def compare_with_champion(
    client: MlflowClient,
    name: str,
    challenger: ChampionInfo,
    params: Params,
    features: FeatureSet,
    project_dir: Path,
) -> ChampionComparison:
    """Score the current champion of this lineage on test rows neither model learnt from.

    Fails closed: a champion that cannot be compared (another lineage's schema, a record or an
    artefact it cannot load, columns it cannot score, too few rows held out from both) gives a
    ``refusal``, never "no champion". When the champion's split identity differs from this
    run's (another ``split.method`` or seed, e.g. ``engine.kind`` switched), only the test rows
    the champion also held out are compared, and both models are scored on them.
    """
    champion = registry.current_champion(client, name)
    if champion is None:
        return ChampionComparison()
    version = str(champion.version)

    def refuse(why: str) -> ChampionComparison:
        return ChampionComparison(version=version, refusal=why)

    try:
        record = ChampionInfo.from_version(champion)
    except ChampionRecordError as exc:
        return refuse(f"champion v{version}'s record cannot be read ({exc})")
    ours, theirs = challenger.lineage, record.lineage
    if ours is not None and theirs is not None and ours.fingerprint != theirs.fingerprint:
        return refuse(
            f"champion v{version} of {name!r} was trained on another data set (schema "
            f"{theirs.fingerprint}, this run's {ours.fingerprint}): give this data set its own "
            "lineage with `dataset.name` in params.yaml (`churn init-dataset --name`), so its "
            "first model is judged as a first champion"
        )
    test, y_test = features.frames["test"], features.y["test"]
    mask = np.ones(len(test), dtype=bool)
    note = ""
    if (
        record.split is not None
        and challenger.split is not None
        and record.split != challenger.split
    ):
        try:
            mask, how = champion_held_out(record, test, params, project_dir)
        except LookupError as exc:
            return refuse(f"the splits differ and the rows held out from both are unknown: {exc}")
        rows = int(mask.sum())
        classes = len(np.unique(y_test[mask])) if rows else 0
        note = (
            f"splits differ (champion v{version}: {_split_text(record.split)}; this run: "
            f"{_split_text(challenger.split)}): compared on the {rows} of {len(test)} test rows "
            f"held out from both ({how})"
        )
        if rows < MIN_COMPARISON_ROWS or classes < 2:
            return refuse(
                f"{note}: too few (at least {MIN_COMPARISON_ROWS} with both classes are needed)"
            )
        log.info("gate: %s", note)
    try:
        model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
        champion_auc = float(roc_auc_score(y_test[mask], score(model, test[mask])))
    except Exception as exc:
        hint = (
            " (a new data set? give it its own lineage with `dataset.name` in params.yaml)"
            if theirs is None
            else ""
        )
        return refuse(
            f"champion v{version} cannot score this run's test data "
            f"({type(exc).__name__}: {exc}){hint}"
        )
    challenger_auc = challenger.test_roc_auc
    if not mask.all():
        ours_model = mlflow.sklearn.load_model(f"models:/{name}/{challenger.version}")
        challenger_auc = float(roc_auc_score(y_test[mask], score(ours_model, test[mask])))
    return ChampionComparison(version, champion_auc, challenger_auc, int(mask.sum()), note)


def undecided_reason(refusal: str, version: str | None) -> str:
    """The gate's reason when it cannot decide: why, and the command that decides."""
    return (
        f"undecided, the champion stays: {refusal}. A person decides: "
        f"`churn promote --force --version {version} --by NAME --reason TEXT`"
    )


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
    versus = compare_with_champion(
        client, settings.model_name, challenger, params, features, settings.project_dir
    )
    if versus.refusal:
        decision = registry.PromotionDecision(
            False,
            undecided_reason(versus.refusal, challenger.version),
            challenger.test_roc_auc,
            challenger.baseline_test_roc_auc,
            versus.version,
        )
        log.warning("gate: %s", decision.reason)
    else:
        decision = registry.decide_promotion(
            challenger.test_roc_auc,
            challenger.baseline_test_roc_auc,
            versus.champion_auc,
            params.promote,
            champion_version=versus.version,
            champion_note=versus.note,
            recall_gap=client.get_run(challenger.run_id).data.metrics.get(
                "fairness_max_recall_gap"
            ),
            max_recall_gap=params.fairness.max_recall_gap,
            challenger_compared_auc=versus.challenger_auc,
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
