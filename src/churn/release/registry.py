"""Model registry: challenger/champion aliases, the promotion gate, its history, and rollback.

Besides the champion record (``churn.champion``), this module owns every tag written on a model
version: the gate's decision (``promotion.*``), the challenger checks' outcome
(``promotion.checks*``), who promoted or forced it, and the image a release was built into.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from churn.champion import ChampionInfo, ChampionRecordError
from churn.config.params import PromoteParams

CHAMPION = "champion"
CHALLENGER = "challenger"
_TAG = "promotion."  # prefix of the decision tags written on each model version

# The decision a version carries (tag ``promotion.decision``):
PROMOTED = "promoted"  # it became champion (by the gate in `churn train`, or by `churn promote`)
APPROVED = "approved"  # the gate approved it, the champion did not move (awaiting the checks)
REJECTED = "rejected"  # the gate refused it
PENDING = "pending"  # no decision recorded (registered by hand)

IMAGE_DIGEST_TAG = "image_digest"  # the digest of the image released while it was champion


@dataclass(frozen=True)
class PromotionDecision:
    """Whether a challenger becomes champion, and why, in figures anyone can re-check."""

    promote: bool
    reason: str
    challenger_roc_auc: float
    baseline_roc_auc: float
    champion_version: str | None = None
    champion_roc_auc: float | None = None


def decide_promotion(
    challenger_auc: float,
    baseline_auc: float,
    champion_auc: float | None,
    params: PromoteParams,
    champion_version: str | None = None,
    champion_note: str = "",
    recall_gap: float | None = None,
    max_recall_gap: float | None = None,
    challenger_compared_auc: float | None = None,
) -> PromotionDecision:
    """The gate. All ROC AUCs are on the same held-out test split.

    When the champion was scored on part of it only (the rows held out from both models, as
    ``champion_note`` says), ``challenger_compared_auc`` is the challenger's on those rows.

    A challenger is promoted only if it beats the baseline, and then either beats the champion by
    ``params.margin`` or, when there is no comparable champion, reaches ``params.min_roc_auc``.
    With ``max_recall_gap`` set (``fairness.max_recall_gap``), a challenger whose largest recall
    gap between the levels of a segment column (``recall_gap``) exceeds it is refused first; a
    gap that could not be measured (too few rows per level) does not refuse.
    """

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, challenger_auc, baseline_auc, champion_version, champion_auc
        )

    if max_recall_gap is not None and recall_gap is not None and recall_gap > max_recall_gap:
        return decision(
            False,
            f"largest recall gap between segments {recall_gap:.4f} exceeds "
            f"fairness.max_recall_gap {max_recall_gap:.4f}",
        )
    if challenger_auc <= baseline_auc:
        return decision(
            False,
            f"test ROC AUC {challenger_auc:.4f} does not beat the "
            f"logistic-regression baseline ({baseline_auc:.4f})",
        )
    if champion_auc is None:
        prefix = f"{champion_note}; " if champion_note else "no champion yet; "
        if challenger_auc < params.min_roc_auc:
            return decision(
                False,
                f"{prefix}test ROC AUC {challenger_auc:.4f} is below the "
                f"minimum quality {params.min_roc_auc:.4f}",
            )
        return decision(
            True,
            f"{prefix}test ROC AUC {challenger_auc:.4f} reaches the minimum "
            f"{params.min_roc_auc:.4f} and beats the baseline ({baseline_auc:.4f})",
        )
    needed = champion_auc + params.margin
    compared = challenger_auc if challenger_compared_auc is None else challenger_compared_auc
    prefix = f"{champion_note}; " if champion_note else ""
    figures = (
        f"test ROC AUC {compared:.4f}"
        if compared == challenger_auc
        else (f"ROC AUC {compared:.4f} on those rows (test {challenger_auc:.4f})")
    )
    if compared < needed:
        return decision(
            False,
            f"{prefix}{figures} does not beat champion "
            f"v{champion_version} ({champion_auc:.4f}) by the margin "
            f"{params.margin:.4f} on the same test data",
        )
    return decision(
        True,
        f"{prefix}{figures} beats champion v{champion_version} "
        f"({champion_auc:.4f}) by at least {params.margin:.4f} and the "
        f"baseline ({baseline_auc:.4f})",
    )


def current_champion(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version the ``champion`` alias points at, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def aliased_record(client: MlflowClient, name: str, alias: str = CHAMPION) -> ChampionInfo:
    """The champion record of the version ``alias`` points at.

    Raises:
        LookupError: when no version carries the alias (a ``ChampionRecordError`` when the
            version has no record).
    """
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise LookupError(
            f"model {name!r} has no {alias!r} version; run `make train` first"
        ) from exc
    return ChampionInfo.from_version(version)


def register_challenger(
    client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> ModelVersion:
    """Register a logged model as a new version of ``name`` and point ``challenger`` at it."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Customer churn classifier (probability of churn)."
        )
    # A logged model's URI is ``models:/<model_id>``; a tracking server (unlike a local SQLite
    # store) only accepts that source together with the model_id it names.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name, model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return version


