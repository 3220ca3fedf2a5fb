"""params.yaml is validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from churn.config.params import Params, load_params

ROOT = Path(__file__).resolve().parents[3]


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_load(params):
    assert params.dataset.id_column not in params.dataset.feature_columns
    assert params.dataset.label_column not in params.dataset.feature_columns


def test_id_column_cannot_be_a_feature():
    raw = _raw()
    raw["dataset"]["numeric"]["customerID"] = {"min": 0}
    with pytest.raises(ValidationError, match="id_column 'customerID' must not also be a feature"):
        Params.model_validate(raw)


def test_file_source_needs_a_path():
    raw = _raw()
    raw["ingest"]["kind"] = "file"
    with pytest.raises(ValidationError, match=r"ingest\.path is empty"):
        Params.model_validate(raw)


def test_derived_feature_on_unknown_column_is_refused():
    raw = _raw()
    raw["features"]["ratios"]["x"] = ["TotalCharges", "nope"]
    with pytest.raises(ValidationError, match=r"features\.ratios\.x uses 'nope'"):
        Params.model_validate(raw)


@pytest.mark.parametrize(
    ("kind", "entry", "message"),
    [
        ("differences", ["Contract", "tenure"], "'Contract', not a numeric column"),
        ("counts", {"columns": ["Partner", "nope"], "absent": ["No"]}, "'nope', not a feature"),
        ("differences", ["tenure"], "differences.x"),  # a difference reads two columns
    ],
)
def test_each_kind_refuses_columns_of_the_wrong_role_by_name(kind, entry, message):
    """Every kind's role comes from the table: a difference reads numbers, a count any field."""
    raw = _raw()
    raw["features"][kind] = {"x": entry}
    with pytest.raises(ValidationError, match=message):
        Params.model_validate(raw)


def test_derived_feature_names_are_new_unique_columns_and_kinds_are_known():
    raw = _raw()
    raw["features"]["differences"] = {"charges_per_tenure_month": ["TotalCharges", "tenure"]}
    with pytest.raises(ValidationError, match=r"also features\.ratios\.charges_per_tenure_month"):
        Params.model_validate(raw)
    raw["features"]["differences"] = {"tenure": ["TotalCharges", "MonthlyCharges"]}
    with pytest.raises(
        ValidationError, match=r"features\.differences\.tenure: 'tenure' is a column"
    ):
        Params.model_validate(raw)
    raw["features"]["differences"] = {}
    raw["features"]["diffs"] = {"d": ["TotalCharges", "MonthlyCharges"]}
    with pytest.raises(ValidationError, match=r"features\.diffs\n  Extra inputs are not permitted"):
        Params.model_validate(raw)


def test_unknown_key_is_refused(tmp_path):
    """Refused by the typed view; under ``train``, where each candidate adds its own block, by
    the candidates table (``churn.models.check_params``, which every command runs)."""
    from churn.models import check_params

    raw = _raw()
    raw["promote"]["n_trees"] = 10
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValidationError, match="n_trees"):
        load_params(path)
    raw = _raw()
    raw["train"]["n_trees"] = 10
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"train\.n_trees is neither a train setting"):
        check_params(load_params(path))


def test_a_segment_column_must_be_a_categorical_column(params):
    """fairness.segments names levels of a categorical column; the error names the key."""
    raw = params.model_dump(by_alias=True)
    raw["fairness"]["segments"] = ["tenure"]
    with pytest.raises(ValueError, match=r"fairness\.segments names 'tenure'"):
        type(params).model_validate(raw)
