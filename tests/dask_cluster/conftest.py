"""A real Dask cluster for the tests: ``dask scheduler`` and two ``dask worker`` processes.

The commands are read from ``docker-compose.yml`` (the ``dask-scheduler`` and ``dask-worker``
services), so the tests start exactly what the production profile starts, only on loopback
ports: the scheduler's ``--host``/``--port``/``--dashboard-address`` and the workers' scheduler
address are the only values replaced; ``--nthreads 1`` and ``--memory-limit`` stay compose's.
Each process runs in its own process group and is killed with it at the end; a finalizer
checks that none is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed.diagnostics.plugin import WorkerPlugin

from tools.fork import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def compose_commands() -> tuple[list[str], list[str], int]:
    """The scheduler's and a worker's ``command`` from docker-compose.yml, and the workers'
    replica count; ``${VAR:-default}`` is expanded as compose does."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def expand(arg: str) -> str:
        return re.sub(
            r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), arg
        )

    scheduler = [expand(a) for a in services["dask-scheduler"]["command"]]
    worker = [expand(a) for a in services["dask-worker"]["command"]]
    return scheduler, worker, int(services["dask-worker"]["deploy"]["replicas"])


def _replace(command: list[str], flag: str, value: str) -> list[str]:
    i = command.index(flag)
    return [*command[: i + 1], value, *command[i + 2 :]]


@dataclass
class ComposeCluster:
    """The processes of one cluster; ``address`` is what ``CHURN_DASK_SCHEDULER`` takes."""

    logs: Path
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _spawn(self, command: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        # The console script from this environment, as the image's PATH finds `dask`.
        argv = [str(BIN / command[0]), *command[1:]]
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )

    def start(self, timeout_s: float = 60.0) -> ComposeCluster:
        scheduler_cmd, worker_cmd, replicas = compose_commands()
        port = free_port()
        scheduler_cmd = _replace(scheduler_cmd, "--host", "127.0.0.1")
        scheduler_cmd = _replace(scheduler_cmd, "--port", str(port))
        scheduler_cmd = _replace(scheduler_cmd, "--dashboard-address", f"127.0.0.1:{free_port()}")
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = self._spawn(scheduler_cmd, "scheduler")
        self._worker_cmd = [self.address if a.startswith("tcp://") else a for a in worker_cmd]
        for _ in range(replicas):
            self.add_worker()
        self.wait_for_workers(replicas, timeout_s)
        return self

    def add_worker(self) -> subprocess.Popen[bytes]:
        worker = self._spawn(self._worker_cmd, f"worker-{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def client(self, **kwargs: Any) -> Any:
        from distributed import Client

        return Client(self.address, set_as_default=False, **kwargs)

    def wait_for_workers(self, n: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self.client(timeout=5) as client:
                    client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the cluster at {self.address} did not get {n} workers in "
                        f"{timeout_s:.0f} s; see {self.logs}"
                    ) from None
                time.sleep(0.3)

    def worker_pids(self) -> dict[str, int]:
        """Each connected worker's address and the process id of its process."""
        with self.client(timeout=10) as client:
            return {address: int(pid) for address, pid in client.run(os.getpid).items()}

    @contextmanager
    def killed_on_task(self, prefix: str, nth: int = 1) -> Iterator[str]:
        """One worker (yielded: its address) dies, nanny and worker with SIGKILL as when its
        container or pod is lost, as it starts its ``nth`` task named ``prefix``; afterwards the
        cluster gets compose's number of workers back for the next test."""
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin, on the workers
        _, _, replicas = compose_commands()
        with self.client(timeout=10) as client:
            victim = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
            client.register_plugin(KillOnTask(victim, prefix, nth), name="kill-on-task")
            try:
                yield victim
            finally:
                client.unregister_worker_plugin("kill-on-task")
        for worker in self.workers:
            if worker.poll() is None:
                continue
            worker.wait()
        while len([w for w in self.workers if w.poll() is None]) < replicas:
            self.add_worker()
        self.wait_for_workers(replicas)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in [self.scheduler, *self.workers] if p is not None and p.poll() is None]

    def stop(self) -> None:
        for process in self.alive():
            with_group(process, signal.SIGKILL)
        for process in [self.scheduler, *self.workers]:
            if process is not None:
                process.wait(timeout=30)


class KillOnTask(WorkerPlugin):
    """A worker plugin: the worker at ``victim`` kills its process group as it starts executing
    its ``nth`` task whose name is ``prefix`` (``dask.utils.key_split`` of its key: the
    function's name without a leading underscore); a real SIGKILL at a known point of a run."""

    def __init__(self, victim: str, prefix: str, nth: int) -> None:
        self.victim, self.prefix, self.nth, self.seen = victim, prefix, nth, 0

    def setup(self, worker: Any) -> None:
        self.address = worker.address

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        from dask.utils import key_split

        if finish != "executing" or self.address != self.victim or key_split(key) != self.prefix:
            return
        self.seen += 1
        if self.seen == self.nth:
            os.killpg(os.getpgid(0), signal.SIGKILL)


def with_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """``sig`` to the process's group (a worker's nanny and its worker process alike)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def compose_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeCluster]:
    """One cluster per test session (per xdist worker): the scheduler and compose's two
    workers, started as separate processes; torn down with their process groups."""
    cluster = ComposeCluster(logs=tmp_path_factory.mktemp("dask-cluster-logs"))
    try:
        yield cluster.start()
    finally:
        groups = [p.pid for p in [cluster.scheduler, *cluster.workers] if p is not None]
        cluster.stop()
        deadline = time.monotonic() + 10  # a killed nanny's worker is reaped by init, not us
        while (left := [g for g in groups if _group_alive(g)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"dask processes left behind: process groups {left}"
