"""``open_versioned_file``: a data file by its DVC md5, from the cache or from the remote."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from churn.data.versioning import VersioningError, open_versioned_file


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A DVC repo whose one file was pushed to a local remote, then changed in the workspace.

    Shared by the tests (DVC's command line is slow to start); the fetch test restores the cache.
    """
    tmp_path = tmp_path_factory.mktemp("dvc-repo")
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    old = hashlib.md5(b"a,b\n1,2\n").hexdigest()  # noqa: S324 - DVC's own content hash
    run("dvc", "add", "-q", "data.csv")
    run("dvc", "push", "-q")
    (tmp_path / "data.csv").unlink()
    (tmp_path / "data.csv").write_text("a,b\n3,4\n")  # the workspace moved on
    run("dvc", "add", "-q", "data.csv")
    return tmp_path, old


def test_an_old_version_is_read_from_the_cache(repo):
    root, old = repo
    assert open_versioned_file(root, old).read_text() == "a,b\n1,2\n"


def test_an_object_in_the_default_cache_is_read_without_starting_dvc(repo):
    """A monitoring run's first read of the champion's splits skips DVC's import (0.5 s)."""
    import sys

    root, old = repo
    code = (
        "import sys; from pathlib import Path; from churn.data.versioning import "
        "open_versioned_file;"
        f"print(open_versioned_file(Path({str(root)!r}), {old!r}).read_text(), end='');"
        "print('dvc' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == "a,b\n1,2\nFalse\n"


def test_a_version_missing_from_the_cache_is_fetched_from_the_remote(repo):
    root, old = repo
    shutil.rmtree(root / ".dvc" / "cache")
    assert open_versioned_file(root, old).read_text() == "a,b\n1,2\n"


def test_an_unknown_or_malformed_hash_is_refused(repo):
    root, _ = repo
    with pytest.raises(VersioningError, match="neither in the DVC cache nor on the remote"):
        open_versioned_file(root, "0" * 32)
    with pytest.raises(VersioningError, match="not a DVC md5"):
        open_versioned_file(root, "../../etc/passwd")


def test_a_directory_output_gives_its_parts_in_order_also_from_the_remote(tmp_path):
    """The dask engine's stages write directories of parts: a ``.dir`` md5 names them all."""
    import yaml

    from churn.data.versioning import versioned_paths

    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "config", "core.analytics", "false")
    run("dvc", "remote", "add", "-d", "local", str(tmp_path / "remote"))
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in (1, 0, 2):  # written out of order: read back by path
        (parts / f"part-{i:05d}.csv").write_text(f"a\n{i}\n")
    run("dvc", "add", "-q", "parts")
    run("dvc", "push", "-q")
    md5 = yaml.safe_load((tmp_path / "parts.dvc").read_text())["outs"][0]["md5"]
    assert md5.endswith(".dir")
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    shutil.rmtree(parts)
    found = versioned_paths(tmp_path, md5)
    assert [p.read_text() for p in found] == ["a\n0\n", "a\n1\n", "a\n2\n"]
