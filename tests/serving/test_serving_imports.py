"""The serving image's environment: the project's dependencies without the `pipeline` extra.

The Dockerfile's serving target installs ``uv sync --frozen --no-dev`` (no Prefect, DVC,
Evidently or pandera). These tests build that environment from the lock and run the API and
batch scoring from it, so an import of a pipeline-only package on the serving path fails here
and not in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from churn.config.identity import identity

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_ONLY = ("prefect", "dvc", "evidently", "pandera")


@pytest.fixture(scope="module")
def serving_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment as the serving image has it, built from ``uv.lock``."""
    venv = tmp_path_factory.mktemp("serving-env") / "venv"
    uv = os.environ.get("UV") or shutil.which("uv")
    command = [uv] if uv else [sys.executable, "-m", "uv"]
    done = subprocess.run(
        # --reinstall-package: build the project from the tree as it is now, not a cached wheel
        # (uv keys its cache of a local project on pyproject.toml's modification time, not the
        # sources: a wheel built from an earlier tree would be installed again).
        [
            *command,
            *("sync", "--frozen", "--no-dev", "--no-editable", "--quiet"),
            *("--reinstall-package", identity().project),
        ],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin" / "python"


def test_the_pipeline_extra_is_left_out(serving_python: Path) -> None:
    for module in PIPELINE_ONLY:
        done = subprocess.run(
            [serving_python, "-c", f"import {module}"], capture_output=True, text=True, check=False
        )
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module


def test_the_api_serves_the_champion(
    serving_python: Path,
    served_project: Path,
    live_server: Callable[..., Any],
    records: Callable[..., list[dict[str, Any]]],
) -> None:
    server = live_server(served_project, python=serving_python)
    ready = httpx.get(server.url + "/ready", timeout=30).json()
    assert ready["status"] == "ready" and ready["source"] == "registry", ready
    answer = httpx.post(server.url + "/predict", json={"records": records(3)}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == ready["model_version"]
    assert len(answer.json()["predictions"]) == 3


def test_batch_scoring_runs(
    serving_python: Path,
    served_project: Path,
    tmp_path: Path,
    records: Callable[..., list[dict[str, Any]]],
) -> None:
    source, target = tmp_path / "in.csv", tmp_path / "out.parquet"
    pd.DataFrame(records(50, seed=4)).to_csv(source, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))}
    command = [serving_python, "-m", "pipelines.cli", "-C", served_project, "batch-predict"]
    command += [source, target]
    done = subprocess.run(
        [str(part) for part in command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scores = pd.read_parquet(target)
    assert len(scores) == 50 and scores["churn_probability"].between(0, 1).all()
    assert (scores["model_version"] != "fallback-rules").all()


def test_the_tools_are_not_shipped_and_say_where_they_run(
    serving_python: Path, tmp_path: Path
) -> None:
    """The demo, simulator and benchmarks live in the repository's tools/, not in the package."""
    done = subprocess.run(
        [serving_python, "-c", "import tools"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
    demo = subprocess.run(
        [serving_python, "-m", "pipelines.cli", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "run it from a clone of the repository" in demo.stderr


def test_the_installed_package_reads_the_identity_it_was_built_with(
    serving_python: Path, tmp_path: Path
) -> None:
    """The image installs the wheel, away from pyproject.toml: the copy it carries is read."""
    code = "from churn.config.identity import candidates, identity as i; "
    code += "print(candidates()[0].is_file()); print(sorted(i().as_dict().items()))"
    done = subprocess.run(
        [serving_python, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    shipped, names = done.stdout.splitlines()
    assert shipped == "True" and names == str(sorted(identity().as_dict().items()))
