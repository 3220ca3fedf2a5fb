"""Where each data stage reads and writes under ``data/`` (the same paths ``dvc.yaml`` declares).

The pandas engine writes each path as one file; the dask engine writes the same path as a
directory of parts (``customers.parquet/part-00000.parquet``...), which pandas, Dask and DVC
(a directory out) all read by the same name.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")


def part_name(index: int, suffix: str = ".parquet") -> str:
    """The file name of part ``index`` of a partitioned output."""
    return f"part-{index:05d}{suffix}"


def parts_of(path: Path) -> list[Path]:
    """The parts of an output: the file itself, or a directory's ``part-*`` files in order."""
    if path.is_dir():
        return sorted(path.glob("part-*"))
    return [path]


def clear(path: Path) -> None:
    """Remove an output before it is written again, whether a file or a directory of parts."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.chmod(0o644)
        path.unlink()


@contextmanager
def staged(*outputs: Path) -> Iterator[list[Path]]:
    """A fresh ``<output>.partial`` directory per output to write its parts into; each replaces
    its output when the block ends, and all are removed when it raises: an output appears whole
    or not at all, and a failed run leaves the previous one (what DVC recorded) as it was."""
    staging = [out.with_name(out.name + ".partial") for out in outputs]
    for folder in staging:
        clear(folder)
        folder.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        for folder in staging:
            clear(folder)
        raise
    for folder, out in zip(staging, outputs, strict=True):
        clear(out)
        folder.rename(out)


@dataclass(frozen=True)
class DataLayout:
    """Paths of the versioned data files, relative to one ``data/`` folder."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw" / "customers.parquet"

    @property
    def events(self) -> Path:
        """The customers' activity events (``churn.data.events``; empty for a data set without)."""
        return self.root / "raw" / "events.parquet"

    @property
    def label_times(self) -> Path:
        """When each customer's churn label was read (the point-in-time join's row times)."""
        return self.root / "raw" / "label_times.parquet"

    @property
    def validated(self) -> Path:
        return self.root / "validated" / "customers.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "validated" / "quarantine.csv"

    @property
    def validation_report(self) -> Path:
        return self.root / "validated" / "report.json"

    def split(self, name: str) -> Path:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.root / "splits" / f"{name}.parquet"
