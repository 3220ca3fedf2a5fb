"""The rolling aggregates the store serves: event counts per window and recency, per snapshot.

Feast serves feature *rows* with a timestamp and joins, for each entity row, the latest one at or
before the row's time. So the events are aggregated on a grid of snapshot times (every
``snapshot_hours``): at snapshot ``t`` a customer's ``support_call_count_30d`` counts their support
calls in ``(t - 30 days, t]`` and ``days_since_support_call`` is the days from their last one to
``t`` (capped at the longest window). Vectorised: one sort and a few ``searchsorted`` calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.config.feature_store import EVENT_KINDS, FeatureStoreParams

ENTITY_COLUMN = "customerID"
SNAPSHOT_COLUMN = "event_timestamp"
_SECOND_NS = 1_000_000_000
_DAY_S = 86_400
# keys are (customer, kind) * 2**_SHIFT + seconds since the grid's origin (< 2**_SHIFT: ~1 year)
_SHIFT = 36


def snapshot_grid(events: pd.DataFrame, end: pd.Timestamp, hours: int) -> pd.DatetimeIndex:
    """Snapshot times from the step at or before the first event to the first at or after
    ``end``."""
    step = f"{int(hours)}h"  # a string: pandas-stubs type floor and ceil so
    first = events["event_timestamp"].min() if len(events) else end
    origin = pd.Timestamp(first).floor(step)
    return pd.date_range(origin, pd.Timestamp(end).ceil(step), freq=step, tz="UTC")


def aggregate(
    events: pd.DataFrame,
    customers: pd.Series,
    params: FeatureStoreParams,
    grid: pd.DatetimeIndex,
) -> pd.DataFrame:
    """Every customer's aggregates at every snapshot of ``grid``.

    Args:
        events: ``customerID``, ``event_timestamp`` (UTC), ``event`` (``EVENT_KINDS``).
        customers: The entity ids (a customer without events gets zero counts).
        params: The windows and the order of the features.
        grid: The snapshot times (``snapshot_grid``).

    Returns:
        ``customerID``, ``event_timestamp`` (the snapshot) and ``params.feature_names()``, one row
        per customer and snapshot, sorted by customer then time.
    """
    grid_ns = grid.to_numpy("datetime64[ns]").astype(np.int64)
    origin_ns = int(grid_ns[0])
    snap_s = (grid_ns - origin_ns) // _SECOND_NS
    if snap_s[-1] >= 2**_SHIFT:
        raise ValueError("feature_store: the events span more than two thousand years")
    n_customers, n_snaps = len(customers), len(snap_s)
    codes = pd.Categorical(events["customerID"], categories=customers).codes.astype(np.int64)
    kind = pd.Categorical(events["event"], categories=EVENT_KINDS).codes.astype(np.int64)
    known = (codes >= 0) & (kind >= 0)
    stamp_ns = events["event_timestamp"].to_numpy("datetime64[ns]").astype(np.int64)[known]
    # ceil to the second: an event at t + 0.4 s is not "at or before" the snapshot t
    stamp_s = -((origin_ns - stamp_ns) // _SECOND_NS)
    group = codes[known] * len(EVENT_KINDS) + kind[known]
    keys = group * 2**_SHIFT + stamp_s
    order = np.argsort(keys, kind="stable")
    keys, stamp_ns = keys[order], stamp_ns[order]

    customer = np.repeat(np.arange(n_customers), n_snaps)
    at_s = np.tile(snap_s, n_customers)
    at_ns = np.tile(grid_ns, n_customers)
    columns: dict[str, np.ndarray] = {}
    cap = float(max(params.windows_days))
    for k, name in enumerate(EVENT_KINDS):
        base = (customer * len(EVENT_KINDS) + k) * 2**_SHIFT
        upto = np.searchsorted(keys, base + at_s, side="right")
        for days in params.windows_days:
            since = np.searchsorted(keys, base + at_s - days * _DAY_S, side="right")
            columns[f"{name}_count_{days}d"] = (upto - since).astype(np.int64)
        last = upto - 1
        has_last = (last >= 0) & ((keys[np.maximum(last, 0)] >> _SHIFT) == base >> _SHIFT)
        age = (at_ns - stamp_ns[np.maximum(last, 0)]) / (_DAY_S * _SECOND_NS)
        columns[f"days_since_{name}"] = np.where(has_last, np.minimum(age, cap), cap).astype(
            np.float32
        )
    frame = pd.DataFrame(
        {
            ENTITY_COLUMN: customers.to_numpy(object)[customer],
            SNAPSHOT_COLUMN: pd.to_datetime(at_ns, utc=True),
            **{name: columns[name] for name in params.feature_names()},
        }
    )
    return frame
