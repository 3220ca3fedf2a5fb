"""How a project's data reaches the pipeline image: never in it (``.dockerignore``), pulled from
the DVC remote. A folder laid out as the image's ``/app`` (what the Dockerfile copies, DVC
initialised without git as the image does) is given the trained project's remote through the
image's entrypoint (``CHURN_DVC_REMOTE_URL``), and ``churn pull-data`` brings back the exact
files ``dvc.lock`` records."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from churn.data.versioning import locked_data_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_dockerignore_keeps_data_out_and_lets_dvc_pointers_and_the_lock_in() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules.index("data/**") < rules.index("!data/**/*.dvc")  # the later rule wins
    assert not {"dvc.lock", "params.yaml", "dvc.yaml"} & set(rules)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY --chown=churn:churn params.yaml dvc.yaml dvc.lock ./" in dockerfile
    assert "COPY --chown=churn:churn data/ ./data/" in dockerfile


def test_the_pipeline_image_pulls_the_locked_data_from_the_dvc_remote(
    trained_project: tuple[Path, Any], tmp_path: Path
) -> None:
    project, _ = trained_project
    # What a user does before building the image (`dvc push`, then `make tag-data`): the remote
    # holds the locked version, whatever other tests of this session ran in the project since.
    pushed = subprocess.run(
        [str(BIN / "dvc"), "push", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    app = tmp_path / "app"
    (app / "data").mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml", "dvc.lock"):
        shutil.copy(project / name, app / name)
    for pointer in (project / "data").rglob("*.dvc"):  # what .dockerignore lets in
        target = app / pointer.relative_to(project)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pointer, target)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "CHURN_ENVIRONMENT": "production",
        "CHURN_PROJECT_DIR": str(app),
        "CHURN_DVC_REMOTE_URL": str(project / ".dvcstore"),  # the trained project's remote
    }

    def run(*cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, cwd=app, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    for step in (("dvc", "init", "--no-scm", "-q"), ("dvc", "config", "core.analytics", "false")):
        assert run(*step).returncode == 0  # the Dockerfile's pipeline stage
    entrypoint = str(ROOT / "deploy" / "pipeline-entrypoint.sh")
    pulled = run("sh", entrypoint, "churn", "pull-data")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "files fetched from the remote" in pulled.stdout + pulled.stderr
    files = locked_data_files(app)
    assert files and files == locked_data_files(project)
    # The data files (DVC-cached outs; a stage's small uncached report is not on the remote).
    data = {p: md5 for p, md5 in files.items() if p.endswith(".parquet")}
    assert {"data/raw/customers.parquet", "data/splits/train.parquet"} <= set(data)
    for path, md5 in data.items():
        assert hashlib.md5((app / path).read_bytes()).hexdigest() == md5, path  # noqa: S324 (DVC's)
