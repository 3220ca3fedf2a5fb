"""The tutorial (docs/tutorial/*.md) shows only commands that exist: every ``make X`` in a
``bash`` block is a Makefile target, every ``churn X`` (or ``python -m pipelines.cli X``) a
command of the CLI, and every file a page includes (``--8<--``, the outputs
``make docs-outputs`` writes) is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from pipelines.cli.commands import app

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "tutorial").glob("*.md"))

BASH = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+((?:-\S+\s+)*)([A-Za-z0-9][\w.-]*)")
CHURN = re.compile(
    r"(?:^|[\s;&|(])(?:churn|python -m pipelines\.cli)\s+(?:-C\s+\S+\s+)?([a-z][\w-]*)"
)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"', re.MULTILINE)


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*):(?!=)", text, flags=re.MULTILINE))


def cli_commands() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def unknown(markdown: str, targets: set[str], commands: set[str]) -> list[str]:
    """What a page's bash blocks name that does not exist, each as ``make X`` or ``churn X``."""
    missing = []
    for block in BASH.findall(markdown):
        text = block.replace("\\\n", " ")
        missing += [f"make {t}" for _, t in MAKE.findall(text) if t not in targets]
        missing += [f"churn {c}" for c in CHURN.findall(text) if c not in commands]
    return missing


def test_the_tutorial_has_pages_with_commands():
    assert len(PAGES) >= 4, PAGES
    blocks = [b for page in PAGES for b in BASH.findall(page.read_text(encoding="utf-8"))]
    assert sum(bool(MAKE.search(b)) for b in blocks) >= 6


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_a_page_shows_exists(page):
    assert unknown(page.read_text(encoding="utf-8"), make_targets(), cli_commands()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_includes_exists(page):
    for path in SNIPPET.findall(page.read_text(encoding="utf-8")):
        assert (ROOT / path).is_file(), f"{page.name} includes {path}: run make docs-outputs"
        assert (ROOT / path).read_text(encoding="utf-8").strip(), f"{path} is empty"


def test_a_gone_target_or_command_is_named():
    """The check itself: a renamed target or command is found, options and variables are not."""
    page = (
        "```bash\nmake -s train ROWS=5 && CHURN_X=1 make serve-all\n"
        "churn train --retrain\npython -m pipelines.cli -C . trian\n```\n"
        "```text\nmake nothing (not a bash block)\n```\n"
    )
    assert unknown(page, {"train"}, {"train"}) == ["make serve-all", "churn trian"]
    assert "docs-outputs" in make_targets() and "train" in cli_commands()
