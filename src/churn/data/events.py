"""Seeded customer activity events (logins, support calls, failed payments) and each label's time.

The behaviour data a feature store serves features from (docs/feature-store.md). For each
customer of the generated table the story is: the churn label was read at the customer's
*label time* (spread over the last ``LABEL_SPREAD_DAYS`` before ``WINDOW_END``); events run from
``HISTORY_DAYS`` before it (or the customer's start, if later) to ``WINDOW_END``. In the
``PRE_CHURN_DAYS`` before their label time churners log in less, call support and miss payments
more; after it a churner is gone (no events), a stayer goes on as before. So the events after a
row's label time carry the label: a join that ignores time leaks it, a point-in-time join does not.

Everything is vectorised with numpy and depends only on the arguments and the customers' ids and
labels: the same call gives the same frames. The rates are the story's single source of truth
(docs/data-generator.md, "Activity events").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from numbers import Real
from types import MappingProxyType

import numpy as np
import pandas as pd

from churn.config.feature_store import EVENT_KINDS  # the kinds, in the rate tables' order

__all__ = ["EVENT_KINDS", "ActivityData", "EventDrift", "empty_events", "generate_events"]

EVENT_COLUMNS: tuple[str, ...] = ("customerID", "event_timestamp", "event")
"""The event table's columns: who, when (UTC), which kind."""

LABEL_TIME_COLUMNS: tuple[str, ...] = ("customerID", "label_time")
"""The label-time table's columns: who, and when their churn label was read (UTC)."""

WINDOW_END = datetime(2026, 1, 1, tzinfo=UTC)
"""The end of the event log (fixed, so the data set does not depend on the day it is drawn)."""

LABEL_SPREAD_DAYS = 90
HISTORY_DAYS = 120
PRE_CHURN_DAYS = 30
_SECOND_NS = 1_000_000_000
_DAY_NS = 86_400 * _SECOND_NS
_MONTH_DAYS = 30.0

# Events per 30 days of an ordinary customer, in EVENT_KINDS order.
_BASE_RATE: tuple[float, ...] = (8.0, 0.4, 0.15)
# Multipliers in the PRE_CHURN_DAYS before a churner's label time.
# Moderate on purpose: the events add to the customer table's signal, they do not give the label
# away (docs/feature-store.md has the test ROC AUC with and without them).
_PRE_CHURN_FACTOR: tuple[float, ...] = (0.8, 1.8, 2.0)
# An electronic-check payer misses payments more often (the real file's riskiest method).
_ELECTRONIC_CHECK_PAYMENT_FACTOR = 1.6
# How engaged a customer is: a log-normal multiplier of their login rate.
_LOGIN_ENGAGEMENT_SD = 0.5
# The spawn key of the events' random streams: never the customers' streams of the same seed.
_STREAM_KEY = 0xE7E475


@dataclass(frozen=True)
class EventDrift:
    """A chosen shift of the event rates for later batches (monitoring demos and tests).

    Attributes:
        rate_factor: Event kind -> multiplier of its rate, e.g. ``{"support_call": 2.0}``
            (an outage month). Kinds left out keep their rate.
    """

    rate_factor: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject an unknown kind or a factor that is not a finite number >= 0."""
        for kind, factor in self.rate_factor.items():
            if kind not in EVENT_KINDS:
                raise ValueError(
                    f"rate_factor names unknown event kind {kind!r}; known: {list(EVENT_KINDS)}"
                )
            if isinstance(factor, bool) or not isinstance(factor, Real) or not factor >= 0:
                raise ValueError(f"rate_factor[{kind!r}] must be a number >= 0, got {factor!r}")
            if not math.isfinite(factor):
                raise ValueError(f"rate_factor[{kind!r}] must be finite, got {factor!r}")


@dataclass(frozen=True)
class ActivityData:
    """What ``generate_events`` returns: the event log and each customer's label time."""

    events: pd.DataFrame
    label_times: pd.DataFrame


