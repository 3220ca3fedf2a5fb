"""The derived-feature kinds' table (``churn.config.features`` + ``churn.features.kinds``): every
kind of it, read from the table, through its frame and one-record forms; a kind without
arithmetic and a pipeline step no reader knows are errors that name them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from churn.config.features import DifferenceFeature, FeatureParams
from churn.config.params import Params
from churn.features import kinds
from churn.features.kinds import UnknownKind, plan
from churn.features.pipeline import (
    DERIVE,
    ENCODE,
    FEATURES,
    FILL,
    MODEL,
    DerivedFeatures,
    UnknownStep,
    build_feature_pipeline,
    feature_steps,
    model_steps,
)


def every_kind() -> dict[str, dict[str, Any]]:
    """A ``features`` block with one entry of each kind of the table: its example."""
    return {kind: {f"x_{kind}": m.EXAMPLE} for kind, m in FeatureParams.kinds().items()}


def edge_rows(n: int) -> pd.DataFrame:
    """Numbers already filled (the step runs after fill), with zeros, a negative zero, values
    without an exact decimal form, tiny and huge magnitudes; levels with a missing one."""
    rng = np.random.default_rng(n)
    special = [0.0, -0.0, 0.1 + 0.2, 1e-300, 1e300, 3.0, 118.75]
    pick = lambda: [special[i] if i < len(special) else float(i) for i in rng.integers(0, 12, n)]  # noqa: E731
    levels = ["No", "Yes", "No phone service", "No internet service", "DSL", None]
    frame = pd.DataFrame({c: pick() for c in ("TotalCharges", "MonthlyCharges")})
    frame["tenure"] = rng.integers(0, 5, n)
    for c in ("PhoneService", "InternetService", "TechSupport"):
        frame[c] = [levels[i] for i in rng.integers(0, len(levels), n)]
    return frame


def test_every_kind_of_the_table_has_arithmetic_and_an_example_that_validates() -> None:
    features = FeatureParams.model_validate(every_kind())
    derived = plan(features)
    assert [d.kind for d in derived] == list(FeatureParams.kinds())
    for d, (_, _, entry) in zip(derived, features.entries(), strict=True):
        assert d.reads == entry.reads() and d.reads  # explanations map it back to these


@pytest.mark.parametrize("n", [5, 300])
def test_every_kind_derives_one_record_to_the_bits_of_its_frame(n: int) -> None:
    """Each kind's ``record`` form on each row equals its ``frame`` form (the pipeline step's
    ``transform``) bit for bit, on the few-row and the vectorised paths."""
    frame = edge_rows(n)
    step = DerivedFeatures(FeatureParams.model_validate(every_kind()).model_dump(mode="json"))
    out = step.fit(frame).transform(frame)
    as_lists = step.derive({c: frame[c].tolist() for c in frame}, n)
    for i, record in enumerate(frame.to_dict(orient="records")):
        one = step.derive_record(record)
        assert list(one) == [f"x_{kind}" for kind in FeatureParams.kinds()]
        for name, value in one.items():
            assert type(value) is float
            assert np.float64(value).tobytes() == out[name].to_numpy()[i].tobytes(), (i, name)
            assert np.float64(value).tobytes() == as_lists[name][i].tobytes(), (i, name)


def test_a_difference_is_a_minus_b() -> None:
    frame = pd.DataFrame({"TotalCharges": [10.0, 0.0, 5.5], "MonthlyCharges": [2.5, 3.0, 5.5]})
    step = DerivedFeatures({"differences": {"d": ["TotalCharges", "MonthlyCharges"]}})
    np.testing.assert_array_equal(step.fit(frame).transform(frame)["d"], [7.5, -3.0, 0.0])


def test_a_kind_without_arithmetic_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forker's kind declared in config but not in ``ARITHMETIC`` (the fault is faked by
    removing one): fitting the step names the kind and where to add it."""
    monkeypatch.delitem(kinds.ARITHMETIC, DifferenceFeature)
    step = DerivedFeatures({"differences": {"d": ["TotalCharges", "MonthlyCharges"]}})
    with pytest.raises(UnknownKind, match=r"features\.differences: .*churn/features/kinds\.py"):
        step.fit(pd.DataFrame({"TotalCharges": [1.0], "MonthlyCharges": [1.0]}))


def test_pipeline_steps_are_found_by_name_and_an_unknown_one_is_named(params: Params) -> None:
    pipeline = build_feature_pipeline(params.dataset, params.features)
    steps = feature_steps(pipeline)
    assert steps.fill is pipeline.named_steps[FILL]
    assert steps.derive is pipeline.named_steps[DERIVE]
    assert steps.encode is pipeline.named_steps[ENCODE]
    named = dict(pipeline.steps)
    inserted = Pipeline(
        [(FILL, named[FILL]), ("clip", FunctionTransformer()), *list(pipeline.steps)[1:]]
    )
    with pytest.raises(UnknownStep, match=r"unknown step 'clip' \(FunctionTransformer\)"):
        feature_steps(inserted)
    with pytest.raises(UnknownStep, match="out of order"):
        feature_steps(Pipeline([(FILL, named[FILL]), (ENCODE, named[ENCODE])]))
    with pytest.raises(UnknownStep, match=r"unknown step 'derive' \(FunctionTransformer\)"):
        feature_steps(
            Pipeline(
                [(FILL, named[FILL]), (DERIVE, FunctionTransformer()), (ENCODE, named[ENCODE])]
            )
        )
    model = FunctionTransformer()
    assert model_steps(Pipeline([(FEATURES, pipeline), (MODEL, model)])) == (pipeline, model)
    extra = Pipeline([(FEATURES, pipeline), ("extra", FunctionTransformer()), (MODEL, model)])
    with pytest.raises(UnknownStep, match=r"unknown step 'extra'"):
        model_steps(extra)
