"""Where the stages run: the pandas engine (this process) or a Dask cluster.

``params.yaml``'s ``engine`` block chooses; ``CHURN_DASK_SCHEDULER`` points the dask engine at a
running scheduler (Kubernetes, a compose service, cloud VMs), else it starts a ``LocalCluster``
for the run. Stage functions keep one implementation of their logic: the dask path applies the
same per-frame function to each partition.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING

from churn.config.params import EngineParams
from churn.config.settings import Settings

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

# The engines besides pandas (which runs in this process): each a plug-in package, imported by name
# only when a run selects it, so the stages below it never import it and deleting it is deleting
# its package (and its dependency group).
PLUGINS: dict[str, str] = {"dask": "churn.dask"}


def plugin(kind: str, part: str) -> ModuleType:
    """The plug-in engine ``kind``'s module for one ``part`` of the work (``data``, ``train``).

    Raises:
        ValueError: ``kind`` is no plug-in engine, or its package or libraries are not installed
            (the message says which, and how to install them).
    """
    if kind not in PLUGINS:
        raise ValueError(
            f"engine.kind {kind!r} is not a plug-in engine (plug-ins: {sorted(PLUGINS)})"
        )
    name = f"{PLUGINS[kind]}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"engine.kind {kind!r} needs {exc.name!r}, which is not installed here: install "
            f"its dependency group (uv sync --extra {kind}; make install takes every group) or "
            "set engine.kind: pandas in params.yaml"
        ) from exc


@contextmanager
def dask_client(settings: Settings, engine: EngineParams) -> Iterator[Client]:
    """A client of the configured scheduler, or of a ``LocalCluster`` started (and closed) here.

    A client already open in this process (the training flow opens one for all its stages) is
    reused and left open, so the stages of one run share one cluster.
    """
    from distributed import Client, LocalCluster, default_client

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


@contextmanager
def session(settings: Settings, engine: EngineParams) -> Iterator[Client | None]:
    """What a whole run (the training flow) holds open: the dask client, or nothing on pandas.

    The stages inside reuse it (``dask_client``), so one run starts one cluster.
    """
    if engine.kind != "dask":
        yield None
        return
    with dask_client(settings, engine) as client:
        yield client
