"""Ingestion from each kind of source, and the read-only raw snapshot."""

from __future__ import annotations

import http.server
import sqlite3
import threading
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from churn.config.params import IngestParams
from churn.data.ingest import IngestError, read_source, write_snapshot


def test_generator_source_is_seeded():
    source = IngestParams(kind="generator", generator={"n_rows": 50, "seed": 1})
    a = read_source(source, base_dir=Path())
    b = read_source(source, base_dir=Path())
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 50


def test_csv_keeps_the_blank_total_charges_quirk_as_text(raw, tmp_path):
    raw.to_csv(tmp_path.joinpath("c.csv"), index=False)
    frame = read_source(IngestParams(kind="file", path="c.csv"), base_dir=tmp_path)
    assert frame.loc[0, "TotalCharges"] == " "
    assert len(frame) == len(raw)


def test_parquet_file_by_absolute_path(raw, tmp_path):
    raw.to_parquet(tmp_path.joinpath("c.parquet"))
    frame = read_source(
        IngestParams(kind="file", path=str(tmp_path / "c.parquet")), base_dir=Path("/")
    )
    pd.testing.assert_frame_equal(frame, raw)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(IngestError, match=r"nope\.csv does not exist"):
        read_source(IngestParams(kind="file", path="nope.csv"), base_dir=tmp_path)


@pytest.fixture
def http_dir(tmp_path):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_source_over_real_http(raw, http_dir):
    folder, base = http_dir
    raw.to_csv(folder / "customers.csv", index=False)
    frame = read_source(IngestParams(kind="url", url=f"{base}/customers.csv"), base_dir=folder)
    assert list(frame.columns) == list(raw.columns) and len(frame) == len(raw)


def test_url_404_is_an_ingest_error(http_dir):
    _, base = http_dir
    with pytest.raises(IngestError, match="404"):
        read_source(IngestParams(kind="url", url=f"{base}/missing.csv"), base_dir=Path())


def test_sql_source(raw, tmp_path):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        raw.to_sql("customers", conn, index=False)
    source = IngestParams(
        kind="sql",
        sql={"url": f"sqlite:///{db}", "query": "SELECT * FROM customers WHERE tenure > 0"},
    )
    frame = read_source(source, base_dir=tmp_path)
    assert len(frame) == (raw["tenure"] > 0).sum()


def test_failing_query_is_an_ingest_error(tmp_path):
    source = IngestParams(
        kind="sql", sql={"url": f"sqlite:///{tmp_path}/x.db", "query": "SELECT * FROM nope"}
    )
    with pytest.raises(IngestError, match="SQL source failed"):
        read_source(source, base_dir=tmp_path)


def test_snapshot_is_read_only_and_replaceable(raw, tmp_path):
    path = write_snapshot(raw, tmp_path / "raw" / "customers.parquet")
    assert path.stat().st_mode & 0o222 == 0
    write_snapshot(raw.head(3), path)
    assert len(pd.read_parquet(path)) == 3


def test_only_the_generator_without_feedback_is_left_to_dvcs_own_check(tmp_path):
    from churn.data.ingest import source_is_volatile

    generator = IngestParams(kind="generator", feedback={"path": "fb.parquet"})
    assert not source_is_volatile(generator, tmp_path)
    (tmp_path / "fb.parquet").write_bytes(b"")
    assert source_is_volatile(generator, tmp_path)
    assert source_is_volatile(IngestParams(kind="file", path="c.csv"), tmp_path)
