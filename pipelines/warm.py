"""The warm process: the libraries a flow needs, imported once, and a fresh child per command.

Most of a warm ``make train`` used to be imports: Prefect, MLflow and its SQLite store,
scikit-learn, XGBoost, matplotlib, skops, DVC and Evidently take 8-11 s to import on a 2-core
machine, and every ``churn train`` or ``churn monitor`` paid them again. ``make warm`` (run by the
flow targets) starts this process in the background: it imports them once, then waits on a Unix
socket in ``$PREFECT_HOME``. The ``churn`` command (:func:`main`) hands ``train`` and ``monitor``
to it when it is up: the warm process forks, and the child takes the caller's stdin, stdout and
stderr, argv, working directory and environment, and runs the command; the caller forwards
Ctrl-C and ends with the child's exit code. Everything else runs in the calling process as before.

What stays correct:

* **your code is always fresh.** The project's own packages are imported to find what they
  import, then dropped; each child imports them again from disk, so an edited module counts at
  once. Only installed libraries are shared, and a warm process whose environment was
  reinstalled since it started (``make install``, ``uv sync``) refuses, and exits.
* **the same configuration.** Libraries read some settings when imported (Prefect's profile and
  API URL, matplotlib's backend, thread counts). A command whose environment differs from the
  warm process's in any of them runs in its own process, and says which variable differs.
* **nothing is silent.** ``$PREFECT_HOME/warm.log`` has a line per command (its pid);
  ``make stop`` ends the process; without it ``churn`` behaves exactly as before.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

# Commands handed to the warm process: the flows, whose imports dominate their time.
WARM_COMMANDS = frozenset({"train", "monitor"})
# What a flow imports, directly or inside its tasks. The project's modules among them are only
# imported to reach their libraries, then dropped (PROJECT_PACKAGES); a name that no longer
# exists in a fork is skipped with a warning in the log.
PRELOAD = (
    # skops scans sys.modules for every NumPy and SciPy ufunc: these first (see pipelines/cli.py).
    "numpy",
    "scipy.special",
    "pipelines.cli",
    "pipelines.training",
    "pipelines.monitoring",
    "churn.training.stages",
    "churn.release.tracking",
    "monitoring.report",
    "monitoring.workspace",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "skops.io",
    "dvc.repo",
    "matplotlib.figure",
    "churn.scoring.walk",  # numba, for the serving scorer the training flow checks
    # The candidates table; each candidate's own libraries (xgboost, sklearn.ensemble, ...)
    # are added from it below (churn.models: modules).
    "churn.models",
)
PROJECT_PACKAGES = ("churn", "pipelines", "serving", "monitoring", "tools")
# Environment variables read when a library is imported: the warm process serves a command only
# if these are the same in the command's environment.
IMPORT_TIME_ENV = (
    "PREFECT_",
    "MLFLOW_",
    "MPL",
    "OMP_",
    "OPENBLAS_",
    "MKL_",
    "NUMBA_",
    "PYTHON",
    "HOME",
    "LANG",
    "LC_",
    "TZ",
)
SOCKET_NAME = "warm.sock"
LOG_NAME = "warm.log"
# Stdin, stdout, stderr: passed to the child, which writes to the caller's terminal or pipes.
_STDIO = (0, 1, 2)
_MAX_MESSAGE = 1 << 20
# How long a command waits for the warm process to fork it before running itself.
HANDSHAKE_S = 20.0

log = logging.getLogger("pipelines.warm")


def socket_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$PREFECT_HOME/warm.sock``; None when ``PREFECT_HOME`` is unset (the Makefile sets it)."""
    home = (os.environ if environ is None else environ).get("PREFECT_HOME")
    return Path(home) / SOCKET_NAME if home else None


def fingerprint(environ: Mapping[str, str]) -> dict[str, Any]:
    """What a warm process must share with a command to run it: the interpreter, the installed
    libraries (their directory changes when ``uv sync`` adds, removes or upgrades one) and the
    environment variables libraries read at import."""
    site = Path(sysconfig.get_paths()["purelib"])
    return {
        "environment": sys.prefix,
        "installed": site.stat().st_mtime_ns if site.exists() else None,
        "env": {k: v for k, v in sorted(environ.items()) if k.startswith(IMPORT_TIME_ENV)},
    }


def differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """The names of what differs between two fingerprints (never the values: they may be secret)."""
    out = [k for k in ("environment", "installed") if ours.get(k) != theirs.get(k)]
    env_a, env_b = ours.get("env", {}), theirs.get("env", {})
    out += sorted(k for k in set(env_a) | set(env_b) if env_a.get(k) != env_b.get(k))
    return out


# ----------------------------------------------------------------------------------------------
# The caller: the `churn` command


def main() -> None:
    """The ``churn`` command: ``train`` and ``monitor`` in the warm process when it is up for
    this environment, everything else (and those, without it) in this process."""
    argv = sys.argv[1:]
    code = run_warm(argv) if argv and argv[0] in WARM_COMMANDS else None
    if code is not None:
        sys.exit(code)
    from pipelines.cli import app

    app(prog_name="churn")


def run_warm(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run ``churn <argv>`` in the warm process and return its exit code; None when there is no
    warm process for this project and environment (the reason, if any, is printed on stderr)."""
    environ = dict(os.environ if environ is None else environ)
    path = socket_path(environ)
    if path is None or not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(_address(path))
    except OSError as exc:  # a socket left by a process that was killed
        _say(f"warm process not used ({path}: {exc.strerror}); running here")
        conn.close()
        return None
    with conn, conn.makefile("rb") as replies:
        request = {
            "argv": list(argv),
            "cwd": str(Path.cwd()),
            "env": environ,
            "fingerprint": fingerprint(environ),
        }
        conn.settimeout(HANDSHAKE_S)
        try:
            socket.send_fds(conn, [_encode(request)], list(_STDIO))
            reply = _receive(replies)
        except TimeoutError:  # a stopped or stuck warm process
            _say(f"warm process not used (no answer within {HANDSHAKE_S:g} s); running here")
            return None
        except OSError as exc:  # e.g. the warm process exiting just now
            _say(f"warm process not used ({exc.strerror or exc}); running here")
            return None
        conn.settimeout(None)  # the command itself takes as long as it takes
        if reply is None or "pid" not in reply:
            reason = (reply or {}).get("refused", "it closed the connection")
            _say(f"warm process not used ({reason}); running here")
            return None
        pid = int(reply["pid"])

        def forward(signum: int, _frame: Any) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        reply = _receive(replies)
    if reply is None or "exit" not in reply:
        _say(f"the command in the warm process (pid {pid}) ended without an exit code (killed?)")
        return 1
    return int(reply["exit"])


def ping(path: Path, environ: Mapping[str, str]) -> list[str] | None:
    """What differs between the warm process on ``path`` and ``environ`` ([] if nothing), or None
    when no warm process answers there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(_address(path))
            conn.sendall(_encode({"ping": fingerprint(environ)}))
            with conn.makefile("rb") as replies:
                reply = _receive(replies)
    except OSError:
        return None
    return None if reply is None else list(reply.get("differ", []))


def start(path: Path, timeout: float = 180) -> str:
    """Start the warm process on ``path`` in the background, or keep the one that is up for this
    environment (one that is up for another is replaced); returns what it did."""
    differ = ping(path, os.environ)
    if differ == []:
        return f"warm process up ({path})"
    if differ:
        stop(path)
    pid_file, log_file = path.with_suffix(".pid"), path.parent / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting the warm process: it imports the flows' libraries once (log: %s)", log_file)
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.warm"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the make target, away from its Ctrl-C
        )
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace").splitlines()[-20:]
            pid_file.unlink(missing_ok=True)
            raise RuntimeError("the warm process exited:\n" + "\n".join(tail))
        if ping(path, os.environ) == []:
            started = f"warm process started, pid {process.pid}, log {log_file}"
            if differ:
                started += f" (it replaced one whose {', '.join(differ)} differed)"
            return started
        time.sleep(0.2)
    process.terminate()
    pid_file.unlink(missing_ok=True)
    raise RuntimeError(f"the warm process was not ready within {timeout:.0f} s (log: {log_file})")


def stop(path: Path) -> str:
    """Stop the warm process that :func:`start` started on ``path``; returns what it did."""
    pid_file = path.with_suffix(".pid")
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        return f"no warm process started (no {pid_file})"
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return "warm process was not running"
    return f"warm process (pid {pid}) stopped"


# ----------------------------------------------------------------------------------------------
# The warm process


