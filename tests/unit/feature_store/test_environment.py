"""Importing the plug-in leaves the process's metrics as they were (Feast's metrics module
exports a multiprocess folder for prometheus_client, which made a service's counters add up
across processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip(
    "feast", reason="the optional feast group is not installed (uv sync --extra feast)"
)

PROBE = """
import os
import churn.feature_store
import feast.metrics  # what a materialisation or a historical query imports
from prometheus_client import values
names = sorted(k for k in os.environ if k.startswith("PROMETHEUS_MULTIPROC"))
print(values.ValueClass.__name__, names)
"""


@pytest.mark.slow
def test_the_plug_in_leaves_no_multiprocess_folder_in_the_environment() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PROMETHEUS_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["MutexValue", "[]"], out.stdout + out.stderr
