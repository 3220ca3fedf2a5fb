"""The rules of import direction hold: no package imports one above it (import-linter), between
the top-level packages and between the library's lifecycle packages, and no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_import_runs_up_the_layers():
    """``lint-imports`` reads every import, inside functions too, against pyproject's contract."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
    # Every contract was checked (one missing from pyproject would leave its rule unchecked).
    assert "layers: tools > pipelines > serving | monitoring > churn KEPT" in done.stdout
    assert "churn: dask > feature_store > release > training > models > scoring" in done.stdout
    assert "only churn.dask imports dask: the rest goes through churn.engine KEPT" in done.stdout
    assert "only churn.feature_store imports feast (via churn.feature_source) KEPT" in done.stdout
    assert "no import cycles KEPT" in done.stdout
