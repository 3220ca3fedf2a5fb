"""The ``churn`` command line: one sub-command per stage, service and tool, one module per group.

It sits at the top of the layers (it may call the library, serving, monitoring, the flows and the
tools), and imports each part inside its command, so ``churn serve`` starts without Prefect and
``churn --help`` starts in a fraction of a second. The Makefile calls these commands.

The groups, as ``churn --help`` shows them: :mod:`~pipelines.cli.data`,
:mod:`~pipelines.cli.training` (and the registry), :mod:`~pipelines.cli.continuous` (the steps of
the training workflow), :mod:`~pipelines.cli.serving`, :mod:`~pipelines.cli.monitoring`,
:mod:`~pipelines.cli.privacy` and :mod:`~pipelines.cli.tools` (from a clone); what they share
(the app, the ``-C`` option, settings and errors) is :mod:`~pipelines.cli.context`.
"""

from __future__ import annotations

# Each group adds its commands to the app when imported: the order is the help's order.
# isort: off
from pipelines.cli import data, training, continuous, serving, monitoring, privacy, tools  # noqa: F401

# isort: on
from pipelines.cli.context import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``churn`` command."""
    app(prog_name="churn")
