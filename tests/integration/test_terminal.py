"""What a flow command prints (pipelines/cli/context.py's ``run_flow`` and the terminal's
formatter): each Prefect line names its task or flow run, and a failure is one line, not the
same error through the task's and the flow's logs four to six times.

A two-task flow on the session's Prefect server, with the terminal handler ``churn`` sets up:
real Prefect records, seconds per test.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import typer
from prefect import flow, task

from churn.config.errors import DataError
from pipelines.cli.context import RunNamingFormatter, run_flow

pytestmark = pytest.mark.integration

MESSAGE = "the data lacks required columns ['Churn']: point ingest.path at the churn file"


@task
def load(fail: Exception | None) -> int:
    if fail is not None:
        raise fail
    return 1


@task
def fit(n: int) -> int:
    return n + 1


@flow(name="terminal-check")
def two_tasks(fail: Exception | None = None) -> int:
    return fit(load(fail))


@pytest.fixture
def terminal() -> Iterator[io.StringIO]:
    """The terminal handler ``churn`` puts on the root logger, writing to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RunNamingFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_successful_run_names_the_task_of_every_finished_line(terminal):
    assert run_flow(two_tasks) == 2
    lines = terminal.getvalue().splitlines()
    finished = [line for line in lines if "Finished in state Completed()" in line]
    assert len(finished) == 3, lines  # two tasks and the flow
    assert all(not line.startswith("INFO prefect.task_runs:") for line in finished), finished
    assert any(line.startswith("INFO task 'load-") for line in finished), finished
    assert any(line.startswith("INFO task 'fit-") for line in finished), finished
    assert any(line.startswith("INFO flow '") for line in finished), finished


def test_a_data_error_is_one_line_without_a_traceback(terminal, capsys):
    with pytest.raises(typer.Exit) as exit_:
        run_flow(lambda: two_tasks(DataError(MESSAGE)))
    assert exit_.value.exit_code == 1
    shown = terminal.getvalue() + capsys.readouterr().err
    assert shown.count("the data lacks required columns") == 1, shown
    assert f"error: {MESSAGE}" in " ".join(shown.split())  # rich may wrap the one line
    assert "Traceback" not in shown and "Finished in state Failed" not in shown, shown
    assert "Finished in state Completed()" not in shown  # the flow failed: no task finished
    # Prefect's own filters are off again: a later run's lines are not swallowed.
    left = logging.getLogger("prefect.task_runs").filters + logging.getLogger().handlers[-1].filters
    assert not [f for f in left if type(f).__module__ == "pipelines.cli.context"], left


def test_any_other_error_is_its_traceback_once_then_the_line(terminal, capsys):
    with pytest.raises(typer.Exit):
        run_flow(lambda: two_tasks(RuntimeError("disk quota exceeded at /srv/mlflow")))
    shown = terminal.getvalue() + capsys.readouterr().err
    assert shown.count("Traceback (most recent call last)") == 1, shown
    assert shown.count("RuntimeError: disk quota exceeded") == 1, shown  # the traceback's
    assert shown.rstrip().splitlines()[-1].startswith("error: disk quota exceeded"), shown
    assert "Task run failed with exception" not in shown, shown
