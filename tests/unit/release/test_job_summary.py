"""The continuous-training run's Markdown summary: decision, reason, both models' figures, links."""

from __future__ import annotations

import json

from churn.champion import ChampionInfo
from churn.config.identity import identity
from churn.release.job_summary import CLASSIC_VIEW, JobSummary, render_markdown, run_link
from churn.release.registry import RecordedDecision

RECORD = ChampionInfo(
    decision_threshold=0.31,
    test_roc_auc=0.8412,
    baseline_test_roc_auc=0.8326,
    data_version="f4b6bf283a3f",
    data_files={"data/splits/test.parquet": "0" * 32},
    git_commit="abc123",
    trained_at="2026-11-23T10:00:00+00:00",
    version="2",
    run_id="1df2ea84b339480296133177abfc671b",
)


def summary(decision: str, reason: str, champion_now: str | None, **tags: str) -> JobSummary:
    recorded = RecordedDecision.from_tags(
        "2",
        {
            "promotion.decision": decision,
            "promotion.promote": str(decision != "rejected"),
            "promotion.reason": reason,
            "promotion.challenger_roc_auc": "0.8412",
            "promotion.baseline_roc_auc": "0.8326",
            "promotion.champion_version": "1",
            "promotion.champion_roc_auc": "0.8391",
            **tags,
        },
    )
    return JobSummary(
        model_name=identity().model_name,
        recorded=recorded,
        record=RECORD,
        champion_now=champion_now,
        run_id=RECORD.run_id,
        run_url=run_link("https://user:pw@mlflow.example.com/", "3", str(RECORD.run_id)),
    )


def test_the_summary_names_the_decision_the_reason_and_both_models_figures():
    reason = "test ROC AUC 0.8412 beats champion v1 (0.8391) by at least 0.0020"
    checks = json.dumps([{"name": "smoke_predict", "passed": True, "detail": "50 rows | ok"}])
    text = render_markdown(summary("promoted", reason, "2", **{"promotion.checks": checks}))
    assert text.startswith("## churn v2 is champion\n")
    assert "**Gate decision:** approved" in text and f"**Reason:** {reason}" in text
    assert "| challenger v2 | 0.8412 |" in text
    assert "| champion v1 (when the gate decided) | 0.8391 |" in text
    assert "| baseline (logistic regression) | 0.8326 |" in text
    assert "| smoke_predict | pass | 50 rows \\| ok |" in text  # a pipe cannot break the table
    assert "git tag `data-f4b6bf283a3f`" in text and "code commit `abc123`" in text
    link = (
        "https://mlflow.example.com/#/experiments/3/runs/1df2ea84b339480296133177abfc671b?"
        + CLASSIC_VIEW
    )
    assert f"[`{RECORD.run_id}`]({link})" in text
    assert "pw@" not in text, "credentials of the tracking URI must not reach the summary"


def test_a_refusal_says_the_champion_did_not_move():
    reason = "test ROC AUC 0.7012 does not beat champion v1 (0.8391) by the margin 0.0020"
    text = render_markdown(summary("rejected", reason, "1"))
    assert text.startswith("## churn v2 refused by the gate: champion unchanged (v1)")
    assert "**Gate decision:** rejected" in text and reason in text
    assert "**Checks:** not run" in text


def test_failed_checks_are_the_headline_and_each_is_listed():
    checks = json.dumps(
        [
            {"name": "gate_decision", "passed": True, "detail": "approved"},
            {"name": "monotone:Contract", "passed": False, "detail": "Two year higher on 3 rows"},
        ]
    )
    text = render_markdown(summary("approved", "beats v1", "1", **{"promotion.checks": checks}))
    assert "approved by the gate, its checks failed: champion unchanged (v1)" in text
    assert "**Checks:** FAILED" in text
    assert "| monotone:Contract | FAIL | Two year higher on 3 rows |" in text


def test_a_local_store_has_no_link():
    assert run_link("sqlite:////tmp/mlruns/mlflow.db", "1", "abc") is None
    assert run_link("http://127.0.0.1:5000", "1", "abc") == (
        "http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning"
    )


def test_run_links_ask_mlflow_3_for_the_classic_view():
    """Without ``workflowType=machine_learning`` MLflow 3's UI opens in its GenAI view; the
    parameter is the one its bundled UI reads (checked against the installed build)."""
    from pathlib import Path

    import mlflow

    link = run_link("https://mlflow.example.com/base/", "3", "abc")
    assert link == "https://mlflow.example.com/base/#/experiments/3/runs/abc?" + CLASSIC_VIEW
    build = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    ui = "".join(p.read_text(errors="ignore") for p in build.glob("main.*.js"))
    key, value = CLASSIC_VIEW.split("=")
    assert f'get("{key}")' in ui and f'"{value}"' in ui
