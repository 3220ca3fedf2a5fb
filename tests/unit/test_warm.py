"""The warm process's rules that need no process: what must match, what a child re-imports."""

from __future__ import annotations

import json
import subprocess
import sys

from pipelines import warm


def test_only_import_time_variables_count_and_differences_name_no_value() -> None:
    base = {"PREFECT_API_URL": "http://a/api", "HOME": "/root", "PWD": "/x", "TERM": "xterm"}
    ours = warm.fingerprint(base)
    assert set(ours["env"]) == {"PREFECT_API_URL", "HOME"}
    # Variables no library reads at import may differ: the command gets its own environment.
    assert warm.differences(ours, warm.fingerprint({**base, "PWD": "/y", "MAKEFLAGS": "-j"})) == []
    theirs = warm.fingerprint({**base, "PREFECT_API_URL": "http://b/api", "OMP_NUM_THREADS": "1"})
    assert warm.differences(ours, theirs) == ["OMP_NUM_THREADS", "PREFECT_API_URL"]
    assert warm.differences(ours, {**ours, "installed": 0}) == ["installed"]


def test_the_project_s_modules_are_dropped_and_the_libraries_kept() -> None:
    """A child imports the project from disk, so an edited module counts without a restart."""
    code = (
        "import sys, json, numpy, churn.config.params, pipelines.cli\n"
        "from pipelines import warm\n"
        "warm.drop_project_modules()\n"
        "print(json.dumps(["
        "sorted(m for m in sys.modules if m.partition('.')[0] in warm.PROJECT_PACKAGES),"
        "'numpy' in sys.modules, 'typer' in sys.modules, 'pydantic' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    left, *kept = json.loads(out.stdout)
    assert left == ["pipelines.warm"]  # the running server itself
    assert kept == [True, True, True]


def test_no_warm_process_means_the_command_runs_here(tmp_path) -> None:
    assert warm.run_warm(["train"], {"PREFECT_HOME": str(tmp_path)}) is None
    assert warm.run_warm(["train"], {}) is None


def test_a_socket_left_by_a_killed_warm_process_is_reported_and_the_command_runs_here(
    tmp_path, capsys
) -> None:
    import socket

    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(tmp_path / warm.SOCKET_NAME))
    left.close()  # the file stays, nobody listens
    assert warm.run_warm(["train"], {"PREFECT_HOME": str(tmp_path)}) is None
    assert "warm process not used" in capsys.readouterr().err


def test_a_warm_process_that_does_not_answer_is_reported_and_the_command_runs_here(
    tmp_path, capsys, monkeypatch
) -> None:
    import socket

    monkeypatch.setattr(warm, "HANDSHAKE_S", 0.5)
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.bind(str(tmp_path / warm.SOCKET_NAME))
    stuck.listen(1)  # accepts into its backlog, never answers
    try:
        assert warm.run_warm(["train"], {"PREFECT_HOME": str(tmp_path)}) is None
    finally:
        stuck.close()
    assert "warm process not used (no answer within 0.5 s)" in capsys.readouterr().err
