"""DVC's own lines are printed once, also in a process whose root logger prints (Prefect, demo)."""

from __future__ import annotations

import logging
import subprocess
import sys


def test_dvc_lines_are_printed_once_with_a_root_handler(tmp_path, capfd):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        from dvc.repo import Repo

        from churn.versioning import dvc_logs_once

        dvc_logs_once()
        Repo.init(str(tmp_path)).close()
    finally:
        root.removeHandler(handler)
    out, err = capfd.readouterr()
    assert (out + err).count("Initialized DVC repository") == 1
