"""Bring-your-own-data proof: train on the real IBM Telco CSV by changing params.yaml only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.training import training_flow

pytestmark = [pytest.mark.integration, pytest.mark.realdata]

# The real file lives beside the project, never in it; CHURN_REAL_DATA points elsewhere.
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "telco_customer_churn.csv"
REAL = os.environ.get("CHURN_REAL_DATA") or (str(SHARED) if SHARED.is_file() else None)


@pytest.mark.skipif(
    not REAL,
    reason=f"the real Telco CSV is not at {SHARED}; set CHURN_REAL_DATA to its path to run",
)
def test_real_telco_data_trains_a_champion_above_0_84(project_factory):
    path = Path(REAL).resolve()
    assert path.is_file(), f"CHURN_REAL_DATA={REAL} does not exist"
    project = project_factory({"ingest": {"kind": "file", "path": str(path)}})
    summary = training_flow(str(project), push=False)
    print(
        f"real Telco: champion test ROC AUC {summary.test_roc_auc:.4f}, "
        f"baseline {summary.baseline_test_roc_auc:.4f}"
    )
    assert summary.promoted, summary.reason
    assert summary.test_roc_auc >= 0.84
    assert summary.test_roc_auc > summary.baseline_test_roc_auc
