"""Tiny in-memory frames for unit tests, shaped by the project's own dataset config."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn.config.params import Params, load_params
from churn.data.generator import generate_customers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


@pytest.fixture
def raw() -> pd.DataFrame:
    """Twelve raw rows as ingestion writes them (TotalCharges is text, ' ' at tenure 0)."""
    frame = generate_customers(12, seed=3)
    frame.loc[0, "tenure"] = 0
    frame.loc[0, "TotalCharges"] = " "
    return frame
