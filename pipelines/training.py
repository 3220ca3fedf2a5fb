"""The training flow: ``churn.data.stages``, ``model_stages`` and ``promotion`` as tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from churn import engine, feature_source, models
from churn.champion import ChampionInfo, ServingCheck
from churn.config.feature_store import StoreVersion
from churn.config.identity import identity
from churn.config.params import DatasetConfig, Params, load_params
from churn.config.settings import Settings, get_settings
from churn.data import stages as data_stages
from churn.data import versioning
from churn.data.ingest import source_is_volatile
from churn.release import tracking
from churn.training import cache as training_cache
from pipelines import artifacts
from pipelines.timing import StageTimer, unless_data_error

# The model stages (scikit-learn, XGBoost, matplotlib, Dask) are imported by the tasks that
# use them: a run with nothing to train (churn.training.cache) stops before them, and `make
# train` then pays only for Prefect, DVC and MLflow (tests/unit/test_import_cost.py).
if TYPE_CHECKING:
    from churn.release import promotion
    from churn.training import stages as model_stages
    from churn.training.train import TrainedModels

# Data stages go through DVC, which reuses their cached outputs when nothing they depend on
# changed; ingestion and the push touch files or the network, so they retry (ingestion never on a
# data error). Task inputs are frames and models: Prefect's input-hash caching is off (NO_CACHE),
# DVC does the caching.


@task(
    name="ingest",
    retries=2,
    retry_delay_seconds=3,
    retry_condition_fn=unless_data_error,
    cache_policy=NO_CACHE,
)
def ingest_task(
    settings: Settings, params: Params, force: bool = False, reread_volatile: bool = True
) -> bool:
    run = partial(data_stages.ingest, settings, params)
    if reread_volatile:
        force = force or source_is_volatile(params.ingest, settings.project_dir)
    return versioning.reproduce_stage("ingest", settings.project_dir, run, force=force)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(settings: Settings, params: Params) -> bool:
    run = partial(data_stages.validate, settings, params)
    return versioning.reproduce_stage("validate", settings.project_dir, run)


@task(name="split", cache_policy=NO_CACHE)
def split_task(settings: Settings, params: Params) -> bool:
    run = partial(data_stages.split, settings, params)
    return versioning.reproduce_stage("split", settings.project_dir, run)


@task(name="reuse-check", cache_policy=NO_CACHE)
def reuse_check_task(settings: Settings, params: Params) -> tuple[str, ChampionInfo | None]:
    """The training fingerprint, and the registered version that already has it (or None)."""
    files = versioning.locked_data_files(settings.project_dir)
    fingerprint = training_cache.fingerprint(params, files)
    found = training_cache.find_trained(
        tracking.connect(settings), settings.model_name, fingerprint
    )
    if found is None:
        return fingerprint, None
    return fingerprint, ChampionInfo.from_version(found)


@task(name="events", cache_policy=NO_CACHE)
def events_task(settings: Settings, params: Params) -> bool:
    run = partial(data_stages.events, settings, params)
    return versioning.reproduce_stage("events", settings.project_dir, run)


@task(name="feature-store", cache_policy=NO_CACHE)
def feature_store_task(settings: Settings, params: Params) -> StoreVersion:
    store = feature_source.feature_store(params)
    assert store is not None  # the flow asks only with feature_store.enabled
    return store.build(settings, params)


@task(name="featurize", cache_policy=NO_CACHE)
def featurize_task(settings: Settings, params: Params) -> model_stages.FeatureSet:
    """The splits encoded; with the feature store, each row first gets the store's features as
    of its label time (``churn.training.store_features``)."""
    from churn.training import stages as model_stages

    splits = data_stages.load_splits(settings)
    store = feature_source.feature_store(params)
    if store is None:
        return model_stages.featurize(splits, params)
    from churn.training.store_features import join_store_features, with_store_params

    joined = join_store_features(settings, params, splits, store)
    return model_stages.featurize(joined, with_store_params(params))


@task(name="train", cache_policy=NO_CACHE)
def train_task(features: model_stages.FeatureSet, params: Params) -> TrainedModels:
    from churn.training import stages as model_stages

    return model_stages.train(features, params)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(
    features: model_stages.FeatureSet, trained: TrainedModels, params: Params
) -> model_stages.Evaluation:
    from churn.training import stages as model_stages

    return model_stages.evaluate_models(features, trained, params)


# A plug-in engine's featurize / train / evaluate (churn.engine.plugin), on the run's session.
@task(name="featurize", cache_policy=NO_CACHE)
def plugin_featurize_task(settings: Settings, params: Params) -> engine.Features:
    return engine.plugin(params.engine.kind).featurize(settings, params)


@task(name="train", cache_policy=NO_CACHE)
def plugin_train_task(
    settings: Settings, features: engine.Features, params: Params
) -> TrainedModels:
    trained: TrainedModels = engine.plugin(params.engine.kind).train(settings, features, params)
    return trained


@task(name="evaluate", cache_policy=NO_CACHE)
def plugin_evaluate_task(
    features: engine.Features, trained: TrainedModels, params: Params
) -> model_stages.Evaluation:
    result: model_stages.Evaluation = engine.plugin(params.engine.kind).evaluate(
        features, trained, params
    )
    return result


@task(name="check-serving", cache_policy=NO_CACHE)
def check_serving_task(
    result: model_stages.Evaluation, dataset: DatasetConfig, features: model_stages.FeatureSet
) -> ServingCheck:
    return models.check_serving(result.model, dataset, features.frames["test"])


@task(name="push-data", retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE)
def push_task(project_dir: Path) -> int:
    return versioning.push_data(project_dir)


@task(name="record", cache_policy=NO_CACHE)
def record_task(
    settings: Settings,
    params: Params,
    features: model_stages.FeatureSet,
    trained: TrainedModels,
    result: model_stages.Evaluation,
    serving_check: ServingCheck,
    store: StoreVersion | None,
) -> promotion.TrainingRun:
    from churn.release import promotion

    return promotion.build_run(settings, params, features, trained, result, serving_check, store)


@task(name="register", retries=1, retry_delay_seconds=3, cache_policy=NO_CACHE)
def register_task(settings: Settings, run: promotion.TrainingRun) -> ChampionInfo:
    from churn.release import promotion

    return promotion.log_and_register(settings, run)


@task(name="remember", cache_policy=NO_CACHE)
def remember_task(settings: Settings, version: str, fingerprint: str) -> None:
    tracking.connect(settings).set_model_version_tag(
        settings.model_name, version, training_cache.TAG, fingerprint
    )


@task(name="gate", cache_policy=NO_CACHE)
def gate_task(
    settings: Settings,
    params: Params,
    features: model_stages.FeatureSet,
    challenger: ChampionInfo,
    move_champion: bool = True,
) -> promotion.Registered:
    from churn.release import promotion

    return promotion.gate(settings, params, features, challenger, move_champion=move_champion)


@dataclass
class TrainingSummary:
    """What one flow run did, for the console and for callers (tests, the monitoring flow)."""

    version: str
    promoted: bool
    reason: str
    # The gate's verdict; with promote=False an approved version is not champion yet.
    approved: bool
    run_id: str
    data_version: str
    test_roc_auc: float
    baseline_test_roc_auc: float
    # The fallback rules' ROC AUC on the same test split (None with one class in it).
    rules_test_roc_auc: float | None
    data_stages_ran: dict[str, bool]
    # None when nothing was trained (``reused``) and the version predates the check.
    serving_check: ServingCheck | None
    seconds: dict[str, float] = field(default_factory=dict)
    # True: nothing changed since ``version`` was trained (churn.training.cache); no new version.
    reused: bool = False
    # The candidates side by side (``churn.training.comparison``) and the one that went to the gate.
    selected: str = ""
    comparison: str = ""
    max_recall_gap: float | None = None
    # Candidates of train.candidates the engine did not train, each with why.
    refused: dict[str, str] = field(default_factory=dict)


@flow(name=identity().training_name, log_prints=True)
def training_flow(
    project_dir: str = ".",
    force_ingest: bool = False,
    push: bool = True,
    promote: bool = True,
    frozen_data: bool = False,
    retrain: bool = False,
) -> TrainingSummary:
    """Ingest -> validate -> split -> featurize -> train -> evaluate -> check serving ->
    push data -> record -> register -> gate.

    Args:
        project_dir: the project root (holds ``params.yaml``, ``dvc.yaml`` and ``data/``).
        force_ingest: re-read the source even if its parameters did not change (a URL or SQL
            source whose content moved on).
        push: push the data version to the DVC remote before registering the model.
        promote: let the gate move ``champion``. False: the gate still decides and records its
            decision (``approved`` or ``rejected``) on the new version, and the champion stays;
            the continuous-training job checks the version, then ``churn promote`` moves it.
        frozen_data: train on exactly the data ``dvc.lock`` records (a pulled data tag): a
            file, URL or SQL source is not re-read, and the run fails if the data stages change
            the data version (a stage DVC re-runs must give the same files, as the validation
            report does, which lives in the workspace only and is not pulled).
        retrain: train even when a registered version already has this run's training
            fingerprint (the same data, ``params.yaml``, code and libraries:
            ``churn.training.cache``); by default such a run stops after the data stages.
            With ``promote=False`` (the continuous-training job's challenger) it always trains.
    """
    settings = get_settings(project_dir=Path(project_dir))
    params = load_params(settings.params_path)
    models.check_params(params)  # the candidates and their blocks, before any stage
    # A plug-in engine (engine.kind: dask) opens one cluster (or connects to CHURN_DASK_SCHEDULER)
    # for the run.
    with engine.session(settings, params.engine):
        return _run(settings, params, force_ingest, push, promote, frozen_data, retrain)


def _run(
    settings: Settings,
    params: Params,
    force_ingest: bool,
    push: bool,
    promote: bool,
    frozen_data: bool,
    retrain: bool,
) -> TrainingSummary:
    root = settings.project_dir
    timed = StageTimer()

    if frozen_data:
        locked = versioning.data_version(versioning.locked_data_files(root))
    ran = {
        "ingest": timed("ingest", ingest_task, settings, params, force_ingest, not frozen_data),
        "validate": timed("validate", validate_task, settings, params),
        # the activity events (the feature store's data), versioned with the rest even when the
        # store is off, so that dvc.yaml's stages are all current after a run
        "events": timed("events", events_task, settings, params),
        "split": timed("split", split_task, settings, params),
    }
    if frozen_data:
        now = versioning.data_version(versioning.locked_data_files(root))
        if now != locked:
            stale = ", ".join(name for name, did in ran.items() if did)
            raise versioning.VersioningError(
                f"--frozen-data: the data stages ({stale}) were out of date at this commit and "
                f"moved the data from version {locked} to {now}; commit the dvc.lock that "
                "`make data` writes, `dvc push`, and tag that commit (`make tag-data`)"
            )
    fingerprint, reused = timed("reuse-check", reuse_check_task, settings, params)
    if reused is not None and promote and not retrain:
        return _report(settings, _reused_summary(reused, fingerprint, ran, timed.seconds))
    store: StoreVersion | None = None  # the feature store the rows were joined to, when on
    if params.engine.kind != "pandas":
        on_cluster = timed("featurize", plugin_featurize_task, settings, params)
        trained = timed("train", plugin_train_task, settings, on_cluster, params)
        result = timed("evaluate", plugin_evaluate_task, on_cluster, trained, params)
        features = on_cluster.sample  # bounded samples for the serving check, record and gate
    else:
        if params.feature_store.enabled:
            from churn.training.store_features import with_store_params

            store = timed("feature-store", feature_store_task, settings, params)
        features = timed("featurize", featurize_task, settings, params)
        if store is not None:  # from here on the store's features are columns of the data set
            params = with_store_params(params)
        trained = timed("train", train_task, features, params)
        result = timed("evaluate", evaluate_task, features, trained, params)
    check = timed("check-serving", check_serving_task, result, params.dataset, features)
    from churn.training import comparison

    if push and settings.dvc_push:
        timed("push-data", push_task, root)
    run = timed("record", record_task, settings, params, features, trained, result, check, store)
    challenger = timed("register", register_task, settings, run)
    assert challenger.version is not None
    timed("remember", remember_task, settings, challenger.version, fingerprint)
    registered = timed("gate", gate_task, settings, params, features, challenger, promote)
    summary = TrainingSummary(
        version=registered.version,
        promoted=registered.promoted,
        reason=registered.decision.reason,
        approved=registered.decision.promote,
        run_id=registered.run_id,
        data_version=registered.record.data_version,
        test_roc_auc=registered.record.test_roc_auc,
        baseline_test_roc_auc=registered.record.baseline_test_roc_auc,
        rules_test_roc_auc=registered.record.rules_test_roc_auc,
        data_stages_ran=ran,
        serving_check=check,
        seconds=timed.seconds,
        selected=result.selected,
        comparison=comparison.markdown(result.comparison),
        max_recall_gap=result.segments.max_recall_gap if result.segments else None,
        refused=trained.refused,
    )
    return _report(settings, summary)


def _reused_summary(
    record: ChampionInfo, fingerprint: str, ran: dict[str, bool], seconds: dict[str, float]
) -> TrainingSummary:
    assert record.version is not None and record.run_id is not None
    return TrainingSummary(
        version=record.version,
        promoted=False,
        reason=(
            f"nothing changed since v{record.version} was trained (same data version "
            f"{record.data_version}, params.yaml, code and libraries: training fingerprint "
            f"{fingerprint}); not trained again: `churn train --retrain` trains anyway"
        ),
        approved=False,
        run_id=record.run_id,
        data_version=record.data_version,
        test_roc_auc=record.test_roc_auc,
        baseline_test_roc_auc=record.baseline_test_roc_auc,
        rules_test_roc_auc=record.rules_test_roc_auc,
        data_stages_ran=ran,
        serving_check=record.serving_check,
        seconds=seconds,
        reused=True,
    )


def _report(settings: Settings, summary: TrainingSummary) -> TrainingSummary:
    """Print the summary and give the flow run its artefact (links and the same text)."""
    text = format_summary(summary, settings.model_name)
    print(text)
    artifacts.publish(
        lambda: artifacts.training_links(settings, summary.run_id, summary.version),
        f"```\n{text}\n```",
        key="training",
    )
    return summary


def format_summary(summary: TrainingSummary, model_name: str) -> str:
    """A short, readable account of the run and where the time went."""
    if summary.reused:
        verdict = "unchanged, not trained again"
    elif summary.promoted:
        verdict = "PROMOTED to champion"
    elif summary.approved:
        verdict = (
            "approved, awaiting checks (champion unchanged; next: `churn check-challenger`, "
            f"then `churn promote --version {summary.version}`)"
        )
    else:
        verdict = "not promoted (champion unchanged)"
    lines = []
    if summary.comparison:
        lines += [
            f"Candidates (selected: {models.title(summary.selected)}; test split, "
            "each at its own cost threshold):",
            summary.comparison,
            *(f"  not trained: {reason}" for reason in summary.refused.values()),
        ]
    lines += [
        f"{model_name} v{summary.version}: {verdict}",
        f"  reason: {summary.reason}",
        f"  test ROC AUC {summary.test_roc_auc:.4f} (baseline {summary.baseline_test_roc_auc:.4f}, "
        f"fallback rules {_auc(summary.rules_test_roc_auc)})",
        f"  data version {summary.data_version}; mlflow run {summary.run_id}",
        *(
            [f"  largest recall gap between segments {summary.max_recall_gap:.3f}"]
            if summary.max_recall_gap is not None
            else []
        ),
        f"  serving scorer: {_scorer_line(summary.serving_check)}",
        "  stage seconds: "
        + ", ".join(
            f"{k} {v:.1f}" + (" (cached)" if summary.data_stages_ran.get(k) is False else "")
            for k, v in summary.seconds.items()
        ),
    ]
    return "\n".join(lines)


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _scorer_line(check: ServingCheck | None) -> str:
    if check is None:
        return "not recorded on this version"
    one_row = "" if check.one_row_ms is None else f"; one row {check.one_row_ms:.3f} ms"
    if check.compiled:
        return (
            f"compiled (max |difference| {check.max_abs_diff:.1e} on {check.rows} test "
            f"rows{one_row})"
        )
    if check.scorer == "predict_proba":
        return (
            f"the model's own predict_proba after the replayed features (max |difference| "
            f"{check.max_abs_diff:.1e} on {check.rows} test rows{one_row}): {check.reason}"
        )
    return f"pipeline (slower): {check.reason}"


if __name__ == "__main__":
    training_flow()
