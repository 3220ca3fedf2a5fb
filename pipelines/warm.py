"""The warm process: the libraries a flow needs, imported once, and a fresh child per command.

Most of a warm ``make train`` used to be imports: Prefect, MLflow and its SQLite store,
scikit-learn, XGBoost, matplotlib, skops, DVC and Evidently take 8-11 s to import on a 2-core
machine, and every ``churn train`` or ``churn monitor`` paid them again. ``make warm`` (run by the
flow targets) starts this process in the background: it imports them once, then waits on a Unix
socket in ``$PREFECT_HOME``. The ``churn`` command (``pipelines.cli.main``) hands ``train`` and
``monitor`` to it when it is up (:func:`run_warm`): the warm process forks, and the child takes
the caller's stdin, stdout and stderr, argv, working directory and environment, and runs the
command; the caller forwards Ctrl-C and ends with the child's exit code. Everything else runs in
the calling process as before.

This module knows no command: the command line starts it (``churn warm``) and hands it what to
preload and the function its children run, so nothing here imports the command line back.

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
* **it does not linger.** It exits after ``CHURN_WARM_IDLE_TIMEOUT_SECONDS`` (30 minutes) with no
  command, and as soon as its project folder, its socket or its environment (the virtualenv) is
  gone: a deleted clone does not keep half a gigabyte in memory.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

# The project's own packages: imported to reach their libraries, then dropped, so each child
# imports them again from disk.
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
# How often an idle warm process checks its idle time, its project and its environment.
CHECK_EVERY_S = 5.0

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


def start(path: Path, command: Sequence[str], timeout: float = 180) -> str:
    """Start the warm process on ``path`` in the background, or keep the one that is up for this
    environment (one that is up for another is replaced); returns what it did.

    Args:
        path: The socket it listens on (:func:`socket_path`).
        command: The command that runs :func:`serve` (the command line's ``churn warm --serve``).
        timeout: Seconds to wait for it to be ready.
    """
    differ = ping(path, os.environ)
    if differ == []:
        return f"warm process up ({path})"
    if differ:
        stop(path)
    pid_file, log_file = path.with_suffix(".pid"), path.parent / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting the warm process: it imports the flows' libraries once (log: %s)", log_file)
    with log_file.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - the command line's own command
            list(command),
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


def serve(
    path: Path,
    run: Callable[[list[str]], object],
    *,
    preload_modules: Iterable[str],
    idle_timeout_s: float,
    project_dir: Path,
) -> str:
    """Import what the flows need, then fork a child for each command sent to ``path``.

    Args:
        path: The socket to listen on.
        run: What a child calls with the command's arguments (``churn <args>``), after the
            project's modules were dropped: it imports them again, from disk.
        preload_modules: What a flow imports; a name that is missing (renamed in a fork) is
            logged and skipped.
        idle_timeout_s: Exit after this long with no command and no child running.
        project_dir: Exit when this folder is gone (or replaced by another of the same name).

    Returns:
        Why it stopped (also logged); SIGTERM (``make stop``) ends it without a return.
    """
    started = time.perf_counter()
    failed = preload(preload_modules)
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
    pid_file = path.with_suffix(".pid")
    kept = {
        "project folder": (project_dir, _identity(project_dir)),
        "environment": (Path(sys.prefix), _identity(Path(sys.prefix))),
        "socket": (path, _identity(path)),
    }

    def remove_socket() -> None:
        # Not in a child (it runs the exit handlers it inherits), nor a successor's socket.
        with contextlib.suppress(FileNotFoundError):
            if os.getpid() == parent and path.stat().st_ino == inode:
                path.unlink()
        with contextlib.suppress(FileNotFoundError, ValueError):  # nor a successor's pid file
            if os.getpid() == parent and int(pid_file.read_text()) == parent:
                pid_file.unlink()

    atexit.register(remove_socket)
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    log.info(
        "ready in %.1f s: %d modules imported, pid %d, %s; exits after %s idle",
        time.perf_counter() - started,
        len(sys.modules),
        parent,
        path,
        describe_seconds(idle_timeout_s),
    )
    server.settimeout(min(CHECK_EVERY_S, idle_timeout_s))
    children: set[int] = set()
    last_active = time.monotonic()
    while True:
        children = {pid for pid in children if _alive(pid)}
        if children:
            last_active = time.monotonic()
        gone = [name for name, (where, ident) in kept.items() if _identity(where) != ident]
        if gone:
            return _stopping(f"its {' and '.join(gone)} is gone")
        if time.monotonic() - last_active >= idle_timeout_s:
            return _stopping(f"no command for {describe_seconds(idle_timeout_s)}")
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        last_active = time.monotonic()
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
                return _stopping("the libraries were reinstalled")
            continue
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, fds, request, run)  # never returns: the child exits through SystemExit
        log.info("churn %s: pid %d", " ".join(argv), pid)
        children.add(pid)
        _close(conn, fds)


def describe_seconds(seconds: float) -> str:
    """``30 min``, ``90 s``: how the idle timeout is said."""
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _stopping(reason: str) -> str:
    log.info("exiting: %s", reason)
    return reason


def _identity(path: Path) -> tuple[int, int] | None:
    """The folder or file at ``path`` (device, inode), or None when it is gone: a folder deleted
    and made again under the same name is another one."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _alive(pid: int) -> bool:
    """Whether a child still runs (the kernel reaps them: a finished one is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the pid was reused by another user's process
        return False
    return True


def _exit_quietly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _child(
    conn: socket.socket,
    fds: list[int],
    request: dict[str, Any],
    run: Callable[[list[str]], object],
) -> None:
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
        run(list(request["argv"]))
        status["exit"] = 0
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            status["exit"] = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        status["exit"] = 130
    raise SystemExit(status["exit"])


def preload(names: Iterable[str]) -> list[str]:
    """Import ``names``, then every declared candidate's libraries when ``churn.models`` is among
    them (its ``modules()``); returns the names that could not be imported."""
    failed = []
    for name in names:
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
