"""The serving scorer's check against the pipeline: compiled for what params.yaml can configure,
the plain pipeline (with the reason) for a step the replay does not know."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline

from churn.config.params import Params
from churn.data.generator import generate_customers
from churn.data.split import label_vector, split_frame
from churn.data.validate import validate_frame
from churn.features.kinds import count_present
from churn.features.pipeline import FEATURES, DerivedFeatures, build_feature_pipeline
from churn.models import FitContext, check_serving, kind, serving_scorer
from churn.scoring import (
    CompiledScorer,
    PipelineScorer,
    probe_columns,
)
from churn.training.train import assemble, calibrate


@pytest.fixture(scope="module")
def splits(params: Params) -> dict[str, pd.DataFrame]:
    valid = validate_frame(generate_customers(1500, seed=5), params.dataset).valid
    return split_frame(valid, params.dataset, params.split)


def fit(
    params: Params,
    splits: dict[str, pd.DataFrame],
    calibration: str = "sigmoid",
    extra_step: Any = None,
    model: Any = None,
) -> Pipeline:
    """A small calibrated model on the project's feature pipeline, as training builds it.

    ``extra_step`` is fitted between the encoder and the model (a forker's change).
    """
    features = build_feature_pipeline(params.dataset, params.features).fit(splits["train"])
    steps: list[tuple[str, Any]] = [("features", features)]
    X = {n: features.transform(f) for n, f in splits.items() if n != "test"}
    if extra_step is not None:
        extra_step.fit(X["train"])
        steps.append(("extra", extra_step))
        X = {n: extra_step.transform(x) for n, x in X.items()}
    y = {n: label_vector(f, params.dataset).to_numpy() for n, f in splits.items()}
    base = (
        model
        if model is not None
        else kind("xgboost").fit(
            X["train"], y["train"], {"n_estimators": 40, "max_depth": 3}, FitContext(0, (), 1)
        )
    )
    if model is not None:
        base.fit(X["train"], y["train"])
    calibrated = calibrate(base, X["valid"], y["valid"], calibration)
    if extra_step is None:
        return assemble(features, calibrated)  # what training registers
    return Pipeline([*steps, ("model", calibrated)])


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_the_check_serves_the_compiled_replay_for_either_calibration(
    params: Params, splits: dict[str, pd.DataFrame], calibration: str
) -> None:
    """Every test row, on every path (one row, a few, the tree walk, all at once), and the probe
    rows: within 1e-6 of ``pipeline.predict_proba``."""
    pipeline = fit(params, splits, calibration)
    check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "compiled" and check.compiled, check.reason
    assert check.max_abs_diff is not None and check.max_abs_diff < 1e-6
    assert check.rows == len(splits["test"]) and check.reason == ""
    assert isinstance(serving_scorer(pipeline, params.dataset), CompiledScorer)


def test_one_record_in_floats_scores_the_same_bits_as_the_matrix_path(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """The single-record path (Python floats around the tree walk) gives exactly the value of
    the matrix path, for a row with a missing number too; isotonic has no such path."""
    scorer = serving_scorer(fit(params, splits), params.dataset)
    assert isinstance(scorer, CompiledScorer) and scorer._predict_one is not None
    rows = splits["test"].head(40).copy()
    rows.loc[rows.index[0], "TotalCharges"] = np.nan
    for i in range(len(rows)):
        cols = {c: [v] for c, v in rows.iloc[i][params.dataset.feature_columns].items()}
        one = scorer.score(cols, 1)
        assert one.shape == (1,) and one.dtype == np.float64
        assert one[0] == scorer.predict(scorer.encode(cols, 1))[0]
    isotonic = serving_scorer(fit(params, splits, "isotonic"), params.dataset)
    assert isinstance(isotonic, CompiledScorer) and isotonic._predict_one is None


def test_one_record_encodes_to_the_bits_of_the_pipeline_and_the_vectorised_path(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """The single-record encoding (Python values, ``DerivedFeatures.derive_record``) gives the
    very bits of the vectorised replay and of the fitted pipeline's own ``transform`` (cast to
    the trees' float32), row by row: a missing number, a zero tenure, an unseen level and a
    value that is no level but counts as absent among them."""
    pipeline = fit(params, splits)
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, CompiledScorer)
    rows = splits["test"].head(60).reset_index(drop=True)
    rows.loc[0, "TotalCharges"] = np.nan
    rows.loc[1, "tenure"] = 0
    rows.loc[2, ["tenure", "TotalCharges"]] = [0, np.nan]
    rows.loc[3, "Contract"] = "Weekly"  # not a level: encoded as none of them
    rows.loc[4, "PhoneService"] = "No phone service"  # no level, but absent for the count
    rows.loc[5, "MonthlyCharges"] = 0.1 + 0.2  # a value with no exact decimal form
    columns = {c: rows[c].tolist() for c in params.dataset.feature_columns}
    vectorised = scorer.encode(columns, len(rows))
    features = pipeline.named_steps[FEATURES]
    transformed = np.asarray(features.transform(rows), dtype=np.float64).astype(np.float32)
    for i in range(len(rows)):
        one = scorer.encode({c: [v[i]] for c, v in columns.items()}, 1)
        assert one.dtype == np.float32 and one.shape == (1, scorer.n_features)
        assert one.tobytes() == vectorised[i : i + 1].tobytes(), i
        assert one.tobytes() == transformed[i : i + 1].tobytes(), i


def test_a_record_derives_the_bits_that_the_pipeline_step_adds() -> None:
    """``derive_record`` on each row's values equals ``DerivedFeatures.transform`` on the frame,
    bit for bit: integers and floats, a zero, a negative zero, a fractional and a missing
    denominator, a missing numerator, a missing level."""
    frame = pd.DataFrame(
        {
            "TotalCharges": [10.0, 0.0, 99.5, 1e-300, 7.0, 0.3, np.nan],
            "tenure": [0, 4, 10, 3, 1, 3, 2],
            "MonthlyCharges": [0.5, 29.85, 0.1 + 0.2, 1e300, 118.75, np.nan, -0.0],
            "PhoneService": ["No", "Yes", "Yes", "No phone service", None, "Yes", "No"],
            "InternetService": ["DSL", "No", None, "Fiber optic", "No", "DSL", "No"],
        }
    )
    step = DerivedFeatures(
        {
            "ratios": {"r": ["TotalCharges", "tenure"], "m": ["TotalCharges", "MonthlyCharges"]},
            "counts": {
                "c": {"columns": ["PhoneService", "InternetService"],
                      "absent": ["No", "No phone service"]}
            },
            "differences": {"d": ["TotalCharges", "MonthlyCharges"], "e": ["tenure", "tenure"]},
        }
    ).fit(frame)  # fmt: skip
    out = step.transform(frame)
    for i, record in enumerate(frame.to_dict(orient="records")):
        derived = step.derive_record(record)
        assert list(derived) == ["r", "m", "c", "d", "e"]
        for name, value in derived.items():
            assert type(value) is float
            assert np.float64(value).tobytes() == out[name].to_numpy()[i].tobytes(), (i, name)


def test_the_replay_follows_any_configured_ratios_and_counts(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """Other columns than the template's: a count over a nullable number (its missing values
    filled before counting, as the pipeline fills them) and an integer-coded level."""
    features = params.features.model_validate(
        {
            "ratios": {
                "monthly_per_tenure": ["MonthlyCharges", "tenure"],
                "total_per_monthly": ["TotalCharges", "MonthlyCharges"],
            },
            "counts": {
                "n_flags": {"columns": ["SeniorCitizen", "TotalCharges", "Partner"],
                            "absent": [0, "No"]},
            },
        }
    )  # fmt: skip
    custom = params.model_copy(update={"features": features})
    pipeline = fit(custom, splits)
    check = check_serving(pipeline, custom.dataset, splits["test"])
    assert check.scorer == "compiled" and check.max_abs_diff is not None, check.reason
    assert check.max_abs_diff < 1e-6


def test_a_difference_is_served_by_the_replay_to_the_bits_of_the_pipeline(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """``features.differences`` enabled beside the template's features: the check serves the
    compiled replay, and one record (a missing number among them) encodes to the very bits of
    the vectorised replay and of the fitted pipeline's own ``transform``."""
    features = params.features.model_validate(
        {
            **params.features.model_dump(mode="json"),
            "differences": {"billed_before": ["TotalCharges", "MonthlyCharges"]},
        }
    )
    custom = params.model_copy(update={"features": features})
    pipeline = fit(custom, splits)
    check = check_serving(pipeline, custom.dataset, splits["test"])
    assert check.scorer == "compiled" and check.max_abs_diff is not None, check.reason
    assert check.max_abs_diff < 1e-6
    scorer = serving_scorer(pipeline, custom.dataset)
    assert isinstance(scorer, CompiledScorer)
    assert "billed_before" in [c for _, c, _, _ in scorer._scale_plan]
    rows = splits["test"].head(30).reset_index(drop=True)
    rows.loc[0, "TotalCharges"] = np.nan
    rows.loc[1, "MonthlyCharges"] = 0.1 + 0.2
    columns = {c: rows[c].tolist() for c in custom.dataset.feature_columns}
    vectorised = scorer.encode(columns, len(rows))
    transformed = np.asarray(pipeline.named_steps[FEATURES].transform(rows), dtype=np.float64)
    for i in range(len(rows)):
        one = {c: [v[i]] for c, v in columns.items()}
        assert scorer.encode(one, 1).tobytes() == vectorised[i : i + 1].tobytes(), i
        assert scorer.encode(one, 1).tobytes() == transformed[i : i + 1].astype("f4").tobytes()
        assert scorer.score(one, 1)[0] == scorer.predict(scorer.encode(one, 1))[0]