def serve(path: Path) -> None:
    """Import what the flows need, then fork a child for each command sent to ``path``."""
    started = time.perf_counter()
    failed = preload()
    if failed:
        log.warning("not preloaded (renamed in this fork?): %s", ", ".join(failed))
    drop_project_modules()
    # What the libraries built lives as long as the process: kept out of every collection in the
    # children (they would scan it again and again), and their pages stay shared with this one.
    gc.freeze()
    # A child forked while another thread holds a lock would inherit it held.
    if threading.active_count() > 1:
        names = [t.name for t in threading.enumerate()]
        raise SystemExit(f"warm process: importing started threads {names}; it cannot fork safely")
    ours = fingerprint(os.environ)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # the socket runs commands as this user: only this user may
    try:
        server.bind(_address(path))
    finally:
        os.umask(old_umask)
    server.listen(8)
    parent, inode = os.getpid(), path.stat().st_ino

    def remove_socket() -> None:
        # Not in a child (it runs the exit handlers it inherits), nor a successor's socket.
        with contextlib.suppress(FileNotFoundError):
            if os.getpid() == parent and path.stat().st_ino == inode:
                path.unlink()

    atexit.register(remove_socket)
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    log.info(
        "ready in %.1f s: %d modules imported, pid %d, %s",
        time.perf_counter() - started,
        len(sys.modules),
        parent,
        path,
    )
    while True:
        conn, _ = server.accept()
        try:
            message, fds, _flags, _addr = socket.recv_fds(conn, _MAX_MESSAGE, len(_STDIO))
            request = json.loads(message)
        except (OSError, ValueError) as exc:
            log.warning("unreadable request: %s", exc)
            conn.close()
            continue
        if "ping" in request:
            conn.sendall(_encode({"differ": differences(ours, request["ping"])}))
            _close(conn, fds)
            continue
        argv = request.get("argv", [])
        differ = differences(ours, request.get("fingerprint", {}))
        if differ or len(fds) != len(_STDIO):
            reason = f"{', '.join(differ)} differ" if differ else "no stdin, stdout and stderr"
            if "installed" in differ:
                reason = "the libraries were reinstalled since the warm process started; it stops"
            log.info("refused churn %s: %s", " ".join(argv), reason)
            conn.sendall(_encode({"refused": reason}))
            _close(conn, fds)
            if "installed" in differ:
                return
            continue
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, fds, request)  # never returns: the child exits through SystemExit
        log.info("churn %s: pid %d", " ".join(argv), pid)
        _close(conn, fds)


def _exit_quietly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _child(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """Become the caller's command: its stdio, directory, environment and argv, then run it."""
    status = {"exit": 1}

    def report() -> None:  # registered first, so it runs after every later atexit handler
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(_encode(status))

    atexit.register(report)
    conn.sendall(_encode({"pid": os.getpid()}))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, forwarded by the caller
    for target, fd in zip(_STDIO, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["churn", *request["argv"]]
    logging.getLogger().handlers.clear()  # the command configures logging as a new process does
    try:
        from pipelines.cli import app

        app(args=request["argv"], prog_name="churn")
        status["exit"] = 0
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            status["exit"] = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        status["exit"] = 130
    raise SystemExit(status["exit"])


def preload() -> list[str]:
    """Import :data:`PRELOAD`, then every declared candidate's libraries (``churn.models``:
    ``modules``); returns the names that could not be imported."""
    failed = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            failed.append(name)
    if "churn.models" in sys.modules:
        for name in sys.modules["churn.models"].modules():
            try:
                importlib.import_module(name)
            except ImportError:
                failed.append(name)
    return failed


def drop_project_modules() -> None:
    """Forget the project's own modules, so each child imports them from disk."""
    for name in [m for m in sys.modules if m.partition(".")[0] in PROJECT_PACKAGES]:
        if name != __name__:
            del sys.modules[name]


# ----------------------------------------------------------------------------------------------


def _address(path: Path) -> str:
    """The socket's address: relative to here when the absolute path is too long for AF_UNIX."""
    text = str(path)
    if len(text.encode()) < 100:
        return text
    return os.path.relpath(text)


def _encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _receive(replies: BinaryIO) -> dict[str, Any] | None:
    """One newline-ended JSON message, or None when the peer closed first."""
    line = replies.readline()
    if not line.endswith(b"\n"):
        return None
    reply: dict[str, Any] = json.loads(line)
    return reply


def _close(conn: socket.socket, fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)
    conn.close()


def _say(message: str) -> None:
    print(f"churn: {message}", file=sys.stderr)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    target = socket_path()
    if target is None:
        raise SystemExit("warm process: PREFECT_HOME is not set (the Makefile sets it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    serve(target)
