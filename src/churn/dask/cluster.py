"""The Dask engine's cluster: the configured scheduler, or a ``LocalCluster`` for the run; and
what a step says when a worker leaves the cluster under it (``WorkerLostError``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster, default_client

from churn.config.params import EngineParams
from churn.config.settings import Settings

log = logging.getLogger(__name__)


class WorkerLostError(RuntimeError):
    """A step that cannot go on without one of its workers lost it (docs/scaling.md, "When a
    worker dies"): the message names the worker, the step and what to do."""


def _workers(client: Client) -> tuple[str, set[str]]:
    """The scheduler's address and its workers' now (a call to the scheduler)."""
    info = client.scheduler_info(n_workers=-1)
    return str(info["address"]), set(info["workers"])


@contextmanager
def fails_on_lost_worker(client: Client, step: str, then: str) -> Iterator[None]:
    """Run ``step``; if it fails after a worker it started with left the cluster, raise
    ``WorkerLostError`` naming that worker (the library's error is its cause).

    Dask itself recomputes the tasks of a lost worker elsewhere, so most steps complete on the
    workers left; a step that holds its workers together (``xgboost.dask``'s collective) fails
    instead, and its own message (a socket error from the collective, a task on the wrong
    worker) does not say why. ``then`` says what did not happen and what to do.
    """
    _, before = _workers(client)
    try:
        yield
    except Exception as exc:
        try:
            address, now = _workers(client)
        except Exception:  # the scheduler itself is gone: the library's error says so
            now, address = before, ""
        lost = sorted(before - now)
        if not lost:
            raise
        raise WorkerLostError(
            f"{step} failed: Dask worker {', '.join(lost)} left the cluster at "
            f"{address} during it ({type(exc).__name__}); {then}"
        ) from exc


@contextmanager
def dask_client(settings: Settings, engine: EngineParams) -> Iterator[Client]:
    """A client of the configured scheduler, or of a ``LocalCluster`` started (and closed) here.

    A client already open in this process (the training flow opens one for all its stages; a test
    or a benchmark its own) is reused and left open, so the stages of one run share one cluster.
    """
    try:
        current = default_client()
    except ValueError:  # no client open in this process
        pass
    else:
        yield current
        return
    if settings.dask_scheduler:
        log.info("dask engine: connecting to the scheduler at %s", settings.dask_scheduler)
        with Client(settings.dask_scheduler) as client:
            yield client
        return
    log.info(
        "dask engine: starting a LocalCluster of %d workers x %d threads, %s memory each",
        engine.workers,
        engine.threads_per_worker,
        engine.memory_limit,
    )
    with (
        LocalCluster(
            n_workers=engine.workers,
            threads_per_worker=engine.threads_per_worker,
            memory_limit=engine.memory_limit,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        log.info("dask engine: LocalCluster at %s", cluster.scheduler_address)
        yield client