@pytest.mark.parametrize(
    ("model", "path"),
    [
        (LogisticRegression(max_iter=2000), "logistic-regression coefficients"),
        (
            RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0),
            "random-forest trees",
        ),
    ],
    ids=["logistic", "random_forest"],
)
@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_the_other_candidates_are_compiled_too(
    params: Params, splits: dict[str, pd.DataFrame], model: Any, path: str, calibration: str
) -> None:
    """The logistic regression and the random forest (the training candidates besides XGBoost):
    their own raw score replayed with numpy, within 1e-6 of the pipeline on every path."""
    pipeline = fit(params, splits, calibration, model=clone(model))
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, CompiledScorer)
    assert scorer.model_path == f"{path}, {calibration} calibration"
    check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "compiled" and check.max_abs_diff is not None, check.reason
    assert check.max_abs_diff < 1e-6


def test_a_model_no_candidate_declares_is_scored_by_its_own_predict_proba_and_says_so(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """Any other classifier: the replayed matrix, then the model's own ``predict_proba``; the
    scorer is named ``predict_proba`` (never ``compiled``), with why and its one-row time."""
    pipeline = fit(params, splits, model=GaussianNB())
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, CompiledScorer)
    assert scorer.kind == "predict_proba"
    assert scorer.model_path == "CalibratedClassifierCV.predict_proba"
    assert "sklearn.naive_bayes.GaussianNB" in scorer.reason
    check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "predict_proba" and check.max_abs_diff is not None
    assert check.max_abs_diff < 1e-6 and check.replayed and not check.compiled
    assert "no module of churn/models/candidates/ declares" in check.reason
    assert check.one_row_ms is not None and check.one_row_ms > 0