def record_decision(
    client: MlflowClient,
    name: str,
    version: str,
    decision: PromotionDecision,
    *,
    move_champion: bool = True,
) -> str:
    """Write the decision on the version and, if it is a promotion, move ``champion`` to it.

    With ``move_champion=False`` an approval is recorded as ``approved`` and the champion stays
    where it is: the continuous-training job checks the version first and then promotes it
    with :func:`promote`. The tags are written before the alias moves, so a crash in between
    leaves the old champion in place with the reason on record.

    Returns:
        The recorded decision: ``promoted``, ``approved`` or ``rejected``.
    """
    tags = {k: "" if v is None else str(v) for k, v in asdict(decision).items()}
    tags["decided_at"] = _now()
    if not decision.promote:
        tags["decision"] = REJECTED
    else:
        tags["decision"] = PROMOTED if move_champion else APPROVED
    for key, value in tags.items():
        client.set_model_version_tag(name, version, _TAG + key, value)
    if tags["decision"] == PROMOTED:
        client.set_registered_model_alias(name, CHAMPION, version)
    return tags["decision"]


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a registered version before it may become champion (``churn.release.checks``).

    Attributes:
        name: what was checked (``gate_decision``, ``id_invariance``, ``monotone:Contract``...).
        passed: whether it held.
        detail: the figures behind the verdict, or why it failed.
    """

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class RecordedDecision:
    """What the gate, the checks and a promotion recorded on one version (``promotion.*`` tags).

    Attributes:
        version: the registry version.
        decision: ``promoted``, ``approved`` (gate passed, champion not moved yet), ``rejected``
            or ``pending`` (no decision recorded).
        gate_approved: the gate's own verdict, whatever happened after it.
        reason: the gate's reason, in figures.
        checks: the challenger checks' outcomes; None when they never ran on this version.
        forced_by: who promoted it against the gate or its checks (``churn promote --force``).
    """

    version: str
    decision: str
    gate_approved: bool
    reason: str = ""
    decided_at: str = ""
    challenger_roc_auc: float | None = None
    baseline_roc_auc: float | None = None
    champion_version: str | None = None
    champion_roc_auc: float | None = None
    checks: tuple[CheckOutcome, ...] | None = None
    checked_at: str = ""
    promoted_by: str = ""
    promoted_at: str = ""
    forced_by: str = ""
    forced_reason: str = ""

    @property
    def checks_passed(self) -> bool | None:
        """True or False once checks were recorded; None when they never ran."""
        if self.checks is None:
            return None
        return all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks or () if not c.passed]

    @classmethod
    def from_tags(cls, version: str, tags: Mapping[str, str]) -> RecordedDecision:
        """Read the ``promotion.*`` tags of one version (missing ones are empty)."""

        def text(key: str) -> str:
            return tags.get(_TAG + key, "")

        def number(key: str) -> float | None:
            try:
                return float(text(key))
            except ValueError:
                return None

        raw_checks = text("checks")
        checks = tuple(CheckOutcome(**c) for c in json.loads(raw_checks)) if raw_checks else None
        return cls(
            version=str(version),
            decision=text("decision") or PENDING,
            gate_approved=text("promote") == "True",
            reason=text("reason"),
            decided_at=text("decided_at"),
            challenger_roc_auc=number("challenger_roc_auc"),
            baseline_roc_auc=number("baseline_roc_auc"),
            champion_version=text("champion_version") or None,
            champion_roc_auc=number("champion_roc_auc"),
            checks=checks,
            checked_at=text("checked_at"),
            promoted_by=text("promoted_by"),
            promoted_at=text("promoted_at"),
            forced_by=text("forced_by"),
            forced_reason=text("forced_reason"),
        )

    @classmethod
    def from_version(cls, model_version: ModelVersion) -> RecordedDecision:
        return cls.from_tags(str(model_version.version), dict(model_version.tags or {}))


def model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    """One version of ``name``.

    Raises:
        LookupError: naming the version, when the registry does not have it.
    """
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise LookupError(
            f"model {name!r} has no version {version!r}; `churn history` lists them"
        ) from exc


def aliased_version(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """The version ``alias`` points at.

    Raises:
        LookupError: naming the alias, when no version carries it.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise LookupError(
            f"model {name!r} has no {alias!r} version; run `churn train --no-promote` first"
        ) from exc


