"""Shared fixtures: throw-away copies of the project with their own MLflow store and DVC remote."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def make_project(where: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A fresh copy of the template (as a fork would be) with its own git repo and DVC remote.

    The copy holds what DVC hashes (``dvc.yaml``, ``params.yaml``, the stage code under ``src/``);
    the code that runs is the installed package, the same files.
    """
    where.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "src", where / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", where / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (where / "params.yaml").write_text(yaml.safe_dump(_deep_merge(params, overrides or {})))
    (where / ".gitignore").write_text("/data/\n/mlruns/\n/.dvcstore/\n")
    run = lambda *cmd: subprocess.run(cmd, cwd=where, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("dvc", "remote", "add", "-d", "local", str(where / ".dvcstore"))
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fork")
    return where


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
    return lambda overrides=None: make_project(tmp_path / f"project{next(counter)}", overrides)


SMALL = {"ingest": {"generator": {"n_rows": 2500, "seed": 7}}, "train": {"search": {"n_trials": 1}}}


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One real training flow run (Prefect, DVC, MLflow) on small generated data, shared."""
    from pipelines.training import training_flow

    project = make_project(tmp_path_factory.mktemp("trained") / "project", SMALL)
    summary = training_flow(str(project), push=True)
    return project, summary
