"""The cyclic garbage collector in a command's process: paused while a flow's libraries import,
their objects frozen after, and no collection at exit.

A flow's libraries (Prefect, MLflow, Evidently, pandas, SciPy, ...) leave about 700,000 objects
that live as long as the process. CPython's collector scans every one of them on each full
collection: a fresh ``churn monitor`` at 100,000 predictions spent 3.6 s in the collector, 2.8 s
of it in ten full collections over those imports, and then 2-3 s more in the collections that
end the interpreter (docs/monitoring.md, "Benchmark"). Frozen objects (``gc.freeze``) are left
out of every later collection; the data a flow creates after is still collected as usual, so
memory stays bounded. At exit the process's memory goes back to the system whole, so a final
collection only costs time.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def importing() -> Iterator[None]:
    """Import inside this block with the collector paused, then freeze what exists.

    Imports build modules, classes and functions that stay alive: collecting while they are
    being built finds nothing to free, and freezing them afterwards keeps them out of the
    collections the flow triggers later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def no_collection_at_exit() -> None:
    """Freeze every object when the interpreter exits, so its final collections scan nothing.

    Registered early (atexit runs handlers last-in, first-out), it runs after the handlers the
    libraries register later (Prefect's and MLflow's flushes), just before the interpreter's
    own teardown. Objects are still released by reference counting as modules are cleared.
    """
    atexit.register(gc.freeze)
