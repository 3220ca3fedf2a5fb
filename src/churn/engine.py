"""Where the stages run: the pandas engine (this process) or a plug-in engine, by one interface.

``params.yaml``'s ``engine.kind`` chooses. ``pandas`` runs in this process (each stage's own
code); any other kind is a plug-in: a package of ``src/churn/`` with a ``plugin.py`` whose
``ENGINE`` implements :class:`Engine` (the optional Dask engine, ``churn.dask``). The plug-ins are
found by reading the library's folder (``PLUGINS``), imported only when a run selects one, and
every caller (the data stages, the training flow, batch scoring, monitoring) goes through
:func:`plugin`: deleting a plug-in is deleting its package, its dependency group and its tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from churn.config.params import EngineParams, Params, engine_plugins
from churn.config.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

# The plug-in engines besides pandas, {kind: module holding its ENGINE}, read from the folder.
PLUGINS: dict[str, str] = engine_plugins()


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift over a whole window, from the engine's merged summaries."""

    column: str
    method: str  # Evidently's display name of the distance
    threshold: float
    score: float
    drifted: bool
    psi: float


@dataclass
class WindowSummary:
    """A partitioned monitoring window judged whole: its drift per column, counts and a sample.

    ``missing`` and ``levels`` count over every row; ``stats`` are each column's summary figures
    (``column_stats`` of the report); ``sample`` is a seeded uniform sample of the prepared rows.
    """

    rows: int
    drift: dict[str, ColumnDrift]
    missing: dict[str, int]
    levels: dict[str, dict[Any, int]]
    stats: dict[str, dict[str, Any]]
    sample: pd.DataFrame
    sampled: bool


class Features(Protocol):
    """A plug-in's features (on its workers), with a bounded in-process sample: the
    ``FeatureSet`` the serving check, the training record and the gate read."""

    @property
    def sample(self) -> Any: ...


class Engine(Protocol):
    """What a plug-in engine does for the stages, each on its own workers.

    The callers keep what is theirs: batch scoring passes the per-part scoring function and the
    served model, monitoring the per-part preparation of a window's rows; the engine reads the
    parts, ships the shared value to its workers once, runs the function per part and collects.
    """

    def session(self, settings: Settings, engine: EngineParams) -> AbstractContextManager[Any]:
        """What a whole run holds open (its cluster), which the operations inside reuse."""
        ...

    # The data stages (churn.data.stages): each writes the same outputs as the pandas stage.
    def ingest(self, settings: Settings, params: Params) -> int: ...

    def validate(self, settings: Settings, params: Params) -> Any:
        """The data contract per part: a ``churn.data.validate.ValidationReport`` (the data
        package is above this module, so its type is not named here)."""
        ...

    def split(self, settings: Settings, params: Params) -> dict[str, int]: ...

    # The training flow: features whose ``sample`` is a bounded in-process ``FeatureSet`` (the
    # serving check, the record and the gate read it), the trained candidates, their evaluation.
    def featurize(self, settings: Settings, params: Params) -> Features: ...

    def train(self, settings: Settings, features: Features, params: Params) -> Any: ...

    def evaluate(self, features: Features, trained: Any, params: Params) -> Any: ...

    def map_parts(
        self,
        settings: Settings,
        engine: EngineParams,
        files: Sequence[str],
        columns: Sequence[str],
        fn: Callable[[pd.DataFrame, Any, int], Any],
        shared: Any,
        *,
        blocksize: str = "64MiB",
        categorical: Sequence[str] = (),
        on_done: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """``fn(part, shared, index)`` on every partition of ``files`` (Parquet, or CSV read as
        text), ``columns`` only; the results in input order. Parquet string columns named in
        ``categorical`` arrive as pandas categoricals. ``on_done(done, total)`` after each.
        """
        ...

    def summarize_window(
        self,
        settings: Settings,
        params: Params,
        files: Sequence[str],
        columns: Sequence[str],
        reference: pd.DataFrame,
        prepare: Callable[[pd.DataFrame], pd.DataFrame],
        numeric: Sequence[str],
        categorical: Sequence[str],
        max_sample_rows: int,
    ) -> WindowSummary:
        """A whole window against ``reference``: each part ``prepare``-d and summarised on the
        reference's grid on a worker, the summaries merged, the drift of every column computed
        (``params.monitor``'s methods), and a seeded sample of at most ``max_sample_rows``."""
        ...


def plugin(kind: str) -> Engine:
    """The plug-in engine ``kind``'s ``ENGINE``.

    Raises:
        ValueError: ``kind`` is no plug-in engine here, or its libraries are not installed (the
            message says which, and how to install them).
    """
    if kind not in PLUGINS:
        raise ValueError(
            f"engine.kind {kind!r} is not a plug-in engine here (plug-ins: {sorted(PLUGINS)}; "
            "one is a package of src/churn/ with a plugin.py); set engine.kind: pandas"
        )
    try:
        module = importlib.import_module(PLUGINS[kind])
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"engine.kind {kind!r} needs {exc.name!r}, which is not installed here: install "
            f"its dependency group (uv sync --extra {kind}; make install takes every group) or "
            "set engine.kind: pandas in params.yaml"
        ) from exc
    found: Engine = module.ENGINE
    return found


@contextmanager
def session(settings: Settings, engine: EngineParams) -> Iterator[Any]:
    """What a whole run (the training flow) holds open: the plug-in's session, or nothing on
    pandas. The stages inside reuse it, so one run starts one cluster."""
    if engine.kind == "pandas":
        yield None
        return
    with plugin(engine.kind).session(settings, engine) as held:
        yield held
