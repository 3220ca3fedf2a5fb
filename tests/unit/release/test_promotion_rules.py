"""What `churn promote` allows, read from the tags the gate and the checks wrote on a version."""

from __future__ import annotations

import json

import pytest

from churn.release.registry import (
    APPROVED,
    PROMOTED,
    REJECTED,
    CheckOutcome,
    PromotionRefused,
    RecordedDecision,
    check_promotable,
)


def recorded(
    decision: str = APPROVED,
    *,
    champion: str | None = "1",
    checks: list[CheckOutcome] | None = None,
    reason: str = "test ROC AUC 0.8412 beats champion v1 (0.8391) by at least 0.0020",
) -> RecordedDecision:
    """A version's decision as the tags on it read (what `registry.record_decision` writes)."""
    tags = {
        "promotion.decision": decision,
        "promotion.promote": str(decision != REJECTED),
        "promotion.reason": reason,
        "promotion.challenger_roc_auc": "0.8412",
        "promotion.baseline_roc_auc": "0.8326",
        "promotion.champion_version": champion or "",
        "promotion.champion_roc_auc": "0.8391" if champion else "",
    }
    if checks is not None:
        tags["promotion.checks"] = json.dumps([c.__dict__ for c in checks])
    return RecordedDecision.from_tags("2", tags)


PASSED = [CheckOutcome("gate_decision", True), CheckOutcome("smoke_predict", True, "ok")]


def test_tags_read_back_into_the_recorded_decision():
    r = recorded(checks=PASSED)
    assert (r.version, r.decision, r.gate_approved) == ("2", APPROVED, True)
    assert (r.challenger_roc_auc, r.champion_version, r.champion_roc_auc) == (0.8412, "1", 0.8391)
    assert r.checks == tuple(PASSED) and r.checks_passed is True


def test_a_version_without_decision_tags_is_pending_and_not_approved():
    r = RecordedDecision.from_tags("7", {"test_roc_auc": "0.8"})
    assert (r.decision, r.gate_approved, r.checks_passed) == ("pending", False, None)


def test_promote_refuses_a_version_the_gate_rejected_and_says_why():
    reason = "test ROC AUC 0.7012 does not beat champion v1 (0.8391) by the margin 0.0020"
    with pytest.raises(PromotionRefused) as refused:
        check_promotable(recorded(REJECTED, reason=reason), champion="1")
    message = str(refused.value)
    assert message.startswith("v2 is not promoted: the gate's recorded decision is 'rejected'")
    assert reason in message and "--force --by NAME --reason TEXT" in message


def test_promote_refuses_a_version_whose_checks_failed_and_names_them():
    checks = [*PASSED, CheckOutcome("monotone:Contract", False, "Two year scores higher")]
    with pytest.raises(PromotionRefused, match=r"its checks failed \(monotone:Contract\)"):
        check_promotable(recorded(checks=checks), champion="1")


def test_the_training_job_needs_recorded_checks_a_person_does_not():
    with pytest.raises(PromotionRefused, match=r"no checks were recorded.*churn check-challenger"):
        check_promotable(recorded(), champion="1", require_checks=True)
    check_promotable(recorded(), champion="1")  # the gate's approval is enough by hand
    check_promotable(recorded(checks=PASSED), champion="1", require_checks=True)


def test_a_decision_against_a_replaced_champion_is_stale():
    with pytest.raises(PromotionRefused, match="compared it with champion v1, but v3 is champion"):
        check_promotable(recorded(checks=PASSED), champion="3")
    with pytest.raises(PromotionRefused, match="no champion \\(a first model\\), but v3"):
        check_promotable(recorded(champion=None, checks=PASSED), champion="3")


def test_a_first_model_and_a_former_champion_may_be_promoted():
    check_promotable(recorded(champion=None, checks=PASSED), champion=None)
    # A version that was champion before may return (what a rollback does).
    check_promotable(recorded(PROMOTED), champion="3")