def test_an_unknown_step_is_served_by_the_pipeline_with_the_reason(
    params: Params, splits: dict[str, pd.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    """A feature selector between the encoder and the model: the replay does not know it, so the
    check says ``pipeline``, names the step, and warns."""
    pipeline = fit(params, splits, extra_step=VarianceThreshold())
    with caplog.at_level("WARNING"):
        check = check_serving(pipeline, params.dataset, splits["test"])
    assert check.scorer == "pipeline" and not check.compiled
    assert "VarianceThreshold" in check.reason and check.max_abs_diff is None
    assert "slower pipeline scorer" in caplog.text and "VarianceThreshold" in caplog.text
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, PipelineScorer) and "VarianceThreshold" in scorer.reason
    probe = probe_columns(params.dataset, n=5)
    expected = pipeline.predict_proba(scorer.frame(probe))[:, 1]
    np.testing.assert_allclose(scorer.score(probe, 5), expected)


@pytest.mark.parametrize("n", [3, 50])
def test_a_count_is_the_same_from_lists_arrays_and_categoricals(n: int) -> None:
    """The few-row and the vectorised forms agree; a missing value counts as present."""
    rng = np.random.default_rng(n)
    levels = ["No", "Yes", "No internet service", None]
    a = [levels[i] for i in rng.integers(0, 4, n)]
    b = list(rng.choice([0.0, 1.0, np.nan], n))
    expected = [sum(v not in {"No", 0} for v in row) for row in zip(a, b, strict=True)]
    absent = ["No", 0]
    np.testing.assert_array_equal(count_present([a, b], absent, n), expected)
    as_arrays = [np.asarray(a, dtype=object), np.asarray(b)]
    np.testing.assert_array_equal(count_present(as_arrays, absent, n), expected)
    as_categorical = [pd.Series(a, dtype="category"), pd.Series(b)]
    np.testing.assert_array_equal(count_present(as_categorical, absent, n), expected)


def test_the_pipeline_step_and_the_replay_derive_with_one_function(params: Params) -> None:
    """``DerivedFeatures.transform`` adds exactly what ``derive`` returns for the same rows."""
    frame = pd.DataFrame(
        {
            "TotalCharges": [10.0, 0.0, 99.5],
            "tenure": [0, 4, 10],
            "PhoneService": ["No", "Yes", "Yes"],
            "InternetService": ["DSL", "No", None],
        }
    )
    step = DerivedFeatures(
        {
            "ratios": {"r": ["TotalCharges", "tenure"]},
            "counts": {"c": {"columns": ["PhoneService", "InternetService"], "absent": ["No"]}},
        }
    ).fit(frame)
    out = step.transform(frame)
    np.testing.assert_array_equal(out["r"], [10.0, 0.0, 9.95])
    np.testing.assert_array_equal(out["c"], [1.0, 1.0, 2.0])
    derived = step.derive({c: frame[c].tolist() for c in frame}, 3)
    np.testing.assert_array_equal(derived["r"], out["r"])
    np.testing.assert_array_equal(derived["c"], out["c"])


@pytest.mark.parametrize("n", [1, 20, 5000])
def test_a_value_that_is_no_level_but_counts_as_absent_scores_as_in_the_pipeline(
    params: Params, splits: dict[str, pd.DataFrame], n: int
) -> None:
    """``PhoneService: "No phone service"`` is not a PhoneService level (one-hot: none of them)
    but is one of the count's ``absent`` values: the replay counts it as the pipeline does, on
    the row path, the vectorised path and (above 4096 rows) the categorical one."""
    pipeline = fit(params, splits)
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, CompiledScorer)
    test = splits["test"]
    rows = test.iloc[np.arange(n) % len(test)].reset_index(drop=True)
    columns = {c: rows[c].tolist() for c in params.dataset.feature_columns}
    columns["PhoneService"] = [
        "No phone service" if i % 2 == 0 else v for i, v in enumerate(columns["PhoneService"])
    ]
    expected = PipelineScorer(pipeline, params.dataset).score(columns, n)
    np.testing.assert_allclose(scorer.score(columns, n), expected, atol=1e-6)
    as_arrays = {c: np.asarray(v, dtype=object) for c, v in columns.items()}
    np.testing.assert_allclose(scorer.score(as_arrays, n), expected, atol=1e-6)
