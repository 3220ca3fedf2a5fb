"""What `make train` imports before it knows whether anything must be trained.

A run with nothing changed (``churn.training.cache``) stops after the data stages; the flow
module and the modules on that path leave the model libraries to the tasks that train, which
saves their import time (about two seconds) on every unchanged `make train` (docs/benchmarks.md).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

MODEL_LIBRARIES = ("sklearn", "xgboost", "matplotlib", "pandera", "distributed")


@pytest.mark.parametrize(
    "module",
    ["pipelines.training", "churn.data.stages", "churn.release.tracking", "churn.training.cache"],
)
def test_the_unchanged_training_path_imports_no_model_library(module: str) -> None:
    code = (
        f"import sys, {module}; print(','.join(m for m in {MODEL_LIBRARIES!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"{module} imports {done.stdout.strip()}"
