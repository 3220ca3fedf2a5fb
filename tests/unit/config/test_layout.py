"""``staged``: a partitioned output appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn.config.layout import part_name, staged


def _write(folder: Path, n: int, text: str) -> None:
    for i in range(n):
        (folder / part_name(i)).write_text(text)


def test_a_finished_block_replaces_the_output_whole(tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    out.mkdir()
    _write(out, 3, "old")
    with staged(out) as (folder,):
        assert folder == tmp_path / "train.parquet.partial" and not any(folder.iterdir())
        _write(folder, 2, "new")
        assert (out / part_name(2)).read_text() == "old"  # untouched while the parts are written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]
    assert [p.read_text() for p in sorted(out.iterdir())] == ["new", "new"]


def test_a_failed_block_leaves_the_previous_outputs_and_no_partial_parts(tmp_path: Path) -> None:
    """A stage that fails half-way (one of several outputs written, part of another) publishes
    nothing: the outputs DVC recorded stay as they were, and a file output too."""
    valid, quarantine = tmp_path / "valid.parquet", tmp_path / "quarantine.csv"
    valid.mkdir()
    _write(valid, 2, "old")
    quarantine.write_text("old file")
    (tmp_path / "valid.parquet.partial").mkdir()  # left by a process killed outright
    (tmp_path / "valid.parquet.partial" / "stale").write_text("x")
    with pytest.raises(RuntimeError, match="worker lost"), staged(valid, quarantine) as folders:
        assert not any(folders[0].iterdir())  # a stale staging directory is cleared first
        _write(folders[0], 2, "new")
        _write(folders[1], 1, "new")
        raise RuntimeError("worker lost")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quarantine.csv", "valid.parquet"]
    assert [p.read_text() for p in sorted(valid.iterdir())] == ["old", "old"]
    assert quarantine.read_text() == "old file"
