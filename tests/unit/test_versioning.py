"""Data versions derived from dvc.lock."""

from __future__ import annotations

import pytest

from churn.versioning import VersioningError, data_version, locked_data_files

LOCK = """
schema: '2.0'
stages:
  ingest:
    cmd: churn ingest
    outs:
    - path: data/raw/customers.parquet
      md5: aaa
  split:
    cmd: churn split
    outs:
    - path: data/splits/test.parquet
      md5: bbb
"""


def test_data_version_follows_the_locked_hashes(tmp_path):
    (tmp_path / "dvc.lock").write_text(LOCK)
    files = locked_data_files(tmp_path)
    assert files == {"data/raw/customers.parquet": "aaa", "data/splits/test.parquet": "bbb"}
    v1 = data_version(files)
    assert v1 == data_version(dict(reversed(list(files.items()))))
    assert v1 != data_version({**files, "data/splits/test.parquet": "ccc"})


def test_missing_lock_is_explained(tmp_path):
    with pytest.raises(VersioningError, match="run the data stages first"):
        locked_data_files(tmp_path)
