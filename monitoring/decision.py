"""The monitoring decision: a named value saying what the checks found and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from churn.config.params import MonitorParams
from monitoring.report import DataChecks, QualityChecks

Action = Literal[
    "none", "retrain", "cooldown", "insufficient-data", "retrain-disabled", "no-champion"
]


@dataclass(frozen=True)
class MonitoringDecision:
    """What one monitoring run concluded. The flow acts on ``action``; people read ``reason``.

    Attributes:
        drift_detected: the drifted share of feature columns reached ``monitor.drift_share``.
        drifted_columns: feature columns whose drift test failed, in ``params.yaml`` order.
        drifted_share: drifted feature columns / feature columns.
        prediction_drift: the champion's score distribution drifted (reported, not a trigger:
            it follows the inputs).
        quality_drop: the champion's ROC AUC on its test split minus its ROC AUC on labelled
            traffic; None until ``monitor.min_labelled_rows`` labels have arrived.
        quality_degraded: ``quality_drop`` reached ``monitor.quality_drop``.
        action: ``retrain`` (start the training flow), ``none``, ``cooldown`` (would retrain,
            but the last retrain is too recent), ``insufficient-data`` (the window is too small
            to judge), ``retrain-disabled`` (``monitor.retrain`` is false) or ``no-champion``
            (nothing to compare with: the service runs its fallback).
        reason: one sentence with the figures behind the action.
        window_rows: predictions in the window (before sampling).
        labelled_rows: predictions in the window whose label has arrived.
    """

    drift_detected: bool
    drifted_columns: list[str]
    drifted_share: float
    prediction_drift: bool
    quality_drop: float | None
    quality_degraded: bool
    action: Action
    reason: str
    window_rows: int
    labelled_rows: int
    unseen_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def no_judgement(action: Action, reason: str, window_rows: int) -> MonitoringDecision:
    """A decision without checks: no alarm, no retrain, and why."""
    return MonitoringDecision(
        drift_detected=False,
        drifted_columns=[],
        drifted_share=0.0,
        prediction_drift=False,
        quality_drop=None,
        quality_degraded=False,
        action=action,
        reason=reason,
        window_rows=window_rows,
        labelled_rows=0,
    )


def insufficient(window_rows: int, params: MonitorParams) -> MonitoringDecision:
    """The window is too small to judge: no alarm, no retrain."""
    return no_judgement(
        "insufficient-data",
        f"insufficient data: {window_rows} predictions in the window, "
        f"{params.min_rows} needed to judge drift",
        window_rows,
    )


def decide(
    data: DataChecks,
    quality: QualityChecks | None,
    params: MonitorParams,
    *,
    window_rows: int,
    labelled_rows: int,
    last_retrain_at: datetime | None,
    now: datetime,
) -> MonitoringDecision:
    """Turn the checks into an action.

    Retrain when the drifted share of feature columns reaches ``monitor.drift_share`` or, once
    enough labels arrived, when ROC AUC fell by ``monitor.quality_drop`` or more below what the
    champion scored on its own test split; unless ``monitor.retrain`` is off or the last retrain
    started less than ``monitor.cooldown_hours`` ago.
    """
    drift = data.drifted_share >= params.drift_share
    drop = None if quality is None else quality.reference_roc_auc - quality.roc_auc
    degraded = drop is not None and drop >= params.quality_drop
    findings = [
        f"{len(data.drifted_columns)} of {len(data.columns)} feature columns drifted "
        f"(share {data.drifted_share:.2f}, threshold {params.drift_share:.2f})"
        + (f": {', '.join(data.drifted_columns)}" if data.drifted_columns else "")
    ]
    if quality is None:
        findings.append(
            f"quality not judged: {labelled_rows} labelled predictions, "
            f"{params.min_labelled_rows} needed"
        )
    else:
        findings.append(
            f"ROC AUC on {quality.labelled_rows} labelled predictions {quality.roc_auc:.4f} vs "
            f"{quality.reference_roc_auc:.4f} on the champion's test split "
            f"(drop {drop:.4f}, threshold {params.quality_drop:.4f})"
        )
    summary = "; ".join(findings)
    action: Action
    if not (drift or degraded):
        action, reason = "none", f"no retrain: {summary}"
    elif not params.retrain:
        action, reason = "retrain-disabled", f"would retrain (monitor.retrain is off): {summary}"
    elif last_retrain_at is not None and now - last_retrain_at < timedelta(
        hours=params.cooldown_hours
    ):
        action = "cooldown"
        reason = (
            f"cooldown: last retrain {last_retrain_at.isoformat(timespec='seconds')}, less than "
            f"{params.cooldown_hours:g} h ago; {summary}"
        )
    else:
        trigger = " and ".join(t for t, on in (("drift", drift), ("quality drop", degraded)) if on)
        action, reason = "retrain", f"retrain on {trigger}: {summary}"
    return MonitoringDecision(
        drift_detected=drift,
        drifted_columns=list(data.drifted_columns),
        drifted_share=data.drifted_share,
        prediction_drift=data.prediction.drifted,
        quality_drop=drop,
        quality_degraded=degraded,
        action=action,
        reason=reason,
        window_rows=window_rows,
        labelled_rows=labelled_rows,
        unseen_columns=[c for c, share in data.unseen_share.items() if share > 0],
    )