def record_checks(
    client: MlflowClient, name: str, version: str, outcomes: Sequence[CheckOutcome]
) -> None:
    """Write the challenger checks' outcomes on the version (``promotion.checks``)."""
    # A detail is one line for a person (the MLflow UI, the job summary), never a whole log.
    payload = [{**asdict(o), "detail": o.detail[:1000]} for o in outcomes]
    passed = all(o.passed for o in outcomes)
    client.set_model_version_tag(name, version, _TAG + "checks", json.dumps(payload))
    client.set_model_version_tag(name, version, _TAG + "checks_passed", str(passed))
    client.set_model_version_tag(name, version, _TAG + "checked_at", _now())


class PromotionRefused(ValueError):
    """``promote`` will not move the champion to this version; the message says why."""


def promote(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    require_checks: bool = False,
    force: bool = False,
    by: str | None = None,
    reason: str | None = None,
    evidence: Mapping[str, str] | None = None,
) -> tuple[str | None, str]:
    """Move ``champion`` to ``version`` when its recorded decision allows it.

    The rule: the gate approved the version, its checks (when recorded) passed, and the
    champion the gate compared it with is still the champion (else the decision is stale).
    ``require_checks`` also refuses a version whose checks never ran (the continuous-training
    job sets it). ``force`` is a human override (a rollback to a version the gate refused, an
    emergency): it needs ``by`` and ``reason``, which are recorded on the version.
    ``evidence`` (a promotion from live traffic: ``churn.release.live.LiveComparison.tags``) is
    recorded as ``promotion.live.*`` tags.

    Returns:
        ``(previous_champion_or_None, version)``.

    Raises:
        LookupError: the version does not exist.
        ChampionRecordError: the version has no champion record (it could not be served).
        PromotionRefused: the recorded decision does not allow it; the message says why.
    """
    target = model_version(client, name, version)
    version = str(target.version)
    ChampionInfo.from_version(target)  # a version without the record cannot be served
    recorded = RecordedDecision.from_version(target)
    champion = current_champion(client, name)
    previous = None if champion is None else str(champion.version)
    if force:
        if not (by and by.strip()) or not (reason and reason.strip()):
            raise PromotionRefused(
                "a forced promotion records who and why: give --by NAME and --reason TEXT"
            )
    else:
        check_promotable(recorded, previous, require_checks)
    if previous == version:
        return previous, version
    tags = {"decision": PROMOTED, "promoted_at": _now(), "previous_champion": previous or ""}
    if by:
        tags["promoted_by"] = by.strip()
    if force:
        tags["forced_by"] = str(by).strip()
        tags["forced_reason"] = str(reason).strip()
    for key, value in (evidence or {}).items():
        tags[f"live.{key}"] = value[:5000]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, _TAG + key, value)
    client.set_registered_model_alias(name, CHAMPION, version)
    return previous, version


