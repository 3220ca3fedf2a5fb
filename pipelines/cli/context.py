"""What every command group shares: the one Typer app, its help panels, the project option, and
how a command loads settings and ``params.yaml`` or fails with one clear message."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from churn.config.identity import identity
from churn.config.redact import mask_credentials, mask_logging

console = Console(stderr=True, soft_wrap=True)  # paths and messages are never cut

DATA, TRAIN, CT, SERVE, MONITOR, PRIVACY, TOOLS = (
    "Data (init-dataset, then the stages dvc.yaml runs)",
    "Training and the registry",
    "Continuous training (the steps of .github/workflows/train.yml)",
    "Serving",
    "Monitoring",
    "Privacy",
    "Tools (from a clone: not in the package or the images)",
)

app = typer.Typer(
    help=f"{identity().title}: data stages, training, the registry, serving, monitoring and tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@dataclass
class _Options:
    project_dir: Path


@app.callback()
def _main(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Option(
            "--project-dir",
            "-C",
            envvar="CHURN_PROJECT_DIR",
            help="Project root (holds params.yaml); default: CHURN_PROJECT_DIR, else here.",
            show_default=False,
        ),
    ] = Path(),
) -> None:
    ctx.obj = _Options(project_dir.resolve())
    from pipelines import gc_policy

    gc_policy.no_collection_at_exit()  # seconds after a flow (pipelines/gc_policy.py)
    # skops (MLflow's format for scikit-learn models) looks up the module of every NumPy and
    # SciPy ufunc when it is imported, scanning sys.modules in import order until a match: with
    # these two loaded before Prefect, MLflow and the rest, each scan stops within the first
    # few hundred modules (skops' import in `churn train`: 0.8 s instead of 3.4 s).
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401

    terminal = logging.StreamHandler()
    terminal.setFormatter(RunNamingFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[terminal])  # a no-op when one is set up
    mask_logging()  # a URL a library logs (MLflow, Prefect, SQLAlchemy) shows no password
    quiet_libraries()


# Libraries' INFO lines that repeat what the project's own lines say, or describe their internals
# ("Creating initial MLflow database tables", alembic's migrations, one line per HTTP request):
# their warnings and errors still show.
QUIET_LOGGERS = ("httpx", "mlflow", "alembic")


def quiet_libraries() -> None:
    """Keep the terminal to the project's lines: no libraries' chatter."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class RunNamingFormatter(logging.Formatter):
    """``LEVEL logger: message``, and for Prefect's run loggers the run it is about.

    Prefect's ``Finished in state Completed()`` names neither the task nor the flow unless the
    format says so (Prefect's own console format does; the project's replaces it): a task's line
    reads ``INFO task 'train-2b1': Finished in state Completed()``.
    """

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        for kind in ("task", "flow"):
            run = getattr(record, f"{kind}_run_name", None)
            if record.name == f"prefect.{kind}_runs" and run:
                saved = record.name
                record.name = f"{kind} {run!r}"
                try:
                    return super().format(record)
                finally:
                    record.name = saved
        return super().format(record)


def fail(message: object, code: int = 1) -> typer.Exit:
    """Print ``error: <message>`` (credentials in a URL masked) and return the exit to raise
    (1: it failed; 2: bad input)."""
    console.print(f"[red]error:[/] {mask_credentials(message)}")
    return typer.Exit(code)


def load_settings(ctx: typer.Context) -> Any:
    """The typed settings of the project ``-C`` names, or a clear error naming each field."""
    from churn.config.settings import SettingsError, get_settings

    try:
        return get_settings(project_dir=ctx.obj.project_dir)
    except SettingsError as exc:  # names each field and rule, never the value
        raise fail(exc, 2) from None


def load_context(ctx: typer.Context) -> tuple[Any, Any]:
    """Settings and ``params.yaml``, or a clear error naming the file and the key."""
    from churn.config.params import load_params
    from churn.models import check_params

    settings = load_settings(ctx)
    try:
        params = load_params(settings.params_path)
        check_params(params)  # the candidates and their blocks (churn.models), before any stage
        return settings, params
    except FileNotFoundError:
        raise fail(f"{settings.params_path} not found (use --project-dir)", 2) from None
    except ValueError as exc:  # pydantic.ValidationError names the key
        raise fail(f"{settings.params_path} is invalid:\n{exc}", 2) from None


class DataErrorsWithoutTraceback(logging.Filter):
    """Prefect logs a failed task's traceback; for a data problem the message alone is shown.

    A ``churn.config.errors.DataError`` (an unreadable file, a label with one value, missing
    columns) is something the user fixes in the data or ``params.yaml``: the log keeps its one-line
    message and the command ends on it, without a stack of Prefect and DVC frames first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and data_error(record.exc_info[1]) is not None:
            record.exc_info = None
            record.exc_text = None
        return True


class FailureEchoes(logging.Filter):
    """On the terminal's handler while a command runs a flow whose failure it reports itself:
    Prefect's own lines about the failure (the task's exception, its failed state, the flow's
    exception, its failed state: the same error four to six times) are left out. They still
    reach the Prefect server's log of the run (another handler)."""

    RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
    FAILED = ("Finished in state Failed", "Finished in state Crashed")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.RUN_LOGGERS:
            return True
        return record.levelno < logging.ERROR and not record.getMessage().startswith(self.FAILED)


T = TypeVar("T")


def run_flow(flow: Callable[[], T]) -> T:
    """Run a flow for a command and report its failure once: ``error: <message>``.

    A data problem (:class:`~churn.config.errors.DataError`: something the user fixes in the
    data or ``params.yaml``) is that one line; any other error is its traceback (credentials
    masked), then the line. Prefect's own failure lines stay in the run's log on the Prefect
    server, not on the terminal.
    """
    quiet, echoes = DataErrorsWithoutTraceback(), FailureEchoes()
    loggers = [logging.getLogger(name) for name in FailureEchoes.RUN_LOGGERS]
    handlers = list(logging.getLogger().handlers)
    for logger in loggers:
        logger.addFilter(quiet)
    for handler in handlers:
        handler.addFilter(echoes)
    try:
        return flow()
    except KeyboardInterrupt:
        # Prefect's own "Crashed" lines are among the echoes kept off the terminal: say it here.
        print("interrupted: the run stopped on Ctrl-C (Prefect marks it Crashed)", file=sys.stderr)
        raise
    except Exception as exc:
        error = data_error(exc)
        if error is None:
            import traceback

            print(mask_credentials("".join(traceback.format_exception(exc))), file=sys.stderr)
            error = exc
        raise fail(error) from None
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
        for handler in handlers:
            handler.removeFilter(echoes)


def data_error(exc: BaseException | None) -> BaseException | None:
    """The ``DataError`` behind ``exc`` (itself, its cause or its context), if any."""
    from churn.config.errors import data_error_of

    return data_error_of(exc)


def clone_tool(name: str) -> ModuleType:
    """A module of the template's ``tools/`` folder, which only a clone has."""
    import importlib

    try:
        return importlib.import_module(f"tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("tools", f"tools.{name}"):
            raise
        raise fail(
            "this command runs the template's tools/ folder, which the installed package does "
            "not ship: run it from a clone of the repository (make demo, make bench-serve, ...)"
        ) from None
