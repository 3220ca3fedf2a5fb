"""The warm process: what must match, what a child re-imports, and (with a real process started
by ``churn warm``) that it does not linger: an idle timeout or a deleted project ends it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import warm

CHURN = str(Path(sys.executable).parent / "churn")


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
        "import sys, json, numpy, churn.config.params, pipelines.cli.commands\n"
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


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def warm_project(tmp_path):
    """A project folder whose PREFECT_HOME is inside it; yields (folder, env, started pids)."""
    project = tmp_path / "project"
    project.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
        "PREFECT_HOME": str(project / ".prefect"),
    }
    pids: list[int] = []
    yield project, env, pids
    for pid in pids:  # only the warm processes this test started, by id
        if _running(pid):
            os.kill(pid, signal.SIGTERM)


def _start(project: Path, env: dict[str, str], pids: list[int]) -> tuple[int, str]:
    done = subprocess.run(
        [CHURN, "warm"], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pid = int((project / ".prefect" / "warm.pid").read_text())
    pids.append(pid)
    return pid, done.stdout + done.stderr


def _wait_for_exit(pid: int, within: float) -> float:
    started = time.monotonic()
    while _running(pid) and time.monotonic() - started < within:
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.slow
def test_an_idle_warm_process_exits_after_its_timeout_and_churn_warm_says_so(warm_project):
    project, env, pids = warm_project
    env["CHURN_WARM_IDLE_TIMEOUT_SECONDS"] = "4"
    pid, said = _start(project, env, pids)
    said = " ".join(said.split())
    assert "It exits after 4 s without a command (CHURN_WARM_IDLE_TIMEOUT_SECONDS)" in said
    assert "`make stop` (or `churn warm --stop`) ends it now" in said
    # A command handed to it runs in its child, the command line imported again from disk.
    done = subprocess.run(
        [CHURN, "monitor", "--help"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "Usage: churn monitor" in done.stdout, done.stderr
    log = (project / ".prefect" / warm.LOG_NAME).read_text()
    assert "churn monitor --help: pid" in log
    assert _running(pid)  # the command reset the idle clock
    waited = _wait_for_exit(pid, within=60)
    assert not _running(pid), f"still running {waited:.0f} s later"
    log = (project / ".prefect" / warm.LOG_NAME).read_text()
    assert "exiting: no command for 4 s" in log
    assert not (project / ".prefect" / warm.SOCKET_NAME).exists()
    assert not (project / ".prefect" / "warm.pid").exists()


@pytest.mark.slow
def test_a_warm_process_whose_project_folder_is_deleted_exits(warm_project):
    project, env, pids = warm_project
    pid, _ = _start(project, env, pids)  # the default idle timeout: 30 min
    log = (project / ".prefect" / warm.LOG_NAME).read_text()
    assert "exits after 30 min idle" in log
    shutil.rmtree(project)
    waited = _wait_for_exit(pid, within=warm.CHECK_EVERY_S * 4)
    assert not _running(pid), f"still running {waited:.0f} s after its project was deleted"
