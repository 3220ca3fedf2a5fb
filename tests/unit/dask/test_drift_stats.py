"""Mergeable summaries: partitions merged give the whole frame's figures, and the drift distances
from them are scipy's (Evidently's) on the raw values."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

pytest.importorskip(
    "distributed", reason="the optional dask group is not installed (uv sync --extra dask)"
)

from churn.config.errors import DataError
from churn.dask import drift_stats as ds
from churn.data.generator import Drift, generate_customers

NUMERIC = ["tenure", "MonthlyCharges", "TotalCharges"]
CATEGORICAL = ["Contract", "SeniorCitizen", "PaymentMethod"]


def _frame(n: int, seed: int, drift: Drift | None = None) -> pd.DataFrame:
    frame = generate_customers(n, seed, drift=drift)
    return frame.assign(TotalCharges=pd.to_numeric(frame["TotalCharges"], errors="coerce"))


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    drift = Drift(monthly_charges_factor=1.4, new_category={"PaymentMethod": "Crypto"})
    return _frame(6000, 1), _frame(9000, 2, drift)


def test_merged_partitions_equal_the_whole_frame(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = frames
    grid = ds.grids(reference, NUMERIC)
    whole = ds.summarize(current, NUMERIC, CATEGORICAL, grid)
    cuts = [0, 7, 2500, 2501, 6000, 9000]  # uneven, one single-row partition
    parts = [current.iloc[a:b] for a, b in itertools.pairwise(cuts)]
    merged = ds.merge(ds.summarize(p, NUMERIC, CATEGORICAL, grid) for p in parts)
    assert merged.rows == whole.rows == 9000
    for c in NUMERIC:
        m, w = merged.columns[c], whole.columns[c]
        assert isinstance(m, ds.NumericSummary) and isinstance(w, ds.NumericSummary)
        assert (m.count, m.missing, m.min, m.max) == (w.count, w.missing, w.min, w.max)
        assert m.hist is not None and w.hist is not None
        np.testing.assert_array_equal(m.hist, w.hist)
        assert m.below == w.below and m.above[0] == w.above[0]
        values = current[c].dropna()
        assert m.mean == pytest.approx(values.mean(), rel=1e-12)
        assert m.std == pytest.approx(values.std(ddof=0), rel=1e-9)
    assert merged.columns["TotalCharges"].missing == current["TotalCharges"].isna().sum() > 0
    for c in CATEGORICAL:
        m = merged.columns[c]
        assert isinstance(m, ds.CategoricalSummary)
        assert m.levels == {k: int(v) for k, v in current[c].value_counts().items()}
    ref = ds.summarize(reference, NUMERIC, CATEGORICAL, grid)
    from_parts, from_whole = ds.drift(ref, merged), ds.drift(ref, whole)
    for c, d in from_whole.items():  # equal up to the rounding of a sum in another order
        assert from_parts[c].score == pytest.approx(d.score, rel=1e-12)
        assert from_parts[c].psi == pytest.approx(d.psi, rel=1e-12)
        assert (from_parts[c].method, from_parts[c].drifted) == (d.method, d.drifted)


def test_distances_are_evidentlys_on_the_raw_values(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """Normed Wasserstein within the grid's bound of scipy's; Jensen-Shannon exactly scipy's."""
    reference, current = frames
    grid = ds.grids(reference, NUMERIC)
    ref = ds.summarize(reference, NUMERIC, CATEGORICAL, grid)
    cur = ds.merge(
        ds.summarize(p, NUMERIC, CATEGORICAL, grid)
        for p in (current.iloc[i : i + 1800] for i in range(0, 9000, 1800))
    )
    got = ds.drift(ref, cur)
    for c in NUMERIC:
        r, x = reference[c].dropna(), current[c].dropna()
        exact = stats.wasserstein_distance(r, x) / np.std(r)
        assert got[c].method == "wasserstein"
        assert got[c].score == pytest.approx(exact, abs=1e-3)
    for c in CATEGORICAL:
        keys = sorted(set(reference[c]) | set(current[c]), key=str)
        p = reference[c].value_counts().reindex(keys, fill_value=0) / len(reference)
        q = current[c].value_counts().reindex(keys, fill_value=0) / len(current)
        assert got[c].method == "jensenshannon"
        assert got[c].score == pytest.approx(distance.jensenshannon(p, q), abs=1e-12)
    assert got["MonthlyCharges"].drifted and got["PaymentMethod"].drifted
    assert not got["SeniorCitizen"].drifted
    # Values beyond the reference's range (charges up 40 %) enter W1 exactly, by their sum.
    above = cur.columns["MonthlyCharges"]
    assert isinstance(above, ds.NumericSummary) and above.above[0] > 0


def test_few_distinct_numbers_use_jensen_shannon_and_psi_on_request() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.integers(0, 3, 5000).astype(float)})
    cur = pd.DataFrame({"x": rng.integers(0, 4, 5000).astype(float)})
    grid = ds.grids(ref, ["x"])
    r, c = ds.summarize(ref, ["x"], [], grid), ds.summarize(cur, ["x"], [], grid)
    assert ds.drift(r, c)["x"].method == "jensenshannon"
    psi = ds.drift(r, c, num_method="psi")["x"]
    assert psi.method == "psi" and psi.score == psi.psi > 0.1
    assert r.columns["x"].quantile(0.5) == 1.0
    with pytest.raises(DataError, match=r"monitor\.num_method: 'ks'"):
        ds.drift(r, c, num_method="ks")
