"""Shared fixtures: throw-away copies of the project with their own MLflow store and DVC remote."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.fork import fork_project


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test touches the developer's MLflow store, Prefect database or .env."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "CHURN_")) or name == "PREFECT_API_URL":
            del os.environ[name]
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    yield
    os.environ.clear()
    os.environ.update(saved)
    # Prefect stops its temporary server at interpreter exit and logs that to a stream pytest
    # has already closed; the message is harmless, the traceback it would print is noise.
    logging.raiseExceptions = False


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(100))
    return lambda overrides=None: fork_project(tmp_path / f"project{next(counter)}", overrides)


SMALL = {"ingest": {"generator": {"n_rows": 2500, "seed": 7}}, "train": {"search": {"n_trials": 1}}}


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One real training flow run (Prefect, DVC, MLflow) on small generated data, shared."""
    from pipelines.training import training_flow

    project = fork_project(tmp_path_factory.mktemp("trained") / "project", SMALL)
    summary = training_flow(str(project), push=True)
    return project, summary
