"""Champion against challenger on the labelled live traffic of one window (``live`` in
params.yaml), and the promotion that live evidence allows.

The champion's rows (role ``champion``) and the challenger's (role ``shadow`` or
``challenger``, by ``live.mode``) are read from the same window of the prediction store, joined
with the labels that arrived, and compared by ``churn.release.live.compare``; ``promote_from_live``
moves the champion only when that comparison says the challenger is better, through the
registry's ``promote`` (so the gate's decision, the checks and a stale decision still refuse),
and records the evidence on the version (``promotion.live.*``).
"""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd

from churn.champion import ChampionInfo
from churn.config.params import Params
from churn.config.settings import Settings
from churn.prediction_store import (
    CHALLENGER_ROLE,
    CHAMPION_ROLE,
    SCORE_COLUMN,
    SHADOW_ROLE,
    PredictionStore,
)
from churn.release import live, registry, tracking
from monitoring import data as mdata
from monitoring.report import TARGET

log = logging.getLogger(__name__)


class NoLiveEvidence(LookupError):
    """There is nothing to compare (no live mode, no challenger); the message says what to do."""


def challenger_version(settings: Settings, champion: str | None) -> str:
    """The version the ``challenger`` alias names, when it is not the champion.

    Raises:
        NoLiveEvidence: no challenger alias, or it names the champion.
    """
    client = tracking.connect(settings)
    try:
        version = str(
            registry.aliased_version(client, settings.model_name, registry.CHALLENGER).version
        )
    except LookupError as exc:
        raise NoLiveEvidence(
            f"model {settings.model_name!r} has no challenger: register one with "
            "`churn train --no-promote`, then serve it with live.mode shadow or canary"
        ) from exc
    if version == champion:
        raise NoLiveEvidence(f"the challenger v{version} is already the champion")
    return version


def compare_live(
    settings: Settings,
    params: Params,
    store: PredictionStore,
    now: datetime,
    champion: str | None,
) -> live.LiveComparison:
    """The champion and the challenger on the labelled predictions of ``monitor.window``.

    Raises:
        NoLiveEvidence: when ``live.mode`` is off, or there is no champion or challenger.
    """
    mode = params.live.mode
    if mode == "off":
        raise NoLiveEvidence(
            "live.mode is off in params.yaml: no challenger ran on live traffic; set it to "
            "shadow or canary (the service follows it at its next start)"
        )
    if champion is None:
        raise NoLiveEvidence(f"model {settings.model_name!r} has no champion yet")
    challenger = challenger_version(settings, champion)
    client = tracking.connect(settings)
    records = {
        v: ChampionInfo.from_version(registry.model_version(client, settings.model_name, v))
        for v in (champion, challenger)
    }
    lineages = {v: records[v].lineage for v in (champion, challenger)}
    a, b = lineages[champion], lineages[challenger]
    if a is not None and b is not None and a.fingerprint != b.fingerprint:
        raise NoLiveEvidence(
            f"challenger v{challenger} was trained on another data set than champion v{champion} "
            f"(schema {b.fingerprint} vs {a.fingerprint}): live traffic cannot compare them; "
            "a person decides (`churn promote --force --by NAME --reason TEXT`)"
        )
    role = SHADOW_ROLE if mode == live.SHADOW else CHALLENGER_ROLE
    frames = {}
    for version, roles in ((champion, [CHAMPION_ROLE]), (challenger, [role])):
        window = mdata.store_window(store, params.monitor, now, version, roles, params.dataset)
        labelled = mdata.join_labels(window, store).rename(columns={TARGET: live.LABEL})
        columns = ["customer_hash", SCORE_COLUMN, live.LABEL]
        frames[version] = labelled[columns] if len(labelled) else pd.DataFrame(columns=columns)
    result = live.compare(
        frames[champion],
        frames[challenger],
        mode=mode,
        champion_version=champion,
        challenger_version=challenger,
        champion_threshold=records[champion].decision_threshold,
        challenger_threshold=records[challenger].decision_threshold,
        params=params.live,
        seed=params.monitor.sample_seed,
    )
    log.info("%s", result.format())
    return result


def promote_from_live(
    settings: Settings, comparison: live.LiveComparison, by: str | None = None
) -> tuple[str | None, str]:
    """Make the challenger champion on this live evidence; returns ``(previous, new)``.

    Raises:
        churn.release.live.NotProven: the evidence does not show it is better (what is missing).
        registry.PromotionRefused: the gate's decision, its checks or a newer champion refuse.
    """
    live.require_better(comparison)
    return registry.promote(
        tracking.connect(settings),
        settings.model_name,
        comparison.challenger.version,
        by=by,
        evidence=comparison.tags(),
    )
