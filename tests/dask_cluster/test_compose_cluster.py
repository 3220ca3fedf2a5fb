"""The dask engine on a real cluster: compose's scheduler and two workers as separate processes.

Training (the Prefect flow, as ``churn train`` runs it) and batch scoring reach the cluster
through ``CHURN_DASK_SCHEDULER``, and give what the pandas engine gives on the same rows. Then a
worker is killed (SIGKILL of its process group) while the run's tasks are executing: batch
scoring completes on the worker left with the same output; training fails with one message
naming the lost worker, registers no version and leaves ``dvc.lock`` and the champion alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from churn.config.params import load_params
from churn.config.settings import Settings, get_settings
from churn.data import stages as data_stages
from churn.data.generator import generate_part, part_sizes
from churn.release import registry, tracking
from churn.training import stages as model_stages
from tests.dask_cluster.conftest import ComposeCluster
from tests.scale_scoring.conftest import write_parts
from tools.fork import fork_project

pytestmark = pytest.mark.integration

ROWS, PART_ROWS = 24_000, 6_000
COLLECTIVE_TIMEOUT_S = 20  # engine.collective_timeout_s here: how long a dead peer may hold a run


def _source(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(len(part_sizes(ROWS, PART_ROWS))):
        generate_part(ROWS, 11, i, PART_ROWS).to_parquet(folder / f"c-{i}.parquet", index=False)
    return folder


def _overrides(kind: str, source: Path) -> dict[str, Any]:
    return {
        "engine": {
            "kind": kind,
            "partition_rows": PART_ROWS,
            "collective_timeout_s": COLLECTIVE_TIMEOUT_S,
        },
        "ingest": {"kind": "file", "path": str(source), "feedback": {"path": None}},
        "split": {"method": "hash"},
        "train": {
            "candidates": ["logistic", "xgboost"],
            "search": {"n_trials": 0},
            "xgboost": {"n_estimators": 60},
        },
    }


def _task_names(cluster: ComposeCluster) -> set[str]:
    """The names of every task the scheduler has run (its task prefixes: ``dask.utils.key_split``
    of the keys, which drops a function's leading underscore)."""
    with cluster.client(timeout=10) as client:
        return set(
            client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        )


def _versions(settings: Settings) -> list[str]:
    client = tracking.connect(settings)
    return sorted(v.version for v in client.search_model_versions(f"name='{settings.model_name}'"))


@dataclass
class Runs:
    project: Path
    settings: Settings
    summary: Any  # the dask flow's TrainingSummary
    pandas_model: Any
    pandas_auc: float
    test: pd.DataFrame  # the test split (the same rows on both engines: split by hash)
    tasks: set[str]


@pytest.fixture(scope="module")
def runs(
    compose_cluster: ComposeCluster,
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: str,
) -> Iterator[Runs]:
    """The training flow against the compose cluster, and the pandas engine's stages on the
    same rows; ``CHURN_DASK_SCHEDULER`` stays set for the module's tests."""
    from pipelines.training import training_flow

    root = tmp_path_factory.mktemp("compose-cluster")
    source = _source(root / "source")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_DASK_SCHEDULER", compose_cluster.address)
        project = fork_project(root / "dask", _overrides("dask", source))
        summary = training_flow(str(project), push=False)
        tasks = _task_names(compose_cluster)

        pandas_project = fork_project(root / "pandas", _overrides("pandas", source))
        ps = get_settings(project_dir=pandas_project)
        params = load_params(ps.params_path)
        data_stages.ingest(ps, params)
        data_stages.validate(ps, params)
        data_stages.split(ps, params)
        features = model_stages.featurize(data_stages.load_splits(ps), params)
        trained = model_stages.train(features, params)
        result = model_stages.evaluate_models(features, trained, params)
        yield Runs(
            project=project,
            settings=get_settings(project_dir=project),
            summary=summary,
            pandas_model=result.model,
            pandas_auc=result.metrics["test_roc_auc"],
            test=data_stages.load_splits(ps)["test"],
            tasks=tasks,
        )


def test_training_on_the_compose_cluster_matches_the_pandas_engine(runs: Runs) -> None:
    """The flow ran its stages on the cluster's workers (the scheduler saw the data stages'
    tasks and XGBoost's training tasks), registered a champion, and that model scores the test
    split as the pandas engine's model of the same rows does."""
    assert {"write_file", "validate_part", "split_part"} <= runs.tasks, runs.tasks
    assert any(name in runs.tasks for name in ("fn", "dispatched_train")), runs.tasks
    assert runs.summary.promoted and runs.summary.version
    assert abs(runs.summary.test_roc_auc - runs.pandas_auc) < 0.02, (runs.summary, runs.pandas_auc)
    tracking.connect(runs.settings)
    model = mlflow.sklearn.load_model(f"models:/{runs.settings.model_name}@{registry.CHAMPION}")
    got = model.predict_proba(runs.test)[:, 1]
    want = runs.pandas_model.predict_proba(runs.test)[:, 1]
    assert np.corrcoef(got, want)[0, 1] > 0.97
    assert np.abs(got - want).mean() < 0.03


def _score(settings: Settings, source: Path, out: Path) -> pd.DataFrame:
    from serving.batch import score_partitioned

    summary = score_partitioned(settings, source, out, kind="dask", progress=False)
    parts = sorted(out.glob("part-*.parquet"))
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert summary.rows == len(frame)
    return frame


@pytest.fixture(scope="module")
def scoring_input(
    runs: Runs, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame]:
    """Twelve generated parts, and what the pandas engine's ``score_file`` writes for them."""
    from serving.batch import score_file

    root = tmp_path_factory.mktemp("compose-scoring")
    whole = write_parts(root / "in", 12, 1_000, seed=21)
    whole.to_parquet(root / "whole.parquet", index=False)
    score_file(runs.settings, root / "whole.parquet", root / "whole-out.parquet", progress=False)
    return root / "in", pd.read_parquet(root / "whole-out.parquet")


def test_batch_scoring_on_the_compose_cluster_equals_the_pandas_engine(
    runs: Runs,
    scoring_input: tuple[Path, pd.DataFrame],
    compose_cluster: ComposeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURN_DASK_SCHEDULER", compose_cluster.address)
    source, want = scoring_input
    got = _score(get_settings(project_dir=runs.project), source, tmp_path / "scores")
    pd.testing.assert_frame_equal(got, want)
    assert "score_part" in _task_names(compose_cluster)


def test_batch_scoring_completes_when_a_worker_dies_mid_run(
    runs: Runs,
    scoring_input: tuple[Path, pd.DataFrame],
    compose_cluster: ComposeCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker dies as it starts its second partition (its first is already written into the
    hidden ``.partial`` directory): Dask scores its partitions again on the worker left, and
    the output appears whole, row for row the pandas engine's."""
    monkeypatch.setenv("CHURN_DASK_SCHEDULER", compose_cluster.address)
    source, want = scoring_input
    out = tmp_path / "scores"
    with compose_cluster.killed_on_task("score_part", nth=2) as victim:
        got = _score(get_settings(project_dir=runs.project), source, out)
        assert victim not in compose_cluster.worker_pids(), "the worker was not killed"
    pd.testing.assert_frame_equal(got, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]  # no .partial left


def test_training_fails_clearly_and_publishes_nothing_when_a_worker_dies(
    runs: Runs, compose_cluster: ComposeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies as XGBoost's distributed training starts on it. xgboost.dask cannot go on
    without it: the run fails within the collective timeout (no hang) on one line naming the
    worker and what to do, with no new registered version, the champion unchanged and
    ``dvc.lock`` as it was."""
    from churn.dask.cluster import WorkerLostError
    from pipelines.training import training_flow

    monkeypatch.setenv("CHURN_DASK_SCHEDULER", compose_cluster.address)
    settings = runs.settings
    versions, lock = _versions(settings), (runs.project / "dvc.lock").read_bytes()
    started = time.monotonic()
    with (
        compose_cluster.killed_on_task("fn") as victim,
        pytest.raises(WorkerLostError) as failed,
    ):
        training_flow(str(runs.project), push=False, retrain=True)
    elapsed = time.monotonic() - started
    message = str(failed.value)
    assert "\n" not in message
    assert victim in message and "xgboost.dask training of 'xgboost'" in message, message
    assert "before registering anything" in message and "rerun" in message, message
    assert elapsed < COLLECTIVE_TIMEOUT_S + 90, elapsed
    assert _versions(settings) == versions
    assert (runs.project / "dvc.lock").read_bytes() == lock
    client = tracking.connect(settings)
    champion = client.get_model_version_by_alias(settings.model_name, registry.CHAMPION)
    assert str(champion.version) == runs.summary.version
