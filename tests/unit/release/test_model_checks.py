"""The challenger checks as pure functions: each passes on a model that behaves, fails on one that
does not, and says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.champion import ServingCheck
from churn.release.checks import (
    UNSEEN_LEVEL,
    gate_decision,
    id_invariance,
    monotone_directions,
    request_records,
    scorer_parity,
    smoke_predict,
)
from churn.release.registry import RecordedDecision

CONTRACT_RISK = {"Month-to-month": 0.6, "One year": 0.3, "Two year": 0.1}


class ContractModel:
    """Scores from the contract and the tenure; ``risk`` maps each contract to its base risk."""

    def __init__(self, risk: dict[str, float], use_id: bool = False) -> None:
        self.risk = risk
        self.use_id = use_id

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = X["Contract"].map(self.risk).fillna(0.35).to_numpy(dtype=float)
        p = p - 0.001 * X["tenure"].to_numpy(dtype=float)
        if self.use_id:
            p = p + 0.01 * X["customerID"].str.len().to_numpy()
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1 - p, p])


@pytest.fixture
def frame(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.assign(tenure=np.arange(len(raw)))


def test_monotone_directions_hold_for_a_model_that_respects_them(frame, params):
    (outcome,) = monotone_directions(ContractModel(CONTRACT_RISK), frame, params.train.monotone)
    assert outcome.name == "monotone:Contract" and outcome.passed, outcome.detail
    assert f"Month-to-month >= Two year on {len(frame)}/{len(frame)} rows" in outcome.detail


def test_the_monotone_check_fails_on_a_model_that_violates_it(frame, params):
    backwards = {**CONTRACT_RISK, "Month-to-month": 0.05}  # month-to-month below two-year
    (outcome,) = monotone_directions(ContractModel(backwards), frame, params.train.monotone)
    assert not outcome.passed
    assert f"Month-to-month scores lower than Two year on {len(frame)} rows" in outcome.detail


def test_one_sided_constraints_are_compared_with_no_level(frame):
    good = monotone_directions(ContractModel(CONTRACT_RISK), frame, {"Contract": {"Two year": -1}})
    assert good[0].passed and f"{UNSEEN_LEVEL} >= Two year" in good[0].detail
    # One year (0.3) scores below "no level" (0.35), so "+1: never lowers the risk" is broken.
    bad = monotone_directions(ContractModel(CONTRACT_RISK), frame, {"Contract": {"One year": 1}})
    assert not bad[0].passed and f"One year scores lower than {UNSEEN_LEVEL}" in bad[0].detail
    assert monotone_directions(ContractModel(CONTRACT_RISK), frame, {})[:1] == []


def test_the_customer_id_must_not_change_a_score(frame, params):
    assert id_invariance(ContractModel(CONTRACT_RISK), frame, params.dataset).passed
    leaky = id_invariance(ContractModel(CONTRACT_RISK, use_id=True), frame, params.dataset)
    assert not leaky.passed and "largest score change" in leaky.detail


def test_the_gate_check_reads_the_recorded_decision():
    approved = RecordedDecision.from_tags(
        "4", {"promotion.decision": "approved", "promotion.promote": "True"}
    )
    rejected = RecordedDecision.from_tags(
        "4",
        {
            "promotion.decision": "rejected",
            "promotion.promote": "False",
            "promotion.reason": "does not beat champion v3",
        },
    )
    assert gate_decision(approved).passed
    refused = gate_decision(rejected)
    assert not refused.passed and refused.detail == "rejected: does not beat champion v3"
    unknown = gate_decision(RecordedDecision.from_tags("4", {}))
    assert not unknown.passed and "no decision was recorded" in unknown.detail


def test_scorer_parity_passes_the_compiled_replay_and_fails_the_slow_path():
    fast = scorer_parity(ServingCheck("compiled", 3e-8, 500))
    assert fast.passed and "largest difference 3e-08 over 500 rows" in fast.detail
    slow = scorer_parity(ServingCheck("pipeline", None, 500, "unsupported step Normalizer"))
    assert not slow.passed and "unsupported step Normalizer" in slow.detail


def test_the_smoke_check_needs_the_version_from_the_registry_and_the_pipelines_scores(
    frame, params
):
    expected = np.array([0.2, 0.7])
    served = {"version": "5", "alias": "challenger", "source": "registry", "scorer": "compiled"}
    body = {"model_version": "5", "predictions": [{"churn_probability": p} for p in expected]}
    ok = smoke_predict(served, 200, body, version="5", alias="challenger", expected=expected)
    assert ok.passed, ok.detail
    rules = {**served, "version": "fallback-rules", "source": "rules", "degraded_reason": "down"}
    fallback = smoke_predict(rules, 200, body, version="5", alias="challenger", expected=expected)
    assert not fallback.passed and "from 'rules' (down)" in fallback.detail
    wrong = smoke_predict(
        served, 200, body, version="5", alias="challenger", expected=expected + 0.01
    )
    assert not wrong.passed and "largest difference from the pipeline 0.01" in wrong.detail
    error = smoke_predict(served, 422, {"detail": []}, version="5", alias="challenger",
                          expected=expected)  # fmt: skip
    assert not error.passed and "/predict answered 422" in error.detail
    records = request_records(frame, params.dataset)
    assert set(records[0]) == {params.dataset.id_column, *params.dataset.feature_columns}
