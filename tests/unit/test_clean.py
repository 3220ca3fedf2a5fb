"""Same-clone hygiene (issue #25): `make clean` returns `git status --ignored` to a fresh clone's,
the user's data files are git-ignored, and `make` reuses only this project's Prefect server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.prefect_port import port_for

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def _status(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--ignored", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.splitlines())


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_clean_returns_a_used_clone_to_a_fresh_clones_status(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone)], check=True)
    fresh = _status(clone)
    # What a day of use leaves behind (the offenders of issue #25 included).
    for folder in (
        "data/raw",
        "data/splits",
        "data/feedback",
        "mlruns",
        "reports/monitoring/churn",
        "evidently-workspace/p",
        ".cache/numba",
        ".prefect",
        ".dvc/cache/files",
        "prediction-journal",
        ".serving-cache/churn@champion",
        "site/reference",  # make docs-build
    ):
        (clone / folder).mkdir(parents=True, exist_ok=True)
        (clone / folder / "x").write_text("x")
    (clone / "src/churn/scoring/__pycache__").mkdir(parents=True, exist_ok=True)
    (clone / "src/churn/scoring/__pycache__/walk.margins-1.py311.nbi").write_text("x")
    (clone / "dvc.lock").write_text((clone / "dvc.lock").read_text() + "# changed by a run\n")
    user_file = clone / "data" / "customers.csv"
    user_file.write_text("a,b\n1,2\n")
    assert "?? data/customers.csv" not in _status(clone)  # the user's data is ignored
    done = subprocess.run(["make", "clean"], cwd=clone, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    left = [line for line in _status(clone) if line not in fresh]
    assert left == ["!! data/customers.csv"], left  # only the user's own file stays
    assert not (clone / "src/churn/scoring/__pycache__/walk.margins-1.py311.nbi").exists()


def test_only_this_projects_prefect_server_is_reused(tmp_path: Path) -> None:
    home, project = tmp_path / ".prefect", tmp_path
    home.mkdir()
    with socket.socket() as other:  # another project's server on the "default" port
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        assert port_for(home, project, busy) != busy
        # This project's server (a live process named prefect), recorded by make prefect-server:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "prefect"])
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        for _ in range(100):  # until the child runs its own program (not pytest's)
            if b"prefect" in cmdline.read_bytes():
                break
            time.sleep(0.05)
        try:
            marker = {"pid": proc.pid, "port": busy, "project": str(project)}
            (home / "server.json").write_text(json.dumps(marker))
            assert port_for(home, project, busy) == busy
            # ... but not from another project's folder.
            assert port_for(home, tmp_path / "elsewhere", busy) != busy
        finally:
            proc.kill()
            proc.wait()
        assert port_for(home, project, busy) != busy  # its pid is gone: not reused
