"""The warm process for real: `churn warm`, then `churn train` through the `churn` command, run
in a forked child of it against the session's Prefect server, a real MLflow store and DVC."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.config.identity import identity
from churn.config.settings import get_settings
from churn.release import registry, tracking
from pipelines import warm
from pipelines.cli import QUIET_ENV
from tools.fork import fork_project

pytestmark = pytest.mark.integration

CHURN = str(Path(sys.executable).parent / "churn")  # the installed entry point, as make runs it
SMALL = {"ingest": {"generator": {"n_rows": 2500, "seed": 7}}, "train": {"search": {"n_trials": 1}}}


@pytest.fixture(scope="module")
def warm_env(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Iterator[dict[str, str]]:
    """A warm process of its own (its own PREFECT_HOME), stopped at the end."""
    # As `churn` gives it: the quiet defaults (pipelines.cli.QUIET_ENV) under the caller's values.
    env = {**QUIET_ENV, **os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp("warm-home"))}
    started = subprocess.run(
        [CHURN, "warm"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "warm process started" in started.stdout + started.stderr
    yield env
    subprocess.run([CHURN, "warm", "--stop"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def warm_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fork_project(tmp_path_factory.mktemp("warm") / "project", SMALL)


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHURN, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _children(env: dict[str, str]) -> list[int]:
    """The pids the warm process forked, from its log."""
    log = (Path(env["PREFECT_HOME"]) / warm.LOG_NAME).read_text()
    return [int(pid) for pid in re.findall(r"churn train[^\n]*: pid (\d+)", log)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _champion_version(project: Path) -> str | None:
    client = tracking.connect(get_settings(project_dir=project))
    champion = registry.current_champion(client, identity().model_name)
    return None if champion is None else str(champion.version)


def test_train_runs_in_a_child_of_the_warm_process_and_ends_as_a_process_of_its_own_would(
    warm_env: dict[str, str], warm_project: Path
) -> None:
    first = _run(["train"], warm_project, warm_env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "churn v1: PROMOTED to champion" in first.stdout + first.stderr
    assert len(_children(warm_env)) == 1
    assert _champion_version(warm_project) == "1"
    # The next one finds the champion's fingerprint, like any run with nothing changed.
    second = _run(["train"], warm_project, warm_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "unchanged, not trained again" in second.stdout + second.stderr
    assert len(_children(warm_env)) == 2


def test_a_failing_command_gives_its_message_and_exit_code(
    warm_env: dict[str, str], tmp_path: Path
) -> None:
    before = len(_children(warm_env))
    out = _run(["train"], tmp_path, warm_env)  # no params.yaml here
    assert out.returncode == 2
    assert "params.yaml not found" in out.stderr and "Traceback" not in out.stderr
    assert len(_children(warm_env)) == before + 1, "it ran in the warm process"


def test_ctrl_c_reaches_the_child_and_changes_no_champion(
    warm_env: dict[str, str], warm_project: Path
) -> None:
    champion = _champion_version(warm_project)
    assert champion is not None, "needs the first test's champion"
    proc = subprocess.Popen(
        [CHURN, "train", "--retrain"],
        cwd=warm_project,
        env=warm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the candidates are being fitted
        if "churn.training.train" in line:
            break
    else:
        pytest.fail(f"training did not start (exit {proc.wait()})")
    child = _children(warm_env)[-1]
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=120) == 130, rest[-3000:]
    assert "Crashed" in rest or "interrupt" in rest.lower(), rest[-3000:]
    # The child reports its code from its last exit handler, then ends.
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
    assert _champion_version(warm_project) == champion


def test_a_different_import_time_setting_runs_here_and_names_the_variable_not_its_value(
    warm_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = warm.socket_path(warm_env)
    assert path is not None
    assert warm.ping(path, warm_env) == []
    other = {**warm_env, "MPLBACKEND": "svg", "PREFECT_API_KEY": "s3cret-value"}
    assert warm.ping(path, other) == ["MPLBACKEND", "PREFECT_API_KEY"]
    assert warm.run_warm(["train"], other) is None
    said = capsys.readouterr().err
    assert "warm process not used (MPLBACKEND, PREFECT_API_KEY differ)" in said
    assert "s3cret" not in said and "svg" not in said
