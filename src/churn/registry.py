"""Model registry: challenger/champion aliases, the promotion gate, its history, and rollback."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from churn.champion import ChampionInfo, ChampionRecordError
from churn.params import PromoteParams

CHAMPION = "champion"
CHALLENGER = "challenger"
_TAG = "promotion."  # prefix of the decision tags written on each model version


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
) -> PromotionDecision:
    """The gate. All ROC AUCs are on the same held-out test split.

    A challenger is promoted only if it beats the baseline, and then either beats the champion by
    ``params.margin`` or, when there is no comparable champion, reaches ``params.min_roc_auc``.
    """

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, challenger_auc, baseline_auc, champion_version, champion_auc
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
    if challenger_auc < needed:
        return decision(
            False,
            f"test ROC AUC {challenger_auc:.4f} does not beat champion "
            f"v{champion_version} ({champion_auc:.4f}) by the margin "
            f"{params.margin:.4f} on the same test data",
        )
    return decision(
        True,
        f"test ROC AUC {challenger_auc:.4f} beats champion v{champion_version} "
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
    client: MlflowClient, name: str, version: str, decision: PromotionDecision
) -> None:
    """Write the decision on the version and, if it is a promotion, move ``champion`` to it.

    The tags are written before the alias moves, so a crash in between leaves the old champion
    in place with the reason on record.
    """
    tags = {k: "" if v is None else str(v) for k, v in asdict(decision).items()}
    tags["decided_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    tags["decision"] = "promoted" if decision.promote else "rejected"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, _TAG + key, value)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)


def rollback(client: MlflowClient, name: str, to_version: str | None = None) -> tuple[str, str]:
    """Move ``champion`` back to ``to_version``, or to the champion before the current one.

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
            if v["decision"] == "promoted" and int(v["version"]) < int(champion.version)
        ]
        if not earlier:
            raise ValueError(f"no version of {name!r} before v{champion.version} was ever champion")
        to_version = str(earlier[0]["version"])
    target = client.get_model_version(name, to_version)  # raises if it does not exist
    now = datetime.now(UTC).isoformat(timespec="seconds")
    client.set_model_version_tag(name, target.version, _TAG + "rolled_back_to_at", now)
    client.set_model_version_tag(name, champion.version, _TAG + "rolled_back_from_at", now)
    client.set_registered_model_alias(name, CHAMPION, target.version)
    return str(champion.version), str(target.version)


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Every version with its promotion decision and reason, newest first."""
    versions = client.search_model_versions(f"name='{name}'")
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
                "decision": v.tags.get(_TAG + "decision", "pending"),
                "reason": v.tags.get(_TAG + "reason", ""),
                "decided_at": v.tags.get(_TAG + "decided_at", ""),
                "test_roc_auc": record.test_roc_auc if record else None,
                "data_version": record.data_version if record else "",
                "run_id": v.run_id,
            }
        )
    return rows
