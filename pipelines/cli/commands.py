"""The ``churn`` app, every command group on it: what ``churn --help`` lists and tests invoke.

Each group adds its commands to the app when imported; the order below is the help's order.
"""

from __future__ import annotations

# isort: off
from pipelines.cli import data, training, continuous, serving, monitoring, privacy, tools  # noqa: F401

# isort: on
from pipelines.cli.context import app

__all__ = ["app"]
