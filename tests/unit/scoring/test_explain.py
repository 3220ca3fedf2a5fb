"""Reasons for a score (``churn.scoring.explain``): TreeSHAP's identity, the linear decomposition,
the
rules' points, and the mapping from encoded columns back to the customer's fields."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.special import expit
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from churn.config.params import Params
from churn.data.generator import generate_customers
from churn.data.split import label_vector, split_frame
from churn.data.validate import validate_frame
from churn.features.pipeline import build_feature_pipeline, encoded_feature_names
from churn.models import FitContext, explainer_for, kind, serving_scorer, values
from churn.models import explanation_figures as summary_figures
from churn.scoring import CompiledScorer, PipelineScorer
from churn.scoring.explain import NotExplainable
from churn.scoring.fallback_rules import FallbackRules, fit_rules
from churn.training.train import assemble, calibrate


@pytest.fixture(scope="module")
def splits(params: Params) -> dict[str, pd.DataFrame]:
    valid = validate_frame(generate_customers(1500, seed=5), params.dataset).valid
    return split_frame(valid, params.dataset, params.split)


@pytest.fixture(scope="module")
def fitted(params: Params, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The features, the encoded splits and labels, an XGBoost and a logistic regression, each
    calibrated and assembled as training registers them."""
    features = build_feature_pipeline(params.dataset, params.features).fit(splits["train"])
    X = {n: np.asarray(features.transform(f), dtype=np.float32) for n, f in splits.items()}
    y = {n: label_vector(f, params.dataset).to_numpy() for n, f in splits.items()}
    booster = kind("xgboost").fit(
        X["train"], y["train"], {"n_estimators": 40, "max_depth": 3}, FitContext(0, (), 1)
    )
    linear = kind("logistic").fit(
        X["train"], y["train"], values(params.train, "logistic"), FitContext(0, (), 1)
    )
    return {
        "features": features,
        "X": X,
        "y": y,
        "xgboost": booster,
        "linear": linear,
        "xgboost_pipeline": assemble(
            features, calibrate(booster, X["valid"], y["valid"], "sigmoid")
        ),
        "linear_pipeline": assemble(features, calibrate(linear, X["valid"], y["valid"], "sigmoid")),
    }


def columns_of(frame: pd.DataFrame, params: Params) -> dict[str, Any]:
    return {c: frame[c].to_numpy() for c in params.dataset.feature_columns}


