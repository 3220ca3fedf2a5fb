"""A rename is the identity block and `uv lock`: a copy of the project with its names changed
there alone trains through the real CLI and registers, names and serves under the new names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import mlflow
import pytest

from churn.config.identity import identity, read_identity
from tools.fork import fork_project

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CODE = ("src", "pipelines", "serving", "monitoring")
NEW = {
    "title": "Acme retention",
    "model_name": "retention",
    "training_name": "retention-training",
    "monitoring_name": "retention-monitoring",
}
NEW_PROJECT = "acme-retention"
TINY = {
    "ingest": {"generator": {"n_rows": 1500, "seed": 7}},
    "train": {"search": {"n_trials": 0}, "candidates": ["logistic", "xgboost"]},
}


def renamed_copy(dest: Path) -> Path:
    """The project's code and pyproject.toml, renamed by editing the identity block alone."""
    for name in CODE:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    text = (dest / "pyproject.toml").read_text()
    old = identity()
    text = text.replace(f'name = "{old.project}"', f'name = "{NEW_PROJECT}"', 1)
    for key, value in NEW.items():
        text, n = re.subn(
            rf'(?m)^{key} = "{re.escape(getattr(old, key))}"', f'{key} = "{value}"', text
        )
        assert n == 1, key
    (dest / "pyproject.toml").write_text(text)
    return dest


def test_a_renamed_project_trains_registers_and_serves_under_its_new_names(
    tmp_path: Path, prefect_api: str
) -> None:
    code = renamed_copy(tmp_path / "code")
    renamed = read_identity(code / "pyproject.toml")
    assert (renamed.project, renamed.model_name) == (NEW_PROJECT, NEW["model_name"])

    # The lock follows with `uv lock` (offline: only the project's own name changed).
    uv = shutil.which("uv") or pytest.fail("uv is not on PATH")
    stale = subprocess.run(
        [uv, "lock", "--check", "--offline"], cwd=code, capture_output=True, text=True
    )
    assert stale.returncode != 0, "the lock should be stale after the rename"
    locked = subprocess.run([uv, "lock", "--offline"], cwd=code, capture_output=True, text=True)
    assert locked.returncode == 0, locked.stderr
    lock = (code / "uv.lock").read_text()
    assert f'name = "{NEW_PROJECT}"' in lock and f'name = "{identity().project}"' not in lock

    # The copy's code (its identity block) ahead of the installed package's.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code / "src"), str(code)])}
    project = fork_project(tmp_path / "project", TINY)
    cli = [sys.executable, "-m", "pipelines.cli", "-C", str(project)]
    trained = subprocess.run(
        [*cli, "train"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]

    store = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    client = mlflow.MlflowClient(store, store)  # registry too: not this process's last one
    assert [m.name for m in client.search_registered_models()] == [NEW["model_name"]]
    versions = client.search_model_versions(f"name='{NEW['model_name']}'")
    assert [str(v.version) for v in versions] == ["1"], trained.stderr[-2000:]
    assert f"{NEW['model_name']} v1: " in trained.stderr  # the run's summary names it
    experiments = {e.name for e in client.search_experiments()}
    assert NEW["training_name"] in experiments and identity().training_name not in experiments
    flow = httpx.get(f"{prefect_api}/flows/name/{NEW['training_name']}", timeout=10)
    assert flow.status_code == 200, flow.text

    # The API's title, the CLI's help and the names CD reads follow the block too.
    title = subprocess.run(
        [sys.executable, "-c", "from serving.app import create_app; print(create_app().title)"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert title.stdout.strip() == f"{NEW['title']} prediction service"
    helped = subprocess.run([*cli, "--help"], env=env, capture_output=True, text=True, check=True)
    assert f"{NEW['title']}: data stages" in helped.stdout
    names = subprocess.run(
        [sys.executable, "-I", "-S", str(code / "src/churn/config/identity.py"), "image"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert names.stdout.strip() == NEW_PROJECT
