"""The warm process trusts only its owner (issue #26): a socket or a listener of another user gets
nothing, a folder others may write is refused, a silent connection blocks no one, and a child
runs with the caller's umask and resource limits.

The tests run as root (the suite's machine): another user's socket is made with ``chown`` and
another user's listener and client with ``setuid`` (``nobody``, 65534) after ``bind``. Most use a
probe warm server (``pipelines.warm.serve`` with no preload and a child that reports its umask
and limits: it starts in a second); one uses the real ``churn warm``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import warm

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user's socket needs root")

ROOT = Path(__file__).resolve().parents[2]
CHURN = str(Path(sys.executable).parent / "churn")
NOBODY = 65534
SECRETS = {
    "CHURN_API_KEY": "Api-s3cr3tPW-1b2c3d4e5f6a7b8c9d0e",
    "CHURN_ID_HASH_KEY": "Hmac-s3cr3tPW-9f8e7d6c5b4a" + "q" * 12,
    "MLFLOW_TRACKING_PASSWORD": "s3cr3tPW-mlflow",
}

# A warm server whose child writes what it runs with (umask, limits, uid) and makes a file.
PROBE_SERVER = textwrap.dedent(
    """
    import json, os, resource, sys
    from pathlib import Path
    from pipelines import warm

    def run(argv):
        out = Path(argv[-1])
        out.with_suffix(".made").write_text("x")
        limits = {
            name: list(resource.getrlimit(getattr(resource, name)))
            for name in ("RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_CORE")
        }
        umask = os.umask(0)
        out.write_text(json.dumps({"umask": umask, "limits": limits, "uid": os.getuid()}))
        print("probe ran", argv[0])

    warm.serve(Path(sys.argv[1]), run, preload_modules=[], idle_timeout_s=600,
               project_dir=Path(sys.argv[2]))
    """
)

# A fake warm process: it listens on argv[1] (after setuid to argv[2] when given, or with the
# socket file chowned to argv[3]), answers like a warm child that succeeded, and prints what it
# was sent.
FAKE_SERVER = textwrap.dedent(
    """
    import os, socket, sys
    path, uid, owner = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    if owner >= 0:
        os.chown(path, owner, owner)
    if uid >= 0:
        os.setgid(uid)
        os.setuid(uid)
    server.listen(1)
    server.settimeout(30)
    print("ready", flush=True)
    try:
        conn, _ = server.accept()
    except TimeoutError:
        print("received 0", flush=True)
        raise SystemExit(0)
    conn.settimeout(5)
    got = b""
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        got = msg
        if msg:
            conn.sendall(b'{"pid": 1}\\n{"exit": 0}\\n')
    except OSError:
        pass
    print("received", len(got), flush=True)
    sys.stdout.buffer.write(got)
    """
)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, **SECRETS, "PREFECT_HOME": str(home)}


def _fake(home: Path, *, uid: int = -1, owner: int = -1) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER, str(home / warm.SOCKET_NAME), str(uid), str(owner)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _received(proc: subprocess.Popen[str], path: Path) -> str:
    """What the fake was sent by the first connection (after the client's turn, an empty one is
    made: the fake reports "received 0" when the client never connected)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke, contextlib.suppress(OSError):
        poke.connect(str(path))
    out, _ = proc.communicate(timeout=40)
    return out


@pytest.fixture(scope="module")
def probe() -> Iterator[dict[str, str]]:
    """A probe warm server; yields the environment its clients use. Its folder is straight in
    /tmp, so that another user can reach it when a test opens it (pytest's folders are 0700)."""
    home = Path(tempfile.mkdtemp(prefix="warm-probe-"))
    env = _env(home)
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE_SERVER, str(home / warm.SOCKET_NAME), str(home)],
        cwd=ROOT,
        env=env,
        stdout=(home / warm.LOG_NAME).open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while warm.ping(home / warm.SOCKET_NAME, env) != [] and time.monotonic() < deadline:
        assert proc.poll() is None, (home / warm.LOG_NAME).read_text()
        time.sleep(0.1)
    yield env
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    shutil.rmtree(home, ignore_errors=True)


def _client(env: dict[str, str], argv: list[str], prelude: str = "") -> subprocess.CompletedProcess:
    """``warm.run_warm(argv)`` in a process of its own (``prelude`` first: umask, limits)."""
    code = f"import os, resource, sys\n{prelude}\nfrom pipelines import warm\n"
    code += f"code = warm.run_warm({argv!r})\nprint('exit', code)\n"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_socket_owned_by_another_user_gets_no_environment_and_the_command_runs_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = _fake(tmp_path, owner=NOBODY)
    assert warm.run_warm(["train"], _env(tmp_path)) is None
    said = capsys.readouterr().err
    got = _received(fake, tmp_path / warm.SOCKET_NAME)
    assert "received 0" in got, got  # never connected: nothing was sent
    assert "s3cr3tPW" not in got
    assert f"belongs to uid {NOBODY}" in said and "running here" in said, said
    assert len(said.strip().splitlines()) == 1


def test_a_symlink_in_place_of_the_socket_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fake = _fake(elsewhere)
    (tmp_path / warm.SOCKET_NAME).symlink_to(elsewhere / warm.SOCKET_NAME)
    assert warm.run_warm(["train"], _env(tmp_path)) is None
    got = _received(fake, elsewhere / warm.SOCKET_NAME)
    assert "received 0" in got and "s3cr3tPW" not in got, got
    assert "is a symbolic link" in capsys.readouterr().err