def check_promotable(
    recorded: RecordedDecision, champion: str | None, require_checks: bool = False
) -> None:
    """The rule of :func:`promote` without ``--force``, on what was recorded.

    Args:
        recorded: the version's recorded decision and checks.
        champion: the version ``champion`` points at now (None: there is none).
        require_checks: refuse a version whose checks never ran.

    Raises:
        PromotionRefused: naming the version, why, and what to do.
    """
    v = recorded.version
    override = "; a person may override with --force --by NAME --reason TEXT"
    if not recorded.gate_approved:
        why = f": {recorded.reason}" if recorded.reason else ""
        raise PromotionRefused(
            f"v{v} is not promoted: the gate's recorded decision is {recorded.decision!r}"
            f"{why}{override}"
        )
    if recorded.checks_passed is False:
        raise PromotionRefused(
            f"v{v} is not promoted: its checks failed ({', '.join(recorded.failed_checks)}); "
            f"`churn history` and the version's promotion.checks tag say why{override}"
        )
    if require_checks and recorded.checks_passed is None:
        raise PromotionRefused(
            f"v{v} is not promoted: no checks were recorded on it; run "
            "`churn check-challenger` first"
        )
    # A decision compares with the champion of its time; once another version is champion it is
    # stale. A version that was champion before may return (what a rollback does).
    if champion is not None and recorded.decision != PROMOTED:
        compared = recorded.champion_version
        if compared != champion:
            then = f"champion v{compared}" if compared else "no champion (a first model)"
            raise PromotionRefused(
                f"v{v} is not promoted: the gate compared it with {then}, but v{champion} is "
                f"champion now; train again so the gate compares with v{champion}{override}"
            )


def record_image(
    client: MlflowClient, name: str, version: str, digest: str, image: str | None = None
) -> None:
    """Record the digest (and name) of the image released while ``version`` was champion.

    Raises:
        ValueError: when ``digest`` is not ``sha256:<64 hex digits>``.
    """
    algorithm, _, hexdigits = digest.partition(":")
    if (
        algorithm != "sha256"
        or len(hexdigits) != 64
        or not all(c in "0123456789abcdef" for c in hexdigits)
    ):
        raise ValueError(f"image digest {digest!r} is not sha256:<64 lowercase hex digits>")
    model_version(client, name, version)
    client.set_model_version_tag(name, version, IMAGE_DIGEST_TAG, digest)
    if image:
        client.set_model_version_tag(name, version, "image", image)
    client.set_model_version_tag(name, version, "image_recorded_at", _now())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rollback(
    client: MlflowClient,
    name: str,
    to_version: str | None = None,
    *,
    by: str | None = None,
    reason: str | None = None,
) -> tuple[str, str]:
    """Move ``champion`` back to ``to_version``, or to the champion before the current one.

    ``by`` and ``reason`` (who asked, and why) are recorded on the version rolled back to.

    Returns:
        ``(from_version, to_version)``.

    Raises:
        ValueError: when there is no champion, or no earlier champion to return to.
    """
    champion = current_champion(client, name)
    if champion is None:
        raise ValueError(f"model {name!r} has no champion to roll back")
    if to_version is None:
        earlier = [
            v
            for v in history(client, name)
            if v["decision"] == PROMOTED and int(v["version"]) < int(champion.version)
        ]
        if not earlier:
            raise ValueError(f"no version of {name!r} before v{champion.version} was ever champion")
        to_version = str(earlier[0]["version"])
    target = model_version(client, name, to_version)
    now = _now()
    client.set_model_version_tag(name, target.version, _TAG + "rolled_back_to_at", now)
    client.set_model_version_tag(name, champion.version, _TAG + "rolled_back_from_at", now)
    if by:
        client.set_model_version_tag(name, target.version, _TAG + "rolled_back_by", by.strip())
    if reason:
        client.set_model_version_tag(
            name, target.version, _TAG + "rolled_back_reason", reason.strip()
        )
    client.set_registered_model_alias(name, CHAMPION, target.version)
    return str(champion.version), str(target.version)


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every version with its promotion decision and reason, newest first."""
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:  # nothing registered yet (the registered model may not exist either)
        return []
    # Version searches leave ``aliases`` empty; the registered model has them all.
    aliases: dict[str, list[str]] = {}
    for alias, number in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        try:
            record: ChampionInfo | None = ChampionInfo.from_version(v)
        except ChampionRecordError:
            record = None  # registered by hand: listed, without figures
        rows.append(
            {
                "version": str(v.version),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "champion": CHAMPION in aliases.get(str(v.version), []),
                "decision": v.tags.get(_TAG + "decision", PENDING),
                "reason": v.tags.get(_TAG + "reason", ""),
                "decided_at": v.tags.get(_TAG + "decided_at", ""),
                "test_roc_auc": record.test_roc_auc if record else None,
                "data_version": record.data_version if record else "",
                "run_id": v.run_id,
            }
        )
    return rows
