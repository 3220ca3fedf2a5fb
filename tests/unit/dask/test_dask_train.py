"""The dask engine's training with a derived-feature kind enabled, and its pipeline steps by name:
a step it does not know stops it, named, instead of keeping the sample's statistics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from churn.config.params import Params
from churn.data.generator import generate_customers
from churn.data.split import split_frame
from churn.data.validate import validate_frame
from churn.features.pipeline import UnknownStep, build_feature_pipeline, feature_steps
from churn.models import check_serving
from churn.training.train import assemble

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def with_difference(params: Params) -> Params:
    """The project's params with ``features.differences`` enabled; samples smaller than the
    training split, so exact statistics differ from the sample's."""
    raw = params.model_dump(mode="json", by_alias=True)
    raw["features"]["differences"] = {"billed_before": ["TotalCharges", "MonthlyCharges"]}
    raw["engine"].update(kind="dask", sample_rows=400)
    raw["split"]["method"] = "hash"
    raw["train"]["search"]["n_trials"] = 0
    raw["train"]["xgboost"]["n_estimators"] = 20
    return Params.model_validate(raw)


@pytest.fixture(scope="module")
def splits(with_difference: Params) -> dict[str, pd.DataFrame]:
    valid = validate_frame(generate_customers(3000, seed=11), with_difference.dataset).valid
    frames = split_frame(valid, with_difference.dataset, with_difference.split)
    return {n: f.reset_index(drop=True) for n, f in frames.items()}


def dask_splits(splits: dict[str, pd.DataFrame]) -> Any:
    import dask.dataframe as dd

    from churn.dask.train import Splits

    return Splits(
        frames={n: dd.from_pandas(f, npartitions=3) for n, f in splits.items()},
        rows={n: len(f) for n, f in splits.items()},
    )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A one-worker, one-thread cluster in this process (``xgboost.dask`` needs a client)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_the_dask_engine_trains_with_a_difference_on_exact_statistics(
    client: Any, with_difference: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """The difference is derived on every partition: its scaler statistics are those of every
    training row (the pandas fit of the whole split), not the 400-row sample's; the trained
    artefact is served by the compiled replay, checked against the pipeline."""
    from churn.dask.train import featurize, train

    features = featurize(dask_splits(splits), with_difference)
    scaler = feature_steps(features.sample.pipeline).encode.named_transformers_["num"]
    whole = build_feature_pipeline(with_difference.dataset, with_difference.features)
    exact = feature_steps(whole.fit(splits["train"])).encode.named_transformers_["num"]
    assert list(scaler.feature_names_in_) == list(exact.feature_names_in_)
    assert "billed_before" in list(scaler.feature_names_in_)
    np.testing.assert_allclose(scaler.mean_, exact.mean_, rtol=1e-9)
    np.testing.assert_allclose(scaler.scale_, exact.scale_, rtol=1e-9)
    assert len(features.sample.frames["train"]) < len(splits["train"])

    trained = train(client, features, with_difference)
    model = assemble(features.sample.pipeline, trained.model)
    check = check_serving(model, with_difference.dataset, splits["test"])
    assert check.scorer == "compiled" and check.max_abs_diff is not None, check.reason
    assert check.max_abs_diff < 1e-6


def test_a_feature_step_the_dask_engine_does_not_know_stops_it_by_name(
    with_difference: Params, splits: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forker's step inserted before the encoder (faked: the builder wrapped): the engine
    would keep its sample statistics without a word, so it refuses, naming the step."""
    from churn.dask import train as dask_train

    def with_clip(*args: Any) -> Pipeline:
        built = build_feature_pipeline(*args)
        return Pipeline([built.steps[0], ("clip", FunctionTransformer()), *built.steps[1:]])

    monkeypatch.setattr(dask_train, "build_feature_pipeline", with_clip)
    with pytest.raises(UnknownStep, match=r"unknown step 'clip' \(FunctionTransformer\)"):
        dask_train.featurize(dask_splits(splits), with_difference)
