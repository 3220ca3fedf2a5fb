"""The one-screen summary at the top of each monitoring HTML report.

Evidently's reports hold every chart; what a person opening one wants first is above them:
the decision and its reason, the drifted columns with their scores, the quality on labelled
traffic next to the champion's own test figures, and the row counts, as integers. Written by
the monitoring flow once the decision is made (:func:`add_to_reports`), static HTML with no
script, so it shows in any browser, offline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from monitoring.decision import MonitoringDecision
from monitoring.report import Checks, Confusion, QualityChecks

MARKER = 'id="churn-monitoring-summary"'
_STYLE = (
    "font-family:system-ui,sans-serif;font-size:14px;line-height:1.4;margin:16px;padding:12px 16px;"
    "border:1px solid #ccc;border-radius:6px;background:#fafafa;color:#222"
)
_TABLE = "border-collapse:collapse;margin:4px 0 8px 0"
_CELL = "border:1px solid #ddd;padding:2px 8px;text-align:right"


def render(
    decision: MonitoringDecision,
    checks: Checks | None,
    champion_version: str | None,
    window: dict[str, Any],
) -> str:
    """The summary as an HTML ``<section>``.

    Args:
        decision: the run's decision.
        checks: what the reports found (None when the window was too small to check).
        champion_version: the version monitored.
        window: ``rows``, ``rows_checked``, ``sampled``, ``start``, ``end`` of the window.
    """
    e = html.escape
    parts = [
        f"<section {MARKER} style='{_STYLE}'>",
        f"<h2 style='margin:0 0 6px 0'>Monitoring summary: champion v{e(str(champion_version))}"
        f"</h2>",
        f"<p style='margin:0 0 8px 0'><b>Decision: {e(decision.action)}</b>. "
        f"{e(decision.reason)}</p>",
        _rows_line(decision, checks, window),
    ]
    if checks is not None:
        parts.append(_drift_block(checks))
        parts.append(_quality_block(checks.quality, decision.labelled_rows))
    parts.append("</section>")
    return "\n".join(parts)


def _rows_line(decision: MonitoringDecision, checks: Checks | None, window: dict[str, Any]) -> str:
    rows = int(window.get("rows") or decision.window_rows)
    checked = int(window.get("rows_checked") or rows)
    text = f"Rows: {rows:,} predictions in the window"
    if window.get("sampled"):
        text += f" ({checked:,} sampled for the checks)"
    text += f", {decision.labelled_rows:,} with a label"
    if checks is not None:
        text += f"; reference: {checks.data.reference_rows:,} training rows"
    if window.get("start") and window.get("end"):
        text += f"; from {window['start']} to {window['end']}"
    return f"<p style='margin:0 0 8px 0'>{html.escape(text)}.</p>"


def _drift_block(checks: Checks) -> str:
    data = checks.data
    n = len(data.columns)
    lines = [
        f"<p style='margin:0'><b>Drift</b>: {len(data.drifted_columns)} of {n} feature columns "
        f"drifted (share {data.drifted_share:.2f}); the champion's scores "
        f"{'drifted' if data.prediction.drifted else 'did not drift'} "
        f"({html.escape(data.prediction.method)} {data.prediction.score:.3f}, "
        f"threshold {data.prediction.threshold:g}).</p>"
    ]
    if data.drifted_columns:
        rows = "".join(
            f"<tr><td style='{_CELL};text-align:left'>{html.escape(c)}</td>"
            f"<td style='{_CELL};text-align:left'>{html.escape(data.columns[c].method)}</td>"
            f"<td style='{_CELL}'>{data.columns[c].score:.3f}</td>"
            f"<td style='{_CELL}'>{data.columns[c].threshold:g}</td></tr>"
            for c in data.drifted_columns
        )
        lines.append(
            f"<table style='{_TABLE}'><tr><th style='{_CELL}'>drifted column</th>"
            f"<th style='{_CELL}'>test</th><th style='{_CELL}'>score</th>"
            f"<th style='{_CELL}'>threshold</th></tr>{rows}</table>"
        )
    return "\n".join(lines)


def _quality_block(quality: QualityChecks | None, labelled_rows: int) -> str:
    if quality is None:
        return (
            f"<p style='margin:4px 0 0 0'><b>Quality</b>: not measured, {labelled_rows:,} "
            "labelled rows in the window (fewer than <code>monitor.min_labelled_rows</code>, "
            "or one class only).</p>"
        )
    q = quality
    threshold = f"{q.threshold:.3f}" if q.threshold is not None else "?"
    figures = [
        ("ROC AUC", q.roc_auc, q.reference_roc_auc),
        ("precision", q.precision, q.reference_precision),
        ("recall", q.recall, q.reference_recall),
        ("F1", q.f1, q.reference_f1),
    ]
    rows = "".join(
        f"<tr><td style='{_CELL};text-align:left'>{name}</td><td style='{_CELL}'>{_f(now)}</td>"
        f"<td style='{_CELL}'>{_f(then)}</td><td style='{_CELL}'>{_diff(now, then)}</td></tr>"
        for name, now, then in figures
    )
    window_matrix = _confusion("window", q.confusion)
    test_matrix = _confusion("champion's test", q.reference_confusion)
    return (
        f"<p style='margin:4px 0 0 0'><b>Quality</b> on {q.labelled_rows:,} labelled predictions "
        f"vs the champion's test split. Precision, recall, F1 and the confusion matrices are at "
        f"the champion's decision threshold <b>{threshold}</b> (the service's), as in the "
        f"report below.</p>"
        f"<div style='display:flex;gap:24px;flex-wrap:wrap'>"
        f"<table style='{_TABLE}'><tr><th style='{_CELL}'></th><th style='{_CELL}'>window</th>"
        f"<th style='{_CELL}'>champion's test</th><th style='{_CELL}'>change</th></tr>{rows}"
        f"</table>{window_matrix}{test_matrix}</div>{_segments_block(q.segments)}"
    )


def _segments_block(segments: dict[str, Any] | None) -> str:
    """The labelled window per segment (``churn.training.fairness``) and the largest gaps."""
    if not segments or not segments.get("segments"):
        return ""
    head = "".join(
        f"<th style='{_CELL}'>{h}</th>"
        for h in ("segment", "rows", "churn rate", "ROC AUC", "recall", "false-positive rate")
    )
    rows = "".join(
        f"<tr><td style='{_CELL};text-align:left'>{html.escape(str(r['column']))} = "
        f"{html.escape(str(r['level']))}</td><td style='{_CELL}'>{r['rows']:,}</td>"
        + "".join(
            f"<td style='{_CELL}'>{_f(r[k])}</td>"
            for k in ("churn_rate", "roc_auc", "recall", "false_positive_rate")
        )
        + "</tr>"
        for r in segments["segments"]
    )
    gaps = ", ".join(
        f"{html.escape(column)} {_f(g.get('recall'))}" for column, g in segments["gaps"].items()
    )
    return (
        f"<p style='margin:4px 0 0 0'><b>Per segment</b> (<code>fairness.segments</code>, "
        f"same threshold; gaps count levels with at least {segments['min_rows']} labelled "
        f"rows). Largest recall gap by column: {gaps}.</p>"
        f"<table style='{_TABLE}'><tr>{head}</tr>{rows}</table>"
    )


def _confusion(title: str, c: Confusion | None) -> str:
    if c is None:
        return ""
    cell = _CELL
    return (
        f"<table style='{_TABLE}'><caption style='text-align:left'>{html.escape(title)}"
        f"</caption><tr><th style='{cell}'></th><th style='{cell}'>predicted churn</th>"
        f"<th style='{cell}'>predicted stay</th></tr>"
        f"<tr><th style='{cell}'>churned</th><td style='{cell}'>{c.tp:,} TP</td>"
        f"<td style='{cell}'>{c.fn:,} FN</td></tr>"
        f"<tr><th style='{cell}'>stayed</th><td style='{cell}'>{c.fp:,} FP</td>"
        f"<td style='{cell}'>{c.tn:,} TN</td></tr></table>"
    )


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _diff(now: float | None, then: float | None) -> str:
    return "-" if now is None or then is None else f"{now - then:+.3f}"


def add_to_reports(
    paths: dict[str, Path] | None,
    decision: MonitoringDecision,
    checks: Checks | None,
    champion_version: str | None,
    window: dict[str, Any],
) -> list[Path]:
    """Put the summary at the top of each HTML report (again: it replaces an earlier one).

    Returns the files changed.
    """
    section = render(decision, checks, champion_version, window)
    changed = []
    for path in (paths or {}).values():
        text = path.read_text(encoding="utf-8")
        text = _without_summary(text)
        at = text.find("<body")
        at = text.find(">", at) + 1 if at >= 0 else 0
        path.write_text(text[:at] + "\n" + section + "\n" + text[at:], encoding="utf-8")
        changed.append(path)
    return changed


def _without_summary(text: str) -> str:
    start = text.find(f"<section {MARKER}")
    if start < 0:
        return text
    end = text.find("</section>", start) + len("</section>")
    return text[:start] + text[end:]
