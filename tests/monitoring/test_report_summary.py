"""The monitoring reports agree with themselves: every threshold-dependent figure is at the
champion's threshold, and a summary at the top says what was decided and why (checked in a
real browser, offline)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.config.params import MonitorParams, load_params
from churn.data.generator import Drift, generate_customers
from churn.prediction_store import SCORE_COLUMN
from monitoring.data import features_frame
from monitoring.decision import decide
from monitoring.report import TARGET, Checks, check_data, check_quality, html_files
from monitoring.summary import add_to_reports

ROOT = Path(__file__).resolve().parents[2]
DATASET = load_params(ROOT / "params.yaml").dataset
THRESHOLD = 0.153  # far from Evidently's default 0.5: a figure at 0.5 would not match


def _frame(rows: int, seed: int, drift: Drift | None = None) -> pd.DataFrame:
    customers = generate_customers(rows, seed, drift=drift)
    frame = features_frame(customers, DATASET)
    frame[SCORE_COLUMN] = 1 / (1 + np.exp(-(frame["MonthlyCharges"] - 70) / 20))
    frame[TARGET] = (customers["Churn"] == "Yes").astype("int64")
    return frame


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Checks, Any]:
    """A drifted, labelled window checked against a reference, with the summary added."""
    out = tmp_path_factory.mktemp("report")
    reference = _frame(3000, 1)
    window = _frame(2004, 2, Drift(monthly_charges_factor=1.3))
    data = check_data(reference, window, DATASET, MonitorParams(), out / "data_drift.html")
    quality = check_quality(reference, window, THRESHOLD, out / "classification.html")
    checks = Checks(data, quality, html=html_files(out))
    decision = decide(
        data,
        quality,
        MonitorParams(),
        window_rows=2004,
        labelled_rows=2004,
        last_retrain_at=None,
        now=datetime.now(UTC),
    )
    window_info = {"rows": 2004, "rows_checked": 2004, "sampled": False}
    add_to_reports(checks.html, decision, checks, "3", window_info)
    return out, checks, decision


def test_threshold_figures_agree_with_the_confusion_matrix(reports: Any) -> None:
    _, checks, _ = reports
    q = checks.quality
    c = q.confusion
    assert q.threshold == THRESHOLD
    assert c.tp + c.fp + c.fn + c.tn == q.labelled_rows
    assert q.recall == pytest.approx(c.tp / (c.tp + c.fn))
    assert q.precision == pytest.approx(c.tp / (c.tp + c.fp))
    assert q.f1 == pytest.approx(2 * c.tp / (2 * c.tp + c.fp + c.fn))
    r = q.reference_confusion
    assert q.reference_recall == pytest.approx(r.tp / (r.tp + r.fn))


def test_the_report_has_no_confusion_matrix_at_another_threshold(reports: Any) -> None:
    """Evidently draws its metric's confusion matrix at 0.5 whatever the threshold."""
    out, _, _ = reports
    text = (out / "classification.html").read_text()
    assert "Confusion Matrix" not in text


def test_summary_is_the_first_thing_in_each_report(reports: Any) -> None:
    out, checks, decision = reports
    for name in ("data_drift", "classification"):
        text = (out / f"{name}.html").read_text()
        body = text.index("<body")
        summary = text.index('id="churn-monitoring-summary"')
        assert body < summary < body + 200, name
        assert text.count('id="churn-monitoring-summary"') == 1
    text = (out / "classification.html").read_text()
    assert f"Decision: {decision.action}" in text
    assert "2,004 predictions in the window" in text and "2004.000" not in text[:20_000]
    assert f"threshold <b>{THRESHOLD:.3f}</b>" in text
    assert "MonthlyCharges" in text and f"{checks.data.columns['MonthlyCharges'].score:.3f}" in text
    c = checks.quality.confusion
    assert f"{c.tp:,} TP" in text and f"{c.fn:,} FN" in text


@pytest.mark.browser
def test_report_summary_is_visible_in_a_browser_offline(
    reports: Any, offline_page: Any, tmp_path: Path
) -> None:
    out, checks, decision = reports
    page = offline_page
    page.goto((out / "classification.html").as_uri())
    summary = page.locator("#churn-monitoring-summary")
    summary.wait_for(timeout=30_000)
    assert summary.is_visible()
    box = summary.bounding_box()
    assert box is not None and box["y"] < 100, "the summary is at the top of the page"
    text = summary.inner_text()
    assert f"Decision: {decision.action}" in text
    assert "MonthlyCharges" in text and f"{checks.quality.recall:.3f}" in text
    shot = tmp_path / "report-summary.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    page.goto((out / "data_drift.html").as_uri())
    assert page.locator("#churn-monitoring-summary").is_visible()
    assert page.blocked == [], f"the report tried to reach the internet: {page.blocked}"


def test_the_summary_shows_the_labelled_window_per_segment(reports: Any, tmp_path: Path) -> None:
    """``fairness.segments`` on labelled traffic: the figures of ``churn.training.fairness`` at the
    champion's threshold, one row per level, with the largest recall gap per column."""
    from dataclasses import replace

    from churn.training.fairness import segment_metrics

    out, checks, decision = reports
    window = _frame(600, 4)
    segments = segment_metrics(
        window, window[TARGET].to_numpy(), window[SCORE_COLUMN].to_numpy(), THRESHOLD,
        ["gender", "SeniorCitizen"], 30,
    )  # fmt: skip
    page = tmp_path / "classification.html"
    page.write_text((out / "classification.html").read_text())
    quality = replace(checks.quality, segments=segments.to_dict())
    add_to_reports({"classification": page}, decision, Checks(checks.data, quality), "3", {})
    text = page.read_text()
    assert "<b>Per segment</b>" in text
    for r in segments.records():
        assert f"{r['column']} = {r['level']}</td><td style" in text
        assert f">{r['rows']:,}</td>" in text
    gap = segments.gaps["SeniorCitizen"]["recall"]
    assert f"SeniorCitizen {gap:.3f}" in text
