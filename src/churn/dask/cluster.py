"""The Dask engine's cluster: the configured scheduler, or a ``LocalCluster`` for the run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster, default_client

from churn.config.params import EngineParams
from churn.config.settings import Settings

log = logging.getLogger(__name__)


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
