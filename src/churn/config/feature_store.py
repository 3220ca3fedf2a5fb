"""The ``feature_store`` block of ``params.yaml``: the optional feature store's switch and shape.

Read by the params models (``churn.config.params``) and the plug-in (``churn.feature_store``),
which generates Feast's ``feature_store.yaml`` and its definitions from it: nothing about the
store is kept by hand twice (docs/feature-store.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EVENT_KINDS: tuple[str, ...] = ("login", "support_call", "payment_failed")
"""The kinds of activity event (``churn.data.events`` draws them; the store aggregates them).
Here, below ``data/``, because the params models name the store's features from them."""


class FeatureStoreParams(BaseModel):
    """The feature store (Feast) over the activity events; off unless ``enabled``.

    Attributes:
        enabled: Train through the store (needs the ``feast`` dependency group and the generated
            data set's events).
        project: Feast's project name (the registry's namespace).
        windows_days: The rolling windows of the event counts, one feature view each.
        snapshot_hours: How often the aggregates are snapshotted: a row's features are those of
            the last snapshot at or before its label time (the store's freshness).
        online_store: Where served features live; ``sqlite`` is the embedded default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    project: str = Field("churn", pattern=r"^[A-Za-z0-9_]{1,40}$")
    windows_days: tuple[int, ...] = (7, 30, 90)
    snapshot_hours: int = Field(24, ge=1, le=24 * 7)
    online_store: Literal["sqlite"] = "sqlite"

    @field_validator("windows_days")
    @classmethod
    def _distinct_positive_windows(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("feature_store.windows_days is empty: list at least one window")
        if any(days <= 0 or days > 365 for days in value) or len(set(value)) != len(value):
            raise ValueError(
                f"feature_store.windows_days must be distinct whole days in 1..365, got "
                f"{list(value)}"
            )
        return tuple(sorted(value))

    def count_features(self) -> dict[int, list[str]]:
        """The count features of each window: ``{7: ["login_count_7d", ...], ...}``."""
        return {
            days: [f"{kind}_count_{days}d" for kind in EVENT_KINDS] for days in self.windows_days
        }

    def recency_features(self) -> list[str]:
        """Days since the last event of each kind (the window's longest span when none)."""
        return [f"days_since_{kind}" for kind in EVENT_KINDS]

    def feature_names(self) -> list[str]:
        """Every feature the store serves, in a fixed order."""
        counts = [name for names in self.count_features().values() for name in names]
        return [*counts, *self.recency_features()]


@dataclass(frozen=True)
class StoreVersion:
    """What a training run records of the store it read (the champion record, MLflow tags).

    Attributes:
        views: Feature view name -> the hash of its definition.
        data_version: Hash of the offline store's file (the aggregates the rows were joined to).
        rows: Rows of that file (customers x snapshots).
    """

    views: dict[str, str]
    data_version: str
    rows: int
