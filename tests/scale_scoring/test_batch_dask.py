"""Batch scoring on the dask engine: partitioned Parquet in, partitioned Parquet out, row for row
what the in-memory (pandas) path writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.config.errors import DataError
from churn.config.params import load_params
from churn.config.settings import get_settings
from serving.model import ServedModel, load_initial
from tests.scale_scoring.conftest import write_parts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(trained_project: tuple[Path, Any]) -> tuple[ServedModel, Any]:
    settings = get_settings(project_dir=trained_project[0])
    return load_initial(settings, load_params(settings.params_path)), settings


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_partitioned_scoring_equals_in_memory_scoring_row_for_row(
    champion: tuple[ServedModel, Any], dask_client: Any, tmp_path: Path, suffix: str
) -> None:
    """Four parts (an unseen level and blank TotalCharges among them) scored on two workers:
    the same ids in the same order, the same scores and decisions as ``score_file`` on the
    whole file, and the same unseen-level counts."""
    from serving.batch import score_file, score_partitioned

    model, settings = champion
    whole = write_parts(tmp_path / "in", 4, 1500, seed=3, suffix=suffix)
    whole.loc[100, "Contract"] = "Three year"  # in part 0, written again below
    part0 = whole.iloc[:1500]
    path0 = tmp_path / "in" / f"part-000{suffix}"
    part0.to_parquet(path0, index=False) if suffix == ".parquet" else part0.to_csv(
        path0, index=False
    )
    single = tmp_path / f"whole{suffix}"
    whole.to_parquet(single, index=False) if suffix == ".parquet" else whole.to_csv(
        single, index=False
    )
    expected = score_file(
        settings, single, tmp_path / "whole-out.parquet", model=model, progress=False
    )
    summary = score_partitioned(
        settings, tmp_path / "in", tmp_path / "out", kind="dask", model=model, progress=False
    )
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) >= 4
    got = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    want = pd.read_parquet(tmp_path / "whole-out.parquet")
    assert summary.rows == expected.rows == len(got) == 6000
    assert summary.unseen == expected.unseen == {"Contract": 1}
    assert got["customerID"].tolist() == whole["customerID"].tolist()
    pd.testing.assert_frame_equal(got, want)
    assert not (tmp_path / "out.partial").exists()


def test_a_glob_of_parts_and_clear_errors(
    champion: tuple[ServedModel, Any], dask_client: Any, tmp_path: Path
) -> None:
    from churn.data.parts import input_parts
    from serving.batch import score_partitioned

    model, settings = champion
    write_parts(tmp_path / "in", 3, 400, seed=5)
    assert [p.name for p in input_parts(str(tmp_path / "in" / "part-00[02].parquet"))] == [
        "part-000.parquet",
        "part-002.parquet",
    ]
    summary = score_partitioned(
        settings,
        str(tmp_path / "in" / "*.parquet"),
        tmp_path / "o",
        kind="dask",
        model=model,
        progress=False,
    )
    assert summary.rows == 1200
    with pytest.raises(DataError, match=r"no \.parquet or \.csv files"):
        input_parts(tmp_path / "nothing-here")
    pd.DataFrame({"gender": ["Male"]}).to_parquet(tmp_path / "narrow.parquet")
    with pytest.raises(ValueError, match="lacks feature columns"):
        score_partitioned(
            settings,
            tmp_path / "narrow.parquet",
            tmp_path / "o2",
            kind="dask",
            model=model,
            progress=False,
        )
    assert not (tmp_path / "o2").exists()
    assert np.isfinite(pd.read_parquet(tmp_path / "o")["churn_probability"]).all()


def test_without_dask_the_dask_engine_says_what_to_install(
    champion: tuple[ServedModel, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The serving image has no dask (the dask group): a message, not an ImportError, before
    anything is read or written."""
    import sys

    from serving.batch import score_partitioned

    model, settings = champion
    for name in [m for m in sys.modules if m == "dask" or m.startswith(("dask.", "churn.dask"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)  # what an absent package gives
    with pytest.raises(ValueError, match=r"needs 'dask'.*--extra dask.*engine.kind: pandas"):
        score_partitioned(settings, tmp_path / "in", tmp_path / "out", kind="dask", model=model)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
