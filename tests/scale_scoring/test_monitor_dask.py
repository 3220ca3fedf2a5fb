"""Monitoring on both engines: the same Parquet window gives the same drifted columns and the same
decision, whether Evidently judges it in this process (pandas) or merged per-partition summaries
judge it on a real LocalCluster (dask)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from churn.config.params import Params, load_params
from churn.config.settings import get_settings
from churn.data.generator import Drift, generate_customers
from churn.prediction_store import SCORE_COLUMN
from churn.release import tracking
from monitoring import job
from monitoring.decision import decide

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def champion(trained_project: tuple[Path, Any]) -> dict[str, Any]:
    settings = get_settings(project_dir=trained_project[0])
    params = load_params(settings.params_path)
    version = job.champion_version(settings)
    assert version is not None
    reference = job.load_reference(settings, params, version)
    tracking.connect(settings)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")
    return {"settings": settings, "params": params, "reference": reference, "model": model}


def _window(
    folder: Path, model: Any, drift: Drift | None, parts: int = 4, rows: int = 3000
) -> Path:
    """Exported predictions as Parquet parts: the customers and the champion's scores."""
    folder.mkdir(parents=True)
    for i in range(parts):
        chunk = generate_customers(3000, 100 + i, drift=drift, id_prefix=f"w{i}-")
        chunk["TotalCharges"] = pd.to_numeric(chunk["TotalCharges"], errors="coerce")
        chunk[SCORE_COLUMN] = model.predict_proba(chunk)[:, 1]
        chunk.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder


def _dask(params: Params, **monitor: Any) -> Params:
    return params.model_copy(
        update={
            "engine": params.engine.model_copy(update={"kind": "dask"}),
            "monitor": params.monitor.model_copy(update=monitor),
        }
    )


@pytest.mark.parametrize(
    "drift",
    [
        None,
        Drift(
            monthly_charges_factor=1.5,
            contract_mix={"Month-to-month": 0.9, "One year": 0.05, "Two year": 0.05},
            new_category={"PaymentMethod": "Crypto wallet"},
        ),
    ],
    ids=["no-drift", "drift"],
)
def test_both_engines_flag_the_same_drift(
    champion: dict[str, Any], dask_client: Any, tmp_path: Path, drift: Drift | None
) -> None:
    settings, params, reference = champion["settings"], champion["params"], champion["reference"]
    current = _window(tmp_path / "window", champion["model"], drift)

    window = job.read_window(None, params, NOW, "1", current)  # type: ignore[arg-type]
    assert window.total_rows == window.rows == 12_000 and not window.sampled
    on_pandas = job.check_data(reference, window, params, None)

    # The dask engine judges the whole window and gives Evidently a sample of 3,000 rows.
    scaled = _dask(params, max_current_rows=3000)
    counted = job.read_window(None, scaled, NOW, "1", str(current / "*.parquet"))  # type: ignore[arg-type]
    assert counted.total_rows == 12_000 and counted.sampled
    # The session's client (the fixture's) is the one the engine reuses.
    on_dask, sample = job.check_data_at_scale(
        settings, reference, current, scaled, tmp_path / "drift.html"
    )
    assert on_dask.engine == "dask" and on_dask.current_rows == 12_000
    assert sample.total_rows == 12_000 and on_dask.evidently_rows == sample.rows == 3000
    assert (tmp_path / "drift.html").stat().st_size > 0

    assert on_dask.drifted_columns == on_pandas.drifted_columns
    assert on_dask.drifted_share == pytest.approx(on_pandas.drifted_share)
    for c, d in on_pandas.columns.items():
        assert on_dask.columns[c].method == d.method, c
        assert on_dask.columns[c].score == pytest.approx(d.score, abs=2e-3), c
    assert on_dask.prediction.drifted == on_pandas.prediction.drifted
    assert on_dask.unseen_share == pytest.approx(on_pandas.unseen_share, abs=1e-12)
    assert on_dask.missing_share == pytest.approx(on_pandas.missing_share, abs=1e-12)
    stats = on_dask.column_stats["MonthlyCharges"]
    frames = pd.concat(pd.read_parquet(p) for p in sorted(current.glob("*.parquet")))
    assert stats["count"] == 12_000
    assert stats["mean"] == pytest.approx(frames["MonthlyCharges"].mean(), rel=1e-12)
    assert stats["max"] == frames["MonthlyCharges"].max()

    decisions = [
        decide(
            d, None, p.monitor, window_rows=12_000, labelled_rows=0, last_retrain_at=None, now=NOW
        )
        for d, p in ((on_pandas, params), (on_dask, scaled))
    ]
    assert decisions[0].action == decisions[1].action
    assert decisions[0].drifted_columns == decisions[1].drifted_columns
    assert decisions[0].unseen_columns == decisions[1].unseen_columns
    if drift is None:
        assert decisions[1].action == "none" and not decisions[1].drifted_columns
    else:
        assert decisions[1].drift_detected and decisions[1].action == "retrain"
        assert {"MonthlyCharges", "Contract", "PaymentMethod"} <= set(on_dask.drifted_columns)
        assert decisions[1].unseen_columns == ["PaymentMethod"]
