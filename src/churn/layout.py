"""Where each data stage reads and writes under ``data/`` (the same paths ``dvc.yaml`` declares)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class DataLayout:
    """Paths of the versioned data files, relative to one ``data/`` folder."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw" / "customers.parquet"

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
