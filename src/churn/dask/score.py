"""The Dask engine's map over a partitioned input: the caller's function on every part.

Batch scoring (``serving.batch.score_partitioned``) passes its per-part scoring function and the
served model; the model is sent to every worker once and each partition's task refers to that
copy. Parts are read as pandas reads them: object columns, and CSV as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow.parquet as pq
from dask.delayed import delayed
from distributed import Client, as_completed


def read_parts(files: Sequence[str], columns: Sequence[str], blocksize: str) -> dd.DataFrame:
    """The parts as one Dask frame of ``columns`` (those present; CSV columns as text)."""
    wanted = set(columns)
    with dask.config.set({"dataframe.convert-string": False}):  # object columns, as pandas reads
        if files[0].lower().endswith(".csv"):
            return dd.read_csv(
                list(files),
                usecols=lambda c: c in wanted,
                dtype=dict.fromkeys(columns, "object"),
                keep_default_na=False,
                blocksize=blocksize,
            )
        present = set(pq.read_schema(files[0]).names)
        return dd.read_parquet(list(files), columns=[c for c in columns if c in present])


def map_parts(
    client: Client,
    frame: dd.DataFrame,
    fn: Callable[[pd.DataFrame, Any, int], Any],
    shared: Any,
    on_done: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``fn(part, shared, index)`` on every partition of ``frame``; the results in part order."""
    copy = client.scatter(shared, broadcast=True, hash=False)
    tasks = [delayed(fn, pure=False)(part, copy, i) for i, part in enumerate(frame.to_delayed())]
    futures = client.compute(tasks)
    order = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, future in enumerate(as_completed(futures), start=1):
        results[order[future.key]] = future.result()
        if on_done is not None:
            on_done(done, len(futures))
    return results
