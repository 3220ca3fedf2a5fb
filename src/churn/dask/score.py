"""The Dask engine's map over a partitioned input: the caller's function on every part.

Batch scoring (``serving.batch.score_partitioned``) passes its per-part scoring function and the
served model; the model is sent to every worker once and each partition's task refers to that
copy. Parquet parts are read by the task itself with pyarrow (a file, or a run of its row groups
up to ``blocksize``): one task per partition, no read graph on the client, and the columns named
``categorical`` read dictionary-encoded into pandas categoricals, as the pandas engine's batch
read does (``serving.batch.read_chunks``). Other text columns come as pandas reads them (object);
CSV parts are read as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
import pyarrow.parquet as pq
from dask.delayed import Delayed, delayed
from dask.utils import parse_bytes
from distributed import Client, as_completed


def _read_piece(
    path: str, row_groups: list[int] | None, columns: list[str], categorical: list[str]
) -> pd.DataFrame:
    """One Parquet partition: ``row_groups`` of ``path`` (all when None), ``columns`` only."""
    pf = pq.ParquetFile(path, read_dictionary=categorical)
    if row_groups is None:
        return pf.read(columns=columns).to_pandas()
    return pf.read_row_groups(row_groups, columns=columns).to_pandas()


def _pieces(path: str, limit: int) -> list[list[int] | None]:
    """``path``'s row groups in runs of at most ``limit`` uncompressed bytes (one run at least
    one group); ``[None]`` (the whole file) when it is one run."""
    meta = pq.ParquetFile(path).metadata
    runs: list[list[int]] = [[]]
    size = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g).total_byte_size
        if runs[-1] and size + group > limit:
            runs.append([])
            size = 0
        runs[-1].append(g)
        size += group
    return [None] if len(runs) == 1 else list(runs)


def read_parts(
    files: Sequence[str],
    columns: Sequence[str],
    blocksize: str,
    categorical: Sequence[str] = (),
) -> list[Delayed]:
    """The partitions of ``files``, ``columns`` only (those present), as delayed pandas frames.

    Parquet: one per file or per run of its row groups up to ``blocksize``; string columns named
    in ``categorical`` become pandas categoricals. CSV: ``dask.dataframe``'s blocks, every column
    as text.
    """
    wanted = set(columns)
    if files[0].lower().endswith(".csv"):
        with dask.config.set({"dataframe.convert-string": False}):  # object columns, as pandas
            frame = dd.read_csv(
                list(files),
                usecols=lambda c: c in wanted,
                dtype=dict.fromkeys(columns, "object"),
                keep_default_na=False,
                blocksize=blocksize,
            )
        return list(frame.to_delayed())
    present = set(pq.read_schema(files[0]).names)
    keep = [c for c in columns if c in present]
    dictionary = [c for c in categorical if c in present]
    limit = parse_bytes(blocksize)
    read = delayed(_read_piece, pure=True)
    return [read(f, run, keep, dictionary) for f in files for run in _pieces(f, limit)]


def map_parts(
    client: Client,
    parts: Sequence[Delayed],
    fn: Callable[[pd.DataFrame, Any, int], Any],
    shared: Any,
    on_done: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """``fn(part, shared, index)`` on every partition of ``parts``; the results in part order."""
    copy = client.scatter(shared, broadcast=True, hash=False)
    tasks = [delayed(fn, pure=False)(part, copy, i) for i, part in enumerate(parts)]
    futures = client.compute(tasks)
    order = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for done, future in enumerate(as_completed(futures), start=1):
        results[order[future.key]] = future.result()
        if on_done is not None:
            on_done(done, len(futures))
    return results
