"""How the CLI tests invoke ``churn`` in this process and read its output."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from click.testing import Result
from typer.testing import CliRunner

from pipelines.cli.commands import app


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), prog_name="churn")


def _plain(text: str) -> str:
    """Help text without rich's colour codes and box drawing."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``churn <args>`` through Typer's test runner: its exit code and output."""
    return _run


@pytest.fixture
def plain() -> Callable[[str], str]:
    return _plain
