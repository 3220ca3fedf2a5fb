"""The swap checks: what a version must pass before this service serves it (docs/serving.md,
"Swap checks"). Its record first (the lineage of its data set, the feature code it was fitted
with), before anything is downloaded; then one row of the service's request schema (the probe).
A version that fails is refused (:class:`Refusal`) and the served model stays."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from churn.champion import ChampionInfo
from churn.config.params import Params
from churn.config.settings import Settings
from churn.data.lineage import lineage_of
from churn.features.version import FEATURE_CODE_VERSION
from churn.scoring import Scorer, probe_columns
from churn.scoring.fallback_rules import FallbackRules

Check = Literal["lineage", "feature_code", "probe"]


@dataclass(frozen=True)
class Refusal:
    """A version the service will not serve, and why (docs/serving.md, "Swap checks").

    Attributes:
        version: the registry version refused.
        check: which check refused it: ``lineage`` (another data set's schema),
            ``feature_code`` (fitted with feature code this service does not run) or ``probe``
            (a row of this service's request schema could not be scored by it, or its rules).
        reason: one sentence saying why and what to do.
        run_id: the version's run (a version number reused by another registry is not it).
        refused_at: when this service first refused it (UTC).
    """

    version: str
    check: Check
    reason: str
    run_id: str | None = None
    refused_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def as_dict(self) -> dict[str, Any]:
        """``/ready``'s ``refused`` block."""
        return {
            "version": self.version,
            "check": self.check,
            "reason": self.reason,
            "since": self.refused_at,
        }


class NotRunnable(Exception):
    """A version this service cannot serve (:class:`Refusal` says why); nothing was swapped."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def record_refusal(settings: Settings, params: Params, record: ChampionInfo) -> Refusal | None:
    """The refusal of ``record`` by what it says, before anything is downloaded; None when the
    record passes (a version without a lineage or feature-code record is left to the probe).

    Same lineage: the record's schema fingerprint is the service's own (``params.yaml``'s
    ``dataset`` block). A feature code it can run: the record's ``feature_code`` is this
    code's ``FEATURE_CODE_VERSION``.
    """
    version = str(record.version)
    theirs = record.lineage
    if theirs is not None:
        mine = lineage_of(params.dataset, settings.model_name)
        if theirs.fingerprint != mine.fingerprint:
            return Refusal(
                version,
                "lineage",
                f"v{version} was trained on another data set (lineage {theirs.name!r}, schema "
                f"{theirs.fingerprint}; this service serves {mine.name!r}, schema "
                f"{mine.fingerprint}: {schema_difference(mine.schema, theirs.schema)}); "
                "serve it with that data set's params.yaml, or register it under its own name",
                record.run_id,
            )
    if record.feature_code is not None and record.feature_code != FEATURE_CODE_VERSION:
        newer = record.feature_code > FEATURE_CODE_VERSION
        return Refusal(
            version,
            "feature_code",
            f"v{version} was fitted with feature code version {record.feature_code}; this "
            f"service runs version {FEATURE_CODE_VERSION}: "
            + (
                "deploy the code it was trained with"
                if newer
                else "retrain it on this code (`make train`)"
            ),
            record.run_id,
        )
    return None


def schema_difference(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """What differs between two lineage schemas, in a few words (the service's first)."""
    parts = []
    for role in ("id", "label", "positive", "time"):
        if mine.get(role) != theirs.get(role):
            parts.append(f"{role} {mine.get(role)!r} here, {theirs.get(role)!r} there")
    ours, other = mine.get("columns", {}), theirs.get("columns", {})
    missing = sorted(set(other) - set(ours))
    extra = sorted(set(ours) - set(other))
    changed = sorted(c for c in set(ours) & set(other) if ours[c] != other[c])
    if missing:
        parts.append(f"it reads columns this service's requests lack: {_few(missing)}")
    if extra:
        parts.append(f"it does not read {_few(extra)}")
    if changed:
        parts.append(f"other column types: {_few(changed)}")
    return "; ".join(parts) or "the schemas differ"


def _few(names: list[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def probe(params: Params, version: str, scorer: Scorer, rules: FallbackRules | None) -> str | None:
    """Why one row of the service's request schema cannot be scored by ``scorer`` and then by
    ``rules`` (as ``/predict`` would: the one-record path, then the batch path); None when it
    can (a probability in [0, 1] from each)."""
    columns = probe_columns(params.dataset, n=1)
    steps: list[tuple[str, Callable[[], Any]]] = [("the model", lambda: scorer.score(columns, 1))]
    score_one = getattr(scorer, "score_one", None)
    if score_one is not None:
        steps.append(("the model (one record)", lambda: [score_one(columns)]))
    if rules is not None:
        steps.append(("its fallback rules", lambda: rules.score(columns, 1)))
    for what, step in steps:
        try:
            values = [float(v) for v in step()]
            if len(values) != 1 or not 0.0 <= values[0] <= 1.0:  # NaN fails this too
                raise ValueError(f"returned {values[:3]} for one row")
        except Exception as exc:
            return (
                f"v{version}: {what} cannot score a row of this service's request schema "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            )
    return None
