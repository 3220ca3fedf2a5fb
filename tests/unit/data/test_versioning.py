"""Data versions derived from dvc.lock."""

from __future__ import annotations

import pytest

from churn.data.versioning import VersioningError, data_version, locked_data_files

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


def _repo(path):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    (path / "dvc.lock").write_text("schema: '2.0'\n")
    (path / "params.yaml").write_text("a: 1\n")
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)


def test_a_moved_data_lock_does_not_make_the_commit_dirty_but_code_does(tmp_path):
    from churn.data.versioning import git_commit

    _repo(tmp_path)
    clean = git_commit(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    assert git_commit(tmp_path) == clean and not clean.endswith("-dirty")
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert git_commit(tmp_path) == f"{clean}-dirty"


def test_lock_kept_puts_the_committed_lock_back_even_when_the_block_fails(tmp_path):
    from churn.data.versioning import lock_kept

    _repo(tmp_path)
    committed = (tmp_path / "dvc.lock").read_text()
    with lock_kept(tmp_path):
        (tmp_path / "dvc.lock").write_text("moved on\n")
    assert (tmp_path / "dvc.lock").read_text() == committed
    with pytest.raises(RuntimeError), lock_kept(tmp_path):
        (tmp_path / "dvc.lock").write_text("moved on\n")
        raise RuntimeError("retrain failed")
    assert (tmp_path / "dvc.lock").read_text() == committed