def generate_events(
    ids: pd.Series,
    churned: pd.Series,
    seed: int = 42,
    *,
    tenure_months: pd.Series | None = None,
    electronic_check: pd.Series | None = None,
    drift: EventDrift | None = None,
) -> ActivityData:
    """Draw the activity events and label times of the given customers.

    Args:
        ids: The customers' ids (unique).
        churned: True where the customer churned (same length and order as ``ids``).
        seed: Seed of the events' random streams; the same arguments give identical frames.
        tenure_months: Months with the company at the label time: no event before the start.
        electronic_check: True where the customer pays by electronic check.
        drift: Optional shift of the event rates.

    Returns:
        The events (``EVENT_COLUMNS``, sorted by customer then time) and the label times
        (``LABEL_TIME_COLUMNS``, in the order of ``ids``).

    Raises:
        ValueError: If the arguments do not line up (the message says which).
    """
    n = len(ids)
    if len(churned) != n:
        raise ValueError(f"churned has {len(churned)} rows, ids {n}: one label per customer")
    if not ids.is_unique:
        raise ValueError("ids must be unique: one label time per customer")
    drift = drift or EventDrift()
    label_rng, event_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), _STREAM_KEY]).spawn(2)
    )
    end = pd.Timestamp(WINDOW_END).value
    label = end - (label_rng.random(n) * LABEL_SPREAD_DAYS * _DAY_NS).astype(np.int64)
    label -= label % _SECOND_NS  # logs keep whole seconds
    history_days = np.full(n, float(HISTORY_DAYS))
    if tenure_months is not None:
        history_days = np.minimum(history_days, tenure_months.to_numpy(float) * _MONTH_DAYS)
    churn = churned.to_numpy(bool)
    echeck = (
        np.zeros(n, bool) if electronic_check is None else electronic_check.to_numpy(dtype=bool)
    )
    engagement = label_rng.lognormal(0.0, _LOGIN_ENGAGEMENT_SD, n)

    pre_days = np.minimum(history_days, PRE_CHURN_DAYS)
    after_days = np.where(churn, 0.0, (end - label) / _DAY_NS)
    # Three segments per customer: [start, label - 30d), [label - 30d, label), [label, end).
    seg_start = np.stack(
        [label - (history_days * _DAY_NS).astype(np.int64), label - (pre_days * _DAY_NS), label]
    ).astype(np.int64)
    seg_days = np.stack([history_days - pre_days, pre_days, after_days])

    owners: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    for k, kind in enumerate(EVENT_KINDS):
        per_customer = _BASE_RATE[k] * drift.rate_factor.get(kind, 1.0) * np.ones(n)
        if kind == "login":
            per_customer = per_customer * engagement
        if kind == "payment_failed":
            per_customer = per_customer * np.where(echeck, _ELECTRONIC_CHECK_PAYMENT_FACTOR, 1.0)
        factors = np.stack([np.ones(n), np.where(churn, _PRE_CHURN_FACTOR[k], 1.0), np.ones(n)])
        counts = event_rng.poisson(per_customer * factors * seg_days / _MONTH_DAYS)
        owner = np.repeat(np.tile(np.arange(n), 3), counts.ravel())
        starts = np.repeat(seg_start.ravel(), counts.ravel())
        spans = np.repeat((seg_days * _DAY_NS).ravel(), counts.ravel())
        owners.append(owner)
        stamp = starts + (event_rng.random(len(owner)) * spans).astype(np.int64)
        stamps.append(stamp - stamp % _SECOND_NS)
        kinds.append(np.full(len(owner), k))
    owner = np.concatenate(owners)
    stamp = np.concatenate(stamps)
    kind_code = np.concatenate(kinds)
    order = np.lexsort((kind_code, stamp, owner))
    events = pd.DataFrame(
        {
            "customerID": ids.to_numpy(object)[owner[order]],
            "event_timestamp": pd.to_datetime(stamp[order], unit="ns", utc=True),
            "event": np.asarray(EVENT_KINDS, dtype=object)[kind_code[order]],
        },
        columns=list(EVENT_COLUMNS),
    )
    label_times = pd.DataFrame(
        {"customerID": ids.to_numpy(object), "label_time": pd.to_datetime(label, utc=True)},
        columns=list(LABEL_TIME_COLUMNS),
    )
    return ActivityData(events=events, label_times=label_times)


EMPTY_KINDS: Mapping[str, str] = MappingProxyType(
    {"customerID": "object", "event_timestamp": "datetime64[ns, UTC]", "event": "object"}
)


def empty_events() -> ActivityData:
    """The tables of a data set without events (its own data): no rows, the same columns."""
    events = pd.DataFrame({c: pd.Series(dtype=t) for c, t in EMPTY_KINDS.items()})
    label_times = pd.DataFrame(
        {
            "customerID": pd.Series(dtype="object"),
            "label_time": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    return ActivityData(events=events, label_times=label_times)
