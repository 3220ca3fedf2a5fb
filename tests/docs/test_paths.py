"""The docs name only what exists: every repository path and pytest node id in README.md and
docs/*.md points at a file (and a function or class) that is there.

A path counts when its first folder is one the repository tracks (``src/``, ``serving/``,
``tests/``, ``.github/``...) or is ``churn/`` (the library, under ``src/``); runtime folders
(``data/``, ``reports/``, ``mlruns/``...) are made by the code and are not checked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# `code spans` and the targets of [links](...).
TOKEN = re.compile(r"`([^`\s]+)`|\]\(([^)\s#]+)")
# Named on purpose although gone, each as history in its sentence ("then ...", "was ...").
GONE_ON_PURPOSE = {
    # docs/serving.md: issue #9's measurement, "then tools/bench_predict.py"
    "tools/bench_predict.py",
    # docs/architecture.md: the hand-written path removed in issue #24, "was tests/...::..."
    "tests/unit/scoring/test_explain.py::"
    "test_the_numpy_tables_give_xgboosts_own_treeshap_for_a_few_rows",
}
# Folders the code writes at run time (git-ignored; `make clean` removes them).
RUNTIME = {"data", "reports", "mlruns", ".prefect", ".dvcstore", ".tools", ".cache", "dist", "site"}


def tracked_tops() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {f.split("/", 1)[0] for f in files if "/" in f} - RUNTIME - {".dvc"}


def named_paths(text: str, tops: set[str]) -> set[str]:
    """The repository paths (with ``::name`` when a node id) a page names."""
    found = set()
    for match in TOKEN.finditer(text):
        token = (match.group(1) or match.group(2)).rstrip(".,:;)")
        if "/" not in token or re.search(r"[<>*…$={}]|://", token):
            continue
        first = token.split("/", 1)[0]
        if first == "churn":
            token = f"src/{token}"
        elif first not in tops:
            continue
        found.add(token)
    return found


def missing(token: str) -> str | None:
    """Why ``token`` does not resolve, or None when it does."""
    path, _, name = token.partition("::")
    if not (ROOT / path).exists():
        return f"{path} does not exist"
    if name:
        last = name.split("::")[-1].split(".")[-1].split("[")[0]
        if not re.search(
            rf"^\s*(async )?(def|class) {re.escape(last)}\b", (ROOT / path).read_text(), re.M
        ):
            return f"{path} has no function or class {last}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    broken = {
        token: why
        for token in sorted(named_paths(page.read_text(encoding="utf-8"), tracked_tops()))
        if token not in GONE_ON_PURPOSE and (why := missing(token))
    }
    assert not broken, f"{page.name} names what is gone (fix the page): {broken}"


def test_the_check_finds_a_moved_file_and_a_renamed_test() -> None:
    text = (
        "Real-time: `serving/scoring.py`, `churn/scoring/walk.py`, "
        "`tests/unit/test_workflows.py::test_no_such_thing`, [chart](deploy/helm/)."
    )
    tokens = named_paths(text, tracked_tops())
    assert tokens == {
        "serving/scoring.py",
        "src/churn/scoring/walk.py",
        "tests/unit/test_workflows.py::test_no_such_thing",
        "deploy/helm/",
    }
    assert missing("serving/scoring.py") == "serving/scoring.py does not exist"
    assert missing("src/churn/scoring/walk.py") is None
    assert "no function or class test_no_such_thing" in (
        missing("tests/unit/test_workflows.py::test_no_such_thing") or ""
    )
    assert missing("src/churn/prediction_store.py::PredictionStore.hash_id") is None