def test_treeshap_contributions_and_base_add_up_to_the_boosters_margin(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """TreeSHAP's own identity, row by row on the test split, after the contributions of the
    encoded columns are added up per field; and the margin is the served score's: the
    calibrated probability computed from it is what the compiled scorer answers."""
    test = splits["test"]
    scorer = serving_scorer(fitted["xgboost_pipeline"], params.dataset)
    assert isinstance(scorer, CompiledScorer)
    explanations = explainer_for(scorer, params.dataset).explain(
        columns_of(test, params), len(test)
    )
    assert explanations.method == "treeshap"
    booster = fitted["xgboost"].get_booster()
    margin = booster.predict(xgb.DMatrix(fitted["X"]["test"]), output_margin=True)
    np.testing.assert_allclose(explanations.margin, margin, atol=1e-4)
    assert np.ptp(explanations.margin) > 1.0  # rows differ: the identity is not a constant
    calibrator = fitted["xgboost_pipeline"][-1].calibrated_classifiers_[0].calibrators[0]
    served = expit(-(calibrator.a_ * expit(explanations.margin) + calibrator.b_))
    np.testing.assert_allclose(served, scorer.score(columns_of(test, params), len(test)), atol=1e-5)


def test_a_fields_contribution_is_the_sum_of_its_encoded_columns(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """Contract's contribution = the booster's contributions of Contract_Month-to-month,
    Contract_One year and Contract_Two year; tenure's = its scaled column's."""
    test = splits["test"]
    explanations = explainer_for(fitted["xgboost_pipeline"], params.dataset).explain(
        columns_of(test, params), len(test)
    )
    raw = (
        fitted["xgboost"]
        .get_booster()
        .predict(xgb.DMatrix(fitted["X"]["test"]), pred_contribs=True)
    )
    names = encoded_feature_names(fitted["features"])
    reasons = [r.name for r in explanations.reasons]
    contract = [j for j, n in enumerate(names) if n.startswith("Contract_")]
    assert len(contract) == len(params.dataset.categorical["Contract"])
    np.testing.assert_allclose(
        explanations.contributions[:, reasons.index("Contract")],
        raw[:, contract].sum(axis=1),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        explanations.contributions[:, reasons.index("tenure")],
        raw[:, names.index("tenure")],
        atol=1e-5,
    )


def test_reasons_name_the_customers_fields_and_values(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """One row as a client sends it: every reason is one of the customer's fields (with the
    value sent) or a configured derived feature (with the fields it is computed from)."""
    row = splits["test"].iloc[[3]]
    record = {c: [v.item() if hasattr(v, "item") else v] for c, v in row.iloc[0].items()}
    explainer = explainer_for(
        serving_scorer(fitted["xgboost_pipeline"], params.dataset), params.dataset
    )
    explained = explainer.explain(record, 1).record(0, top_k=50)
    derived = params.features.names()
    reasons = explained["up"] + explained["down"]
    assert reasons
    for reason in reasons:
        name = reason["field"]
        if name in params.dataset.feature_columns:
            assert reason["value"] == record[name][0], name
            assert reason["text"].startswith(f"{name} = ")
            assert "derived_from" not in reason
        else:
            assert name in derived, name
            assert set(reason["derived_from"]) <= set(params.dataset.feature_columns)
            assert all(reason["derived_from"][c] == record[c][0] for c in reason["derived_from"])
        assert reason["text"].endswith(f": {reason['contribution']:+.2f}")
    ratio = next(r for r in reasons if r["field"] in params.features.ratios)
    num, den = params.features.ratios[ratio["field"]].reads()
    assert ratio["value"] == pytest.approx(record[num][0] / max(record[den][0], 1), rel=1e-4)
    # up: positive, largest first; down: negative, most negative first
    ups = [r["contribution"] for r in explained["up"]]
    downs = [r["contribution"] for r in explained["down"]]
    assert all(c > 0 for c in ups) and ups == sorted(ups, reverse=True)
    assert all(c < 0 for c in downs) and downs == sorted(downs)
    total = explained["base"] + sum(ups) + sum(downs)
    assert total == pytest.approx(explained["margin"], abs=1e-5)  # top_k 50 keeps every field
    two = explainer.explain(record, 1).record(0, top_k=2)
    assert len(two["up"]) <= 2 and len(two["down"]) <= 2
    assert [r["field"] for r in two["up"]] == [r["field"] for r in explained["up"][:2]]


def test_the_compiled_and_the_pipeline_encodings_explain_alike(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    test = splits["test"].head(50)
    cols = columns_of(test, params)
    pipeline = fitted["xgboost_pipeline"]
    scorer = serving_scorer(pipeline, params.dataset)
    assert isinstance(scorer, CompiledScorer)
    compiled = explainer_for(scorer, params.dataset).explain(cols, len(test))
    plain = explainer_for(PipelineScorer(pipeline, params.dataset), params.dataset).explain(
        cols, len(test)
    )
    np.testing.assert_allclose(compiled.contributions, plain.contributions, atol=1e-5)


def test_a_logistic_regression_is_explained_by_coefficient_times_centred_value(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """base + contributions = the regression's own decision function; a scaled field's
    contribution is its coefficient x its scaled value (the training mean is 0)."""
    test = splits["test"]
    explanations = explainer_for(fitted["linear_pipeline"], params.dataset).explain(
        columns_of(test, params), len(test)
    )
    assert explanations.method == "linear"
    linear = fitted["linear"]
    np.testing.assert_allclose(
        explanations.margin, linear.decision_function(fitted["X"]["test"]), atol=1e-6
    )
    names = encoded_feature_names(fitted["features"])
    j = names.index("MonthlyCharges")
    reasons = [r.name for r in explanations.reasons]
    np.testing.assert_allclose(
        explanations.contributions[:, reasons.index("MonthlyCharges")],
        linear.coef_[0, j] * fitted["X"]["test"][:, j],
        atol=1e-6,
    )


def test_the_fallback_rules_are_explained_by_their_points(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    y = fitted["y"]
    rules = fit_rules(
        splits["train"], y["train"], splits["valid"], y["valid"], params.dataset, params.train.costs
    )
    test = splits["test"]
    explanations = explainer_for(rules, params.dataset).explain(columns_of(test, params), len(test))
    assert explanations.method == "rules"
    assert [r.name for r in explanations.reasons] == [c.column for c in rules.columns]
    np.testing.assert_allclose(expit(explanations.margin), rules.score_frame(test), atol=1e-12)


def test_a_model_without_an_explainer_says_which_and_why(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        fitted["X"]["train"], fitted["y"]["train"]
    )
    pipeline = assemble(
        fitted["features"], calibrate(forest, fitted["X"]["valid"], fitted["y"]["valid"], "sigmoid")
    )
    with pytest.raises(NotExplainable, match="not available for RandomForestClassifier"):
        explainer_for(pipeline, params.dataset)
    with pytest.raises(NotExplainable, match="prior-rate rule"):
        explainer_for(FallbackRules.prior(0.26, 0.3), params.dataset)
    assert summary_figures(pipeline, splits["test"], params.dataset) == {}
    odd = Pipeline([("features", fitted["features"]), ("extra", forest), ("model", forest)])
    with pytest.raises(NotExplainable, match=r"unknown step 'extra' \(RandomForestClassifier\)"):
        explainer_for(odd, params.dataset)


def test_a_difference_is_a_reason_of_its_own_that_names_both_its_fields(
    params: Params, splits: dict[str, pd.DataFrame]
) -> None:
    """``features.differences`` enabled: its contribution is a reason named after it, valued
    ``a - b``, derived from both fields with the values sent; every reason maps back."""
    features = params.features.model_validate(
        {"differences": {"billed_before": ["TotalCharges", "MonthlyCharges"]}}
    )
    custom = params.model_copy(update={"features": features})
    pipe = build_feature_pipeline(custom.dataset, custom.features).fit(splits["train"])
    X = {n: np.asarray(pipe.transform(f), dtype=np.float32) for n, f in splits.items()}
    y = {n: label_vector(f, custom.dataset).to_numpy() for n, f in splits.items()}
    linear = kind("logistic").fit(
        X["train"], y["train"], values(custom.train, "logistic"), FitContext(0, (), 1)
    )
    model = assemble(pipe, calibrate(linear, X["valid"], y["valid"], "sigmoid"))
    row = splits["test"].dropna(subset=["TotalCharges"]).iloc[[0]]
    record = {c: [v.item() if hasattr(v, "item") else v] for c, v in row.iloc[0].items()}
    for scorer in (model, serving_scorer(model, custom.dataset)):
        explained = explainer_for(scorer, custom.dataset).explain(record, 1).record(0, top_k=50)
        reasons = {r["field"]: r for r in explained["up"] + explained["down"]}
        assert set(reasons) <= {*custom.dataset.feature_columns, "billed_before"}
        diff = reasons["billed_before"]
        total, monthly = record["TotalCharges"][0], record["MonthlyCharges"][0]
        assert diff["derived_from"] == {"TotalCharges": total, "MonthlyCharges": monthly}
        assert diff["value"] == pytest.approx(total - monthly, abs=1e-3)
        assert diff["text"].startswith(
            f"billed_before = {diff['value']:g} (TotalCharges = {total:g}, MonthlyCharges = "
        )


def test_the_training_summary_ranks_fields_by_mean_absolute_contribution(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    test = splits["test"]
    explanations = explainer_for(fitted["xgboost_pipeline"], params.dataset).explain(
        columns_of(test, params), len(test)
    )
    means = explanations.mean_abs()
    expected = np.abs(explanations.contributions).mean(axis=0)
    assert list(means.values()) == sorted(expected, reverse=True)
    assert set(means) == {*params.dataset.feature_columns, *params.features.names()}
    figures = summary_figures(fitted["xgboost_pipeline"], test, params.dataset)
    (figure,) = figures.values()
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels[-1] == next(iter(means))  # the largest at the top


def test_the_summary_of_a_large_test_split_is_drawn_on_a_seeded_sample_and_says_so(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """Above ``max_rows`` the bars are the sample's means (the same sample every run), and the
    axis label names the sample's size instead of "the test split"."""
    test, model = splits["test"], fitted["xgboost_pipeline"]
    figure = summary_figures(model, test, params.dataset, max_rows=40)["explanations_summary.png"]
    sample = test.sample(n=40, random_state=0)
    means = explainer_for(model, params.dataset).explain(columns_of(sample, params), 40).mean_abs()
    bars = figure.axes[0].patches
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    drawn = dict(zip(labels, (b.get_width() for b in bars), strict=True))
    assert drawn == pytest.approx(means)
    assert "a seeded sample of 40 test rows" in figure.axes[0].get_xlabel()
    whole = summary_figures(model, test, params.dataset)["explanations_summary.png"]
    assert f"the test split ({len(test):,} rows)" in whole.axes[0].get_xlabel()


def test_a_few_rows_get_xgboosts_own_treeshap_per_field(
    params: Params, splits: dict[str, pd.DataFrame], fitted: dict[str, Any]
) -> None:
    """A request of one to a few rows: each field's contribution is the sum of its encoded
    columns' ``pred_contribs``, and the bias XGBoost's, row by row."""
    FEW_ROWS = 4
    test = splits["test"].head(FEW_ROWS)
    booster = fitted["xgboost"].get_booster()
    explainer = explainer_for(fitted["xgboost_pipeline"], params.dataset)
    raw = booster.predict(xgb.DMatrix(fitted["X"]["test"][:FEW_ROWS]), pred_contribs=True)
    names = encoded_feature_names(fitted["features"])
    for n in range(1, FEW_ROWS + 1):
        explanations = explainer.explain(columns_of(test.head(n), params), n)
        np.testing.assert_allclose(explanations.base, raw[:n, -1], atol=1e-5)
        for r, reason in enumerate(explanations.reasons):
            own = [
                j
                for j, c in enumerate(names)
                if c == reason.name or c.startswith(f"{reason.name}_")
            ]
            np.testing.assert_allclose(
                explanations.contributions[:, r], raw[:n, own].sum(axis=1), atol=1e-5
            )
