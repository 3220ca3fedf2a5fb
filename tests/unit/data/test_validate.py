"""The data contract: coercion of known quirks, quarantine with reasons, the share threshold."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churn.config.layout import DataLayout
from churn.data.validate import (
    REASON_COLUMN,
    ContractError,
    check_quarantine_share,
    validate_frame,
    write_outputs,
)


def test_clean_rows_pass_and_blank_total_charges_becomes_missing(raw, params):
    result = validate_frame(raw, params.dataset)
    assert result.report.n_quarantined == 0
    assert len(result.valid) == len(raw)
    assert pd.isna(result.valid.loc[0, "TotalCharges"])
    assert result.valid["TotalCharges"].dtype == "float64"
    assert result.valid["TotalCharges"].iloc[1:].notna().all()


def test_ids_an_earlier_part_holds_are_quarantined_as_repeats_once_each(raw, params):
    """``taken_ids`` (the dask engine's ids whose first row is in an earlier part): every row of
    theirs goes, with pandera's uniqueness reason, given once even to a repeat within the part."""
    raw = raw.copy()
    raw.loc[5, "customerID"] = raw.loc[6, "customerID"]  # a repeat within the part too
    taken = {raw.loc[2, "customerID"], raw.loc[6, "customerID"], "not-in-this-part"}
    result = validate_frame(raw, params.dataset, taken_ids=taken)
    q = result.quarantine
    assert sorted(q.index) == [2, 5, 6]
    assert (q[REASON_COLUMN] == "customerID: field_uniqueness (got " + q["customerID"] + ")").all()
    assert result.report.reasons == {"customerID: field_uniqueness": 3}
    assert validate_frame(raw, params.dataset).report.n_quarantined == 1  # the part alone


def test_each_bad_row_is_quarantined_with_its_reason(raw, params):
    raw = raw.astype({"tenure": "object", "MonthlyCharges": "object"})
    raw.loc[1, "tenure"] = -3  # below min
    raw.loc[2, "Contract"] = "Three year"  # unknown level
    raw.loc[3, "MonthlyCharges"] = "abc"  # not a number
    raw.loc[4, "Churn"] = None  # label missing
    raw.loc[5, "customerID"] = raw.loc[6, "customerID"]  # duplicate id: the later one goes
    raw.loc[7, "tenure"] = 2.5  # not an integer
    result = validate_frame(raw, params.dataset)

    reasons = result.quarantine.set_index("customerID")[REASON_COLUMN]
    q = result.quarantine
    assert sorted(q.index) == [1, 2, 3, 4, 6, 7]
    assert "tenure: greater_than_or_equal_to(0" in q.loc[1, REASON_COLUMN]
    assert "Contract: isin" in q.loc[2, REASON_COLUMN] and "Three year" in q.loc[2, REASON_COLUMN]
    assert "MonthlyCharges: not a number" in q.loc[3, REASON_COLUMN]
    assert "Churn" in q.loc[4, REASON_COLUMN]
    assert "customerID" in q.loc[6, REASON_COLUMN]
    assert "tenure: integer" in q.loc[7, REASON_COLUMN]
    # Nothing is lost: every input row is valid or quarantined, and quarantined rows keep
    # their original values.
    assert len(result.valid) + len(q) == len(raw)
    assert q.loc[3, "MonthlyCharges"] == "abc"
    assert result.report.n_quarantined == 6
    assert result.report.reasons["tenure: greater_than_or_equal_to(0.0)"] == 1
    assert len(reasons) == 6


def test_missing_required_column_fails_the_batch(raw, params):
    with pytest.raises(ContractError, match="lacks required columns \\['Contract'\\]"):
        validate_frame(raw.drop(columns=["Contract"]), params.dataset)


def test_share_above_threshold_fails_with_the_top_reasons(raw, params):
    raw.loc[1:3, "Contract"] = "Lifetime"
    report = validate_frame(raw, params.dataset).report
    with pytest.raises(ContractError, match=r"3 of 12 rows \(25.0%\).*Contract: isin"):
        check_quarantine_share(report, max_share=0.2)
    check_quarantine_share(report, max_share=0.3)  # within the threshold: no error


def test_outputs_are_written_even_for_a_failing_batch(raw, params, tmp_path):
    raw.loc[:, "Contract"] = "Lifetime"
    result = validate_frame(raw, params.dataset)
    layout = DataLayout(tmp_path)
    write_outputs(result, layout.validated, layout.quarantine, layout.validation_report)
    quarantined = pd.read_csv(layout.quarantine)
    assert len(quarantined) == 12 and quarantined[REASON_COLUMN].str.contains("Contract").all()
    assert json.loads(layout.validation_report.read_text())["n_quarantined"] == 12
