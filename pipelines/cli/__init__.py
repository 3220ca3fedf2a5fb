"""The ``churn`` command line: one sub-command per stage, service and tool, one module per group.

It sits at the top of the layers (it may call the library, serving, monitoring, the flows and the
tools), and imports each part inside its command, so ``churn serve`` starts without Prefect and
``churn --help`` starts in a fraction of a second. The Makefile calls these commands.

The groups, as ``churn --help`` shows them: :mod:`~pipelines.cli.data`,
:mod:`~pipelines.cli.training` (and the registry), :mod:`~pipelines.cli.continuous` (the steps of
the training workflow), :mod:`~pipelines.cli.serving`, :mod:`~pipelines.cli.monitoring`,
:mod:`~pipelines.cli.privacy` and :mod:`~pipelines.cli.tools` (from a clone);
:mod:`~pipelines.cli.commands` puts them on one app, and what they share (the app, the ``-C``
option, settings and errors) is :mod:`~pipelines.cli.context`.

:func:`main` is the ``churn`` entry point. It hands ``train`` and ``monitor`` to the warm process
(:mod:`pipelines.warm`, started by ``churn warm``) when one is up for this project and
environment, before importing any command: that hand-off costs a bare interpreter's start.
"""

from __future__ import annotations

import os
import sys

from pipelines import warm

# Commands handed to the warm process: the flows, whose imports dominate their time.
WARM_COMMANDS = frozenset({"train", "monitor"})
# No progress bars on stderr (MLflow's artifact downloads; tqdm anywhere): a command's own lines
# say what it did. MLflow prints through the project's handler (its INFO chatter left out there,
# pipelines/cli/context.py) instead of its own, whose level it sets when imported. A value the
# caller set wins.
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_CONFIGURE_LOGGING": "false",
    "TQDM_DISABLE": "1",
}


def quiet_environment() -> None:
    """Set :data:`QUIET_ENV` in the environment unless the caller did: before a command
    goes to the warm process, which compares the ``MLFLOW_*`` variables with its own (it went
    through the same), and before one runs here."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def main() -> None:
    """The ``churn`` command: ``train`` and ``monitor`` in the warm process when it is up for
    this environment, everything else (and those, without it) in this process."""
    argv = sys.argv[1:]
    quiet_environment()
    code = warm.run_warm(argv) if argv and argv[0] in WARM_COMMANDS else None
    if code is not None:
        sys.exit(code)
    run_app()


def run_app(args: list[str] | None = None) -> None:
    """The command line in this process (``args``, else ``sys.argv[1:]``). An unexpected error
    ends with its traceback, credentials in URLs masked (a library's message may hold the
    tracking URI or a store URL with its password)."""
    from pipelines.cli.commands import app

    quiet_environment()
    try:
        app(args, prog_name="churn")
    except Exception as exc:
        import traceback

        from churn.config.redact import mask_credentials

        shown = "".join(traceback.format_exception(exc))
        print(mask_credentials(shown), file=sys.stderr, end="")
        sys.exit(1)
