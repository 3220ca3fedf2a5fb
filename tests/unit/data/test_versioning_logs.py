"""DVC's own lines are printed once, also in a process whose root logger prints (Prefect, demo)."""

from __future__ import annotations

import subprocess
import sys

# A fresh process: DVC binds its handlers to the streams of the process that imports it first.
SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # as Prefect and the demo's log do
from dvc.repo import Repo
{call}
Repo.init(sys.argv[1]).close()
"""


def _init_output(tmp_path, call: str) -> str:
    tmp_path.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(call=call), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout + done.stderr


def test_dvc_lines_are_printed_once_with_a_root_handler(tmp_path):
    once = "from churn.data.versioning import dvc_logs_once; dvc_logs_once()"
    assert _init_output(tmp_path / "a", once).count("Initialized DVC repository") == 1


def test_without_it_they_were_printed_twice(tmp_path):
    """The cause, so the test above can fail: DVC's handler and the root's both print."""
    assert _init_output(tmp_path / "b", "").count("Initialized DVC repository") == 2
