"""The feature pipeline: derived features, no id, unseen categories tolerated."""

from __future__ import annotations

import numpy as np
import pytest

from churn.data.validate import validate_frame
from churn.features.pipeline import build_feature_pipeline, encoded_feature_names, feature_steps


@pytest.fixture
def valid(raw, params):
    return validate_frame(raw, params.dataset).valid


def test_derived_features(valid, params):
    pipe = build_feature_pipeline(params.dataset, params.features).fit(valid)
    steps = feature_steps(pipe)
    derived = steps.derive.transform(steps.fill.transform(valid))
    expected = derived["TotalCharges"] / np.maximum(derived["tenure"], 1)
    np.testing.assert_allclose(derived["charges_per_tenure_month"], expected)
    absent = {"No", "No phone service", "No internet service"}
    cols = params.features.counts["n_services"].columns
    row = valid.iloc[1]
    assert derived.loc[1, "n_services"] == sum(row[c] not in absent for c in cols)
    # tenure 0 with a blank TotalCharges: filled with the configured 0, ratio 0
    assert derived.loc[0, "TotalCharges"] == 0 and derived.loc[0, "charges_per_tenure_month"] == 0


def test_id_label_and_unknown_columns_never_become_features(valid, params):
    pipe = build_feature_pipeline(params.dataset, params.features).fit(valid.assign(extra=1))
    names = encoded_feature_names(pipe)
    assert not any(n.startswith(("customerID", "Churn", "extra")) for n in names)
    changed = valid.assign(customerID="0000-XXXXX", extra=99)
    np.testing.assert_array_equal(pipe.transform(valid), pipe.transform(changed))


def test_unseen_category_encodes_as_all_zeros(valid, params):
    pipe = build_feature_pipeline(params.dataset, params.features).fit(valid)
    names = encoded_feature_names(pipe)
    out = pipe.transform(valid.assign(PaymentMethod="Crypto wallet"))
    pay = [i for i, n in enumerate(names) if n.startswith("PaymentMethod_")]
    assert out[:, pay].sum() == 0


def test_model_input_example_carries_no_personal_data(valid, params):
    from churn.release.promotion import input_example

    example = input_example(valid, params)
    assert "Churn" not in example.columns
    assert not set(example["customerID"]) & set(valid["customerID"])
    assert len(example) == 5 and set(params.dataset.feature_columns) <= set(example.columns)


def test_model_input_example_holds_only_the_id_and_the_configured_features(valid, params):
    """Columns the config does not name (a row number, an internal key, a column that leaks the
    label) never reach the example, so never the logged model's signature either."""
    from churn.release.promotion import input_example

    extra = valid.assign(RowNumber=range(len(valid)), InternalRef="x", AccountClosed=valid["Churn"])
    example = input_example(extra, params)
    assert list(example.columns) == [params.dataset.id_column, *params.dataset.feature_columns]
