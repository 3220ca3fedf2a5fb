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
* **only its owner.** A command's request carries its environment (keys, passwords) and its
  terminal, so :func:`run_warm` sends it only to a warm process of the same user: ``PREFECT_HOME``
  must be the user's (or root's) and writable by no one else, ``warm.sock`` a socket the user
  owns (lstat: not a link), and the process listening on it must run as the user (SO_PEERCRED);
  otherwise the command runs in its own process and says why in one line. The warm process
  drops connections from other users (its socket is 0600 besides), reads requests through one
  selector (a connection that sends nothing is closed after ``REQUEST_S`` and holds up no one),
  and each child takes the caller's umask and resource limits (``RLIMITS``) as a process of its
  own would have them.
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
import math
import os
import resource
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from churn.config.redact import mask_credentials

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
# How long the warm process waits for a connection's request: a client that connects and sends
# nothing is closed after this, and never holds up another command meanwhile.
REQUEST_S = 2.0
# The caller's resource limits a child takes (the soft limits, and the hard ones where lower).
RLIMITS = (
    "RLIMIT_NOFILE",
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_CPU",
    "RLIMIT_STACK",
    "RLIMIT_NPROC",
    "RLIMIT_MEMLOCK",
)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
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


class Untrusted(Exception):
    """The socket, its folder or the process listening on it is not the caller's own: nothing
    may be sent there (the request carries the environment, keys and passwords included, and
    the caller's terminal)."""


def home_problem(home: Path) -> str | None:
    """Why a warm process in ``home`` (``PREFECT_HOME``) cannot be trusted, or None.

    Whoever may write the folder may put a socket there that is not a warm process: it must be
    the caller's (or root's) and writable by nobody else.
    """
    st = home.stat()  # OSError when it is gone: no warm process there
    if st.st_uid not in (os.getuid(), 0):
        return f"{home} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    others = [
        who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit
    ]
    if others:
        return (
            f"PREFECT_HOME {home} is writable by {' and '.join(others)}, who could put a socket "
            f"there that reads your environment; run `chmod 700 {home}` to use the warm process"
        )
    return None


def socket_problem(path: Path) -> str | None:
    """Why ``path`` is not this user's warm socket (lstat: a socket, not a link, ours), or None."""
    st = path.lstat()  # OSError when it is gone: no warm process there
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link, not the warm process's socket; remove it"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} is not a socket; remove it"
    if st.st_uid != os.getuid():
        return (
            f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            "remove it if you did not expect it"
        )
    return None


