"""A real two-worker Dask LocalCluster, and partitioned Parquet written chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churn.data.generator import Drift, generate_customers


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """``LocalCluster(n_workers=2, threads_per_worker=1)``, as XGBoost's own tests use; one per
    session (per xdist worker): starting the worker processes is the slow part."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def write_parts(
    folder: Path,
    parts: int,
    rows: int,
    *,
    seed: int = 0,
    drift: Drift | None = None,
    suffix: str = ".parquet",
) -> pd.DataFrame:
    """``parts`` files of ``rows`` generated customers each (one chunk in memory at a time);
    returns their concatenation, for the in-memory side of a comparison."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(parts):
        chunk = generate_customers(rows, seed + i, drift=drift, id_prefix=f"p{i}-")
        path = folder / f"part-{i:03d}{suffix}"
        chunk.to_parquet(path, index=False) if suffix == ".parquet" else chunk.to_csv(
            path, index=False
        )
        frames.append(chunk)
    return pd.concat(frames, ignore_index=True)