def test_a_listener_running_as_another_user_gets_no_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The socket file is ours (bound as root), the process listening on it is nobody's.
    tmp_path.chmod(0o755)  # nobody may enter to accept
    fake = _fake(tmp_path, uid=NOBODY)
    assert warm.run_warm(["train"], _env(tmp_path)) is None
    said = capsys.readouterr().err
    got = _received(fake, tmp_path / warm.SOCKET_NAME)
    assert "received 0" in got and "s3cr3tPW" not in got, got
    assert f"runs as uid {NOBODY}, not as you" in said and "running here" in said, said


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_prefect_home_others_may_write_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fake = _fake(home)
    home.chmod(mode)
    assert warm.run_warm(["train"], _env(home)) is None
    got = _received(fake, home / warm.SOCKET_NAME)
    assert "received 0" in got and "s3cr3tPW" not in got, got
    said = capsys.readouterr().err
    assert "writable by" in said and f"chmod 700 {home}" in said, said
    # `churn warm` will not start one there either, nor stop what its pid file names.
    with pytest.raises(RuntimeError, match="chmod 700"):
        warm.start(home / warm.SOCKET_NAME, ["false"])
    (home / "warm.pid").write_text(f"{fake.pid}\n")
    assert "not stopped" in warm.stop(home / warm.SOCKET_NAME)


def test_the_warm_process_drops_a_connection_from_another_user(
    probe: dict[str, str], tmp_path: Path
) -> None:
    """Even when its socket is opened to others by mistake, another uid's request runs nothing."""
    home = Path(probe["PREFECT_HOME"])
    path = home / warm.SOCKET_NAME
    out = tmp_path / "by-nobody.json"
    home_mode, path_mode = home.stat().st_mode, path.stat().st_mode
    home.chmod(0o711)
    path.chmod(0o666)
    try:
        pid = os.fork()
        if pid == 0:  # the other user's client
            code = 3
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(10)
                try:
                    conn.connect(str(path))
                except OSError:
                    os._exit(4)  # the test's setup is wrong: it could not even connect
                request = {
                    "argv": ["train", str(out)],
                    "cwd": str(tmp_path),
                    "env": probe,
                    "fingerprint": warm.fingerprint(probe),
                    "umask": 0o022,
                }
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
                code = 1 if conn.recv(1 << 16) else 0  # 0: closed without an answer
            except OSError:  # reset: closed without an answer
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        home.chmod(home_mode & 0o777)
        path.chmod(path_mode & 0o777)
    assert os.waitstatus_to_exitcode(status) == 0
    time.sleep(0.5)
    assert not out.exists(), "the warm process ran another user's command"
    assert f"dropped a connection from uid {NOBODY}" in (home / warm.LOG_NAME).read_text()


def test_a_warm_child_takes_the_caller_s_umask_and_limits(
    probe: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "probe.json"
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    prelude = (
        "os.umask(0o077)\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, (200, {nofile_hard}))\n"
        "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))\n"
        "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    )
    done = _client(probe, ["train", str(out)], prelude)
    assert "exit 0" in done.stdout, done.stdout + done.stderr
    assert "probe ran train" in done.stdout  # the child wrote to the caller's stdout
    report = json.loads(out.read_text())
    assert report["umask"] == 0o077
    assert oct(out.with_suffix(".made").stat().st_mode & 0o777) == oct(0o600)
    assert report["limits"] == {
        "RLIMIT_NOFILE": [200, nofile_hard],
        "RLIMIT_AS": [6 << 30, resource.RLIM_INFINITY],
        "RLIMIT_CORE": [0, 0],
    }


def test_a_silent_connection_does_not_hold_up_the_next_command(
    probe: dict[str, str], tmp_path: Path
) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.connect(str(Path(probe["PREFECT_HOME"]) / warm.SOCKET_NAME))
    try:
        started = time.monotonic()
        done = _client(probe, ["train", str(tmp_path / "after-silent.json")])
        took = time.monotonic() - started
        assert "exit 0" in done.stdout, done.stdout + done.stderr
        assert took < 8, f"{took:.1f} s behind a silent connection"
        # ... and the silent one is closed after its short timeout.
        silent.settimeout(warm.HANDSHAKE_S)
        assert silent.recv(1) == b""
    finally:
        silent.close()


@pytest.mark.integration  # `churn warm` imports the flows' libraries: 11 s on a quiet machine
def test_the_real_warm_process_serves_a_command_behind_a_silent_connection(
    tmp_path: Path,
) -> None:
    """`churn warm`, a connection that sends nothing, then `churn monitor --help` in a child."""
    home = tmp_path / ".prefect"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURN_")},
        "PREFECT_HOME": str(home),
        "CHURN_WARM_IDLE_TIMEOUT_SECONDS": "120",
    }
    started = subprocess.run(
        [CHURN, "warm"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(str(home / warm.SOCKET_NAME))
        before = time.monotonic()
        done = subprocess.run(
            [CHURN, "monitor", "--help"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - before
        silent.close()
        assert done.returncode == 0 and "Usage: churn monitor" in done.stdout, done.stderr
        assert "warm process not used" not in done.stderr
        assert "churn monitor --help: pid" in (home / warm.LOG_NAME).read_text()
        assert took < warm.HANDSHAKE_S / 2, f"{took:.1f} s behind a silent connection"
    finally:
        subprocess.run([CHURN, "warm", "--stop"], env=env, capture_output=True, timeout=60)