def peer_uid(conn: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    pid, uid, _gid = _PEERCRED.unpack(
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid


def connect(path: Path, timeout: float) -> socket.socket:
    """A connection to this user's warm process on ``path``, checked before anything is sent.

    Raises:
        Untrusted: ``PREFECT_HOME`` may be written by others, the socket is not this user's, or
            the process listening on it runs as another user.
        OSError: nothing listens there (a socket left by a killed process).
    """
    problem = home_problem(path.parent) or socket_problem(path)
    if problem:
        raise Untrusted(problem)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        conn.connect(_address(path))
        _pid, uid = peer_uid(conn)
    except OSError:
        conn.close()
        raise
    if uid != os.getuid():
        conn.close()
        raise Untrusted(
            f"the process listening on {path} runs as uid {uid}, not as you (uid {os.getuid()})"
        )
    return conn


def caller_state() -> dict[str, Any]:
    """What a child takes from the caller besides its environment: its umask and its resource
    limits (``RLIMITS``; [soft, hard], -1 for unlimited)."""
    umask = os.umask(0o077)
    os.umask(umask)
    limits = {
        name: list(resource.getrlimit(getattr(resource, name)))
        for name in RLIMITS
        if hasattr(resource, name)
    }
    return {"umask": umask, "rlimits": limits}


def run_warm(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int | None:
    """Run ``churn <argv>`` in the warm process and return its exit code; None when there is no
    warm process for this project and environment (the reason, if any, is printed on stderr).

    Nothing is sent before the socket, its folder and the process listening on it are found to
    be this user's (:func:`connect`): otherwise the command runs here, and says why.
    """
    environ = dict(os.environ if environ is None else environ)
    path = socket_path(environ)
    if path is None or not os.path.lexists(path):
        return None
    try:
        conn = connect(path, HANDSHAKE_S)
    except Untrusted as exc:
        _say(f"warm process refused: {exc}; running here")
        return None
    except OSError as exc:  # a socket left by a process that was killed
        _say(f"warm process not used ({path}: {exc.strerror or exc}); running here")
        return None
    with conn, conn.makefile("rb") as replies:
        request = {
            "argv": list(argv),
            "cwd": str(Path.cwd()),
            "env": environ,
            "fingerprint": fingerprint(environ),
            **caller_state(),
        }
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

        forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        before = {signum: signal.signal(signum, forward) for signum in forwarded}
        try:
            reply = _receive(replies)
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)
    if reply is None or "exit" not in reply:
        _say(f"the command in the warm process (pid {pid}) ended without an exit code (killed?)")
        return 1
    return int(reply["exit"])


def ping(path: Path, environ: Mapping[str, str]) -> list[str] | None:
    """What differs between the warm process on ``path`` and ``environ`` ([] if nothing), or None
    when no warm process answers there.

    Raises:
        Untrusted: the socket or the process on it is not this user's (:func:`connect`).
    """
    try:
        with connect(path, 5) as conn:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    problem = home_problem(path.parent)
    if problem is None and os.path.lexists(path):
        problem = socket_problem(path)
    try:
        differ = None if problem else ping(path, os.environ)
    except Untrusted as exc:
        problem = str(exc)
    if problem:
        raise RuntimeError(f"no warm process started: {problem}")
    if differ == []:
        return f"warm process up ({path})"
    if differ:
        stop(path)
    pid_file, log_file = path.with_suffix(".pid"), path.parent / LOG_NAME
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
        try:
            ready = ping(path, os.environ) == []
        except Untrusted as exc:  # another socket took its place
            process.terminate()
            raise RuntimeError(f"the warm process's socket was replaced: {exc}") from None
        if ready:
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
    with contextlib.suppress(OSError):  # a pid file others could write names any process
        problem = home_problem(path.parent)
        if problem:
            return f"warm process not stopped: {problem}"
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
    # One selector for the socket and every connection still sending its request: a client that
    # connects and sends nothing is closed after REQUEST_S and never holds up another command.
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    pending: dict[socket.socket, _Pending] = {}
    children: set[int] = set()
    last_active = time.monotonic()

    def drop(conn: socket.socket, why: str | None = None) -> None:
        if why:
            log.warning("closed a connection: %s", why)
        selector.unregister(conn)
        _close(conn, pending.pop(conn).fds)

    while True:
        children = {pid for pid in children if _alive(pid)}
        now = time.monotonic()
        if children or pending:
            last_active = now
        gone = [name for name, (where, ident) in kept.items() if _identity(where) != ident]
        if gone:
            return _stopping(f"its {' and '.join(gone)} is gone")
        if now - last_active >= idle_timeout_s:
            return _stopping(f"no command for {describe_seconds(idle_timeout_s)}")
        for conn in [c for c, p in pending.items() if p.deadline <= now]:
            drop(conn, f"no request within {REQUEST_S:g} s")
        wait = min([CHECK_EVERY_S, idle_timeout_s, *(p.deadline - now for p in pending.values())])
        for key, _events in selector.select(max(wait, 0.01)):
            if key.fileobj is server:
                accepted = _accept(server)
                if accepted is not None:
                    selector.register(accepted, selectors.EVENT_READ)
                    pending[accepted] = _Pending(time.monotonic() + REQUEST_S)
                continue
            conn = cast(socket.socket, key.fileobj)
            got = pending[conn]
            try:
                message, fds, _flags, _addr = socket.recv_fds(conn, _MAX_MESSAGE, len(_STDIO))
            except BlockingIOError:
                continue
            except OSError as exc:
                drop(conn, f"unreadable request: {exc}")
                continue
            got.fds += fds
            got.data += message
            if not message or len(got.data) > _MAX_MESSAGE:
                drop(conn, None if not got.data else "request too long")
                continue
            if not got.data.endswith(b"\n"):
                continue  # the rest of the request is on its way
            selector.unregister(conn)
            del pending[conn]
            conn.settimeout(REQUEST_S)  # for the answer
            try:
                request = json.loads(got.data)
            except ValueError as exc:
                log.warning("unreadable request: %s", exc)
                _close(conn, got.fds)
                continue
            last_active = time.monotonic()
            stop = _answer(conn, got.fds, request, ours)
            if stop:
                return _stopping(stop)
            if stop is not None:  # "": refused, or a ping
                continue
            argv = request.get("argv", [])
            pid = os.fork()
            if pid == 0:
                server.close()
                selector.close()
                for other, waiting in pending.items():  # other clients' sockets and terminals
                    _close(other, waiting.fds)
                _child(conn, got.fds, request, run)  # never returns: exits through SystemExit
            log.info("churn %s: pid %d", mask_credentials(" ".join(argv)), pid)
            children.add(pid)
            _close(conn, got.fds)


@dataclass
class _Pending:
    """A connection whose request has not all arrived: what came, until when it may."""

    deadline: float
    data: bytes = b""
    fds: list[int] = field(default_factory=list)


def _accept(server: socket.socket) -> socket.socket | None:
    """The next connection, if its process runs as this user (SO_PEERCRED); others are dropped
    (the socket is the owner's only, 0600; this holds if its mode or folder was opened)."""
    try:
        conn, _ = server.accept()
    except (BlockingIOError, InterruptedError):
        return None
    try:
        pid, uid = peer_uid(conn)
    except OSError as exc:
        log.warning("dropped a connection whose peer could not be read: %s", exc)
        conn.close()
        return None
    if uid != os.getuid():
        log.warning(
            "dropped a connection from uid %d (pid %d): only uid %d's commands run here",
            uid,
            pid,
            os.getuid(),
        )
        conn.close()
        return None
    conn.setblocking(False)
    return conn


def _answer(
    conn: socket.socket, fds: list[int], request: dict[str, Any], ours: Mapping[str, Any]
) -> str | None:
    """Answer a ping, or refuse a command that cannot run here; None: fork a child for it.

    Returns:
        None to run the command; "" when it was answered here (a ping, a refusal); a reason to
        stop the warm process (the libraries were reinstalled).
    """
    if "ping" in request:
        answer: dict[str, Any] = {"differ": differences(ours, request["ping"])}
        stop = ""
    else:
        reason = _refusal(request, len(fds), ours)
        if reason is None:
            return None
        command = mask_credentials(" ".join(request.get("argv", [])))
        log.info("refused churn %s: %s", command, reason)
        answer = {"refused": reason}
        stop = "the libraries were reinstalled" if reason.startswith("the libraries") else ""
    try:
        conn.sendall(_encode(answer))
    except OSError as exc:  # the caller went away
        log.warning("could not answer a request: %s", exc)
    _close(conn, fds)
    return stop


def _refusal(request: Mapping[str, Any], n_fds: int, ours: Mapping[str, Any]) -> str | None:
    """Why a command cannot run in a child of this process, or None."""
    differ = differences(ours, request.get("fingerprint", {}))
    if "installed" in differ:
        return "the libraries were reinstalled since the warm process started; it stops"
    if differ:
        return f"{', '.join(differ)} differ"
    if n_fds != len(_STDIO):
        return "no stdin, stdout and stderr"
    return limits_problem(request.get("rlimits", {}))


def _limit(value: int) -> float:
    return math.inf if value == resource.RLIM_INFINITY else value


def limits_problem(wanted: Mapping[str, Sequence[int]]) -> str | None:
    """Why a child could not run with the caller's resource limits, or None.

    A soft limit above this process's hard limit cannot be raised back (except by root); an
    address-space limit below what this process has mapped would fail allocations that the
    caller's own process would make.
    """
    for name, (soft, _hard) in wanted.items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        if os.geteuid() != 0 and _limit(soft) > _limit(resource.getrlimit(which)[1]):
            return f"your {name} is above the warm process's hard limit"
        if name == "RLIMIT_AS" and _limit(soft) < _mapped_bytes():
            return f"your {name} is below what the warm process has mapped"
    return None


def _mapped_bytes() -> int:
    """This process's address space (VmSize), in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _take_caller_state(request: Mapping[str, Any]) -> None:
    """The caller's umask and resource limits, in a child (what cannot be set is said)."""
    if isinstance(request.get("umask"), int):
        os.umask(request["umask"])
    for name, (soft, hard) in request.get("rlimits", {}).items():
        which = getattr(resource, name, None)
        if which is None:
            continue
        ours = resource.getrlimit(which)[1]
        if os.geteuid() != 0 and _limit(hard) > _limit(ours):
            hard = ours  # a hard limit is only lowered, except by root
        if _limit(soft) > _limit(hard):
            soft = hard
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError) as exc:
            _say(f"warm child: {name} not set to yours ({exc})")


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
    conn.settimeout(None)
    conn.sendall(_encode({"pid": os.getpid()}))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, forwarded by the caller
    for target, fd in zip(_STDIO, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
    _take_caller_state(request)
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
