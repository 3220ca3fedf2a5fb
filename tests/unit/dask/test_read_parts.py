"""The dask engine's Parquet partitions (``churn.dask.score.read_parts``) without a cluster: runs
of row groups, the columns asked for, text columns as categoricals; and the bench's per-core
yardsticks (``tools.bench_scale_bare``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip(
    "distributed", reason="the optional dask group is not installed (uv sync --extra dask)"
)

import dask

from churn.dask.score import read_parts
from tools.bench_scale_bare import Ratio, per_core_table


def _write(path: Path, rows: int, group_rows: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(rows)],
            "Contract": ["Month-to-month", "One year", "Two year"] * (rows // 3),
            "tenure": range(rows),
            "unused": 1.0,
        }
    )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, group_rows)
    return frame


def test_parts_are_runs_of_row_groups_in_order_with_text_as_categoricals(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.parquet", 300, 100)  # 3 row groups
    b = _write(tmp_path / "b.parquet", 90, 90)  # 1
    files = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    group = pq.ParquetFile(files[0]).metadata.row_group(0).total_byte_size

    whole = read_parts(files, ["id", "Contract", "tenure"], "1GiB", ["Contract"])
    small = read_parts(files, ["id", "Contract", "tenure"], str(group), ["Contract"])
    assert len(whole) == 2 and len(small) == 4  # a's 3 groups one by one, b whole

    parts = dask.compute(*small, scheduler="sync")
    got = pd.concat(parts, ignore_index=True)
    want = pd.concat([a, b], ignore_index=True)[["id", "Contract", "tenure"]]
    assert list(got.columns) == ["id", "Contract", "tenure"]
    assert isinstance(got["Contract"].dtype, pd.CategoricalDtype)
    assert got["id"].dtype == object  # not named categorical: as pandas reads it
    pd.testing.assert_frame_equal(got.astype({"Contract": object}), want)


def test_the_per_core_ratios_and_targets() -> None:
    # 1M rows: dask 4 s on 2 workers = 125k rows/s per core; pandas 5 s on one = 200k.
    scoring = Ratio("batch scoring", 1_000_000, 2, dask_s=4.0, pandas_s=5.0, bare_s=8.0)
    assert scoring.per_core == pytest.approx(0.625)
    assert scoring.target() == (">= 0.8x pandas/core", "no")
    assert Ratio("split", 10, 2, dask_s=2.0, pandas_s=4.0).target()[1] == "yes"
    # CPU seconds decide where measured: pandas 3 CPU s against dask's 5 is 0.6x.
    loaded = Ratio("split", 10, 2, dask_s=2.0, pandas_s=4.0, dask_cpu_s=5.0, pandas_cpu_s=3.0)
    assert loaded.per_cpu == pytest.approx(0.6) and loaded.target()[1] == "no"
    train = Ratio("train", 10, 2, dask_s=30.0, bare_s=20.0)
    assert train.over_bare == pytest.approx(1.5) and train.target()[1] == "yes"
    assert Ratio("train", 10, 2, dask_s=31.0, bare_s=20.0).target()[1] == "no"
    assert Ratio("monitor", 1_000_000, 2, dask_s=99.0).target()[1] == "n/a (10M only)"
    assert Ratio("monitor", 10_000_000, 2, dask_s=61.0).target()[1] == "no"
    table = per_core_table([scoring])
    row = "| 1,000,000 | batch scoring | 4.0 | 125,000 | 5.0 | 200,000 | 0.62x | - | 8.0 | 0.50x |"
    assert row in table
