"""The served model and where it comes from: the registry, the local cache, or the rules."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from churn.champion import ChampionInfo
from churn.config.layout import DataLayout
from churn.config.params import Params
from churn.config.settings import Settings
from churn.data.split import label_vector
from churn.models import serving_scorer
from churn.release import registry, tracking
from churn.scoring import Scorer, probe_columns
from churn.scoring.check import one_row_ms
from churn.scoring.fallback_rules import FILE_NAME as RULES_FILE
from churn.scoring.fallback_rules import FallbackRules, RulesError
from serving.swap_checks import NotRunnable, Refusal, probe, record_refusal

log = logging.getLogger(__name__)

# The version ``/predict`` and ``/version`` name while the fallback rules (learned or the prior
# rate) answer.
FALLBACK_VERSION = "fallback-rules"
# The version ``/ready`` and ``/version`` name when nothing can answer (``/predict`` is 503).
UNSERVABLE_VERSION = "none"
# The prior-rate rule's score when the service has no training split to count churners in.
UNKNOWN_PRIOR = 0.5

T = TypeVar("T")
Source = Literal["registry", "cache", "rules", "none"]
# Which check refused a version (``/ready``'s ``refused``, ``churn_model_swaps_refused_total``).
_META = "meta.json"
_KEEP_CACHED = 2
# Asking the registry gets ``registry_timeout_seconds``; downloading and loading the model that
# it names gets this many times as long (a model is larger than an answer).
LOAD_TIMEOUT_FACTOR = 4


@dataclass(frozen=True)
class ServedModel:
    """One loaded model with everything ``/version`` and the decision need. Swapped whole.

    ``record`` is the champion record training wrote (None for the rules); ``alias`` the
    registry alias the service follows (``CHURN_SERVED_ALIAS``). ``slow_scorer`` says why the
    compiled replay does not serve this model (the model's own ``predict_proba`` after the
    replayed features, or the plain pipeline: correct, slower), with its one-row time;
    ``one_row_ms`` is the scorer's median one-row time measured at load.
    ``rules`` are the fallback rules trained with this model (None when its folder has none):
    they answer a request the model fails on. ``refused`` is the registry's champion this
    model is served instead of, at start (a swap check refused it).
    """

    name: str
    version: str
    source: Source
    threshold: float
    scorer: Scorer
    record: ChampionInfo | None = None
    degraded_reason: str | None = None
    alias: str = registry.CHAMPION
    slow_scorer: str | None = None
    rules: FallbackRules | None = None
    one_row_ms: float | None = None
    refused: Refusal | None = None
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def degraded(self) -> bool:
        """True unless the registry's champion itself is served, by the compiled scorer."""
        return self.source != "registry" or self.slow_scorer is not None

    @property
    def status_reason(self) -> str | None:
        """Why the service is degraded (``/ready``): the source, the scorer, or both."""
        reasons = [self.degraded_reason]
        if self.slow_scorer is not None:
            reasons.append(f"slow scorer: {self.slow_scorer}")
        return "; ".join(r for r in reasons if r) or None

    @property
    def rules_summary(self) -> str:
        """The fallback rules this model carries, in one line (``/ready``, the log)."""
        return self.rules.summary() if self.rules is not None else "none"

    def describe(self) -> dict[str, Any]:
        """The public description (``/version``)."""
        r = self.record
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "source": self.source,
            "run_id": r.run_id if r else None,
            "data_version": r.data_version if r else None,
            "git_commit": r.git_commit if r else None,
            "trained_at": r.trained_at if r else None,
            "test_roc_auc": r.test_roc_auc if r else None,
            "decision_threshold": self.threshold,
            "scorer": self.scorer.kind,
            "scorer_one_row_ms": self.one_row_ms,
            "loaded_at": self.loaded_at,
            "degraded_reason": self.degraded_reason,
        }


class RegistryUnavailable(Exception):
    """The registry could not be asked, or has no champion."""


class Unservable:
    """The scorer of a service that has nothing it can run (``source`` ``none``): ``/predict``
    answers 503 with ``reason`` and ``Retry-After`` before reaching it."""

    kind = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def score(self, columns: Any, n: int) -> Any:
        raise RuntimeError(f"nothing can score: {self.reason}")


def champion_record(settings: Settings) -> ChampionInfo:
    """The served alias's record (the champion's, unless ``CHURN_SERVED_ALIAS`` says otherwise),
    straight from the registry.

    Raises:
        RegistryUnavailable: when the registry cannot be reached, has no champion, or the
            champion has no record.
    """
    try:
        client = tracking.connect(settings)
        return registry.aliased_record(client, settings.model_name, settings.served_alias)
    except Exception as exc:
        raise RegistryUnavailable(f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def load_from_registry(settings: Settings, params: Params, champion: ChampionInfo) -> ServedModel:
    """Download ``champion`` (from :func:`champion_record`) into the local cache, load, verify.

    The download lands in a fresh folder and the cache pointer moves only after the model loaded,
    so the cache always holds a model that worked (also when a caller stopped waiting for it).

    Raises:
        NotRunnable: the version fails a swap check (:func:`record_refusal`, :func:`probe`):
            refused before the download, or after it without touching the cache.
        RegistryUnavailable: when the model cannot be downloaded or loaded.
    """
    import mlflow

    refusal = record_refusal(settings, params, champion)
    if refusal is not None:
        raise NotRunnable(refusal)
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    # MLflow draws a download progress bar on stderr: in a service's log, at start and at every
    # swap, it is noise (the INFO lines say which version was loaded).
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.set("false")
    version = champion.version
    cache = _cache_dir(settings)
    target = cache / f"v{version}-{uuid.uuid4().hex[:8]}"
    target.mkdir(parents=True, exist_ok=True)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{settings.model_name}/{version}", dst_path=str(target)
        )
        pipeline = mlflow.sklearn.load_model(local)
    except Exception as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise RegistryUnavailable(f"cannot load v{version}: {type(exc).__name__}: {exc}") from exc
    try:
        served = _served(settings, params, pipeline, champion, "registry", None, model_rules(local))
    except NotRunnable:
        shutil.rmtree(target, ignore_errors=True)  # the cache keeps the last model that ran
        raise
    meta = {"record": champion.to_tags(), "version": version, "run_id": champion.run_id}
    (target / _META).write_text(json.dumps({**meta, "model_path": local}))
    _point_cache_at(cache, target)
    return served


def load_from_cache(settings: Settings, params: Params, reason: str) -> ServedModel | None:
    """The newest cached copy that loads (see :func:`cached_copies`); None when none does.

    A copy that fails (a corrupt file, a missing ``MLmodel``, a swap check: another lineage,
    feature code or a failed probe) is skipped with a WARNING and the next older one is tried;
    the served model's reason names the copy and the ones skipped.
    """
    import mlflow

    skipped: list[str] = []
    for folder in cached_copies(settings):
        try:
            meta = json.loads((folder / _META).read_text())
            record = ChampionInfo.from_tags(
                meta["record"], version=meta["version"], run_id=meta["run_id"]
            )
            refusal = record_refusal(settings, params, record)
            if refusal is not None:
                raise NotRunnable(refusal)
            pipeline = mlflow.sklearn.load_model(meta["model_path"])
            why = f"{reason}; serving the cached copy {folder.name} of v{record.version}"
            if skipped:
                why += f" (newer cached copies failed to load: {', '.join(skipped)})"
            return _served(
                settings, params, pipeline, record, "cache", why, model_rules(meta["model_path"])
            )
        except Exception as exc:  # whatever is wrong with this copy, an older one may load
            log.warning(
                "skipping the cached copy %s: it cannot be loaded (%s: %s)",
                folder,
                type(exc).__name__,
                str(exc)[:300],
            )
            skipped.append(f"{folder.name}: {type(exc).__name__}")
    return None


def cached_copies(settings: Settings) -> list[Path]:
    """The cached copies of the served alias, newest first: the one the ``current`` pointer
    names (the last that loaded from the registry), then the others, most recent first."""
    cache = _cache_dir(settings)
    if not cache.is_dir():
        return []
    folders = sorted(
        (p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    try:
        current = cache / (cache / "current").read_text().strip()
    except OSError:
        return folders
    if current in folders:
        folders.remove(current)
        folders.insert(0, current)
    return folders


def model_rules(model_path: str | Path) -> FallbackRules | None:
    """The fallback rules logged beside a model (``extra_files/fallback_rules.json``), if any."""
    path = Path(model_path) / "extra_files" / RULES_FILE
    if not path.is_file():
        return None
    try:
        return FallbackRules.read(path)
    except RulesError:
        log.exception("ignoring the fallback rules beside the model")
        return None


def cached_rules(settings: Settings, params: Params) -> FallbackRules | None:
    """The rules beside the newest cached copy that has them, also when its model cannot load:
    only a copy of this service's lineage (or one without a lineage record), whose rules score
    a row of this service's request schema."""
    for folder in cached_copies(settings):
        try:
            meta = json.loads((folder / _META).read_text())
            record = ChampionInfo.from_tags(
                meta["record"], version=meta["version"], run_id=meta["run_id"]
            )
            model_path = meta["model_path"]
        except (OSError, ValueError, KeyError, LookupError):
            continue
        refusal = record_refusal(settings, params, record)
        if refusal is not None and refusal.check == "lineage":
            continue  # another data set's points table (a feature-code change leaves it valid)
        rules = model_rules(model_path)
        if rules is None:
            continue
        why = probe(params, str(record.version), rules, None)
        if why is None:
            return rules
        log.warning("ignoring the fallback rules of the cached copy %s: %s", folder.name, why)
    return None


def prior_rate(settings: Settings, params: Params) -> float | None:
    """The training split's churn rate, when the service can read the project's data."""
    path = DataLayout(settings.data_dir).split("train")
    try:
        import pandas as pd

        labels = pd.read_parquet(path, columns=[params.dataset.label_column])
    except Exception:
        return None
    if labels.empty:
        return None
    return float(label_vector(labels, params.dataset).mean())


def prior_rule(settings: Settings, params: Params) -> FallbackRules:
    """The prior-rate rule: every customer scores the base churn rate (``UNKNOWN_PRIOR`` when
    the service cannot read the training split), at the Bayes threshold of the costs."""
    costs = params.train.costs
    rate = prior_rate(settings, params)
    threshold = costs.false_positive / (costs.false_positive + costs.false_negative)
    return FallbackRules.prior(UNKNOWN_PRIOR if rate is None else rate, threshold)


def rules_model(
    settings: Settings, params: Params, reason: str, rules: FallbackRules | None = None
) -> ServedModel:
    """The fallback rules as the served model: the learned ``rules`` when given, else the
    prior-rate rule. The reason says which, for ``/ready`` and the log."""
    scorer = rules if rules is not None else prior_rule(settings, params)
    return ServedModel(
        name=settings.model_name,
        version=FALLBACK_VERSION,
        source="rules",
        threshold=scorer.decision_threshold,
        scorer=scorer,
        degraded_reason=f"{reason}; serving the {scorer.summary()}",
        alias=settings.served_alias,
        rules=scorer,
    )


def unservable_model(settings: Settings, reason: str, refused: Refusal | None) -> ServedModel:
    """Nothing this service can run: ``/predict`` answers 503 with ``reason``, ``/ready`` says
    ``unservable`` (``source`` ``none``)."""
    return ServedModel(
        name=settings.model_name,
        version=UNSERVABLE_VERSION,
        source="none",
        threshold=1.0,
        scorer=Unservable(reason),
        degraded_reason=reason,
        alias=settings.served_alias,
        refused=refused,
    )


def load_initial(settings: Settings, params: Params) -> ServedModel:
    """Start-up: the registry's champion, else the cached copy, else the rules. Never raises.

    The registry gets ``settings.registry_timeout_seconds`` to name the champion and
    ``LOAD_TIMEOUT_FACTOR`` times that to deliver it; a store that hangs (or retries a closed
    port) does not keep the service from starting.

    A champion this service cannot run (:class:`NotRunnable`) is refused with a WARNING and
    named on the returned model (``refused``); then the cached copy of this lineage, else its
    rules; without either, nothing: ``/predict`` answers 503 with the reason (the prior-rate
    rule would answer every customer alike while the registry names a model that cannot run).
    """
    timeout = settings.registry_timeout_seconds
    refused: Refusal | None = None
    try:
        champion = with_timeout(champion_record, timeout, settings)
        return with_timeout(
            load_from_registry, LOAD_TIMEOUT_FACTOR * timeout, settings, params, champion
        )
    except NotRunnable as exc:
        refused = exc.refusal
        reason = f"the champion is not served: {refused.reason}"
    except TimeoutError as exc:
        reason = f"registry did not answer in time ({exc})"
    except RegistryUnavailable as exc:
        reason = f"registry unavailable ({exc})"
    except Exception as exc:  # a broken model must not stop the service either
        reason = f"champion failed to load ({type(exc).__name__}: {exc})"
    log.warning("%s; trying the cached champion", reason)
    cached = load_from_cache(settings, params, reason)
    if cached is not None:
        return replace(cached, refused=refused)
    rules = cached_rules(settings, params)
    if refused is not None and rules is None:
        model = unservable_model(
            settings,
            f"{reason}; no cached copy or fallback rules of this lineage: /predict answers 503",
            refused,
        )
        log.warning("nothing this service can run: %s", model.degraded_reason)
        return model
    model = rules_model(settings, params, reason + "; no cached champion", rules)
    log.warning("no cached champion either: %s", model.degraded_reason)
    return replace(model, refused=refused)


def with_timeout(fn: Callable[..., T], timeout: float, *args: Any) -> T:
    """``fn(*args)`` in a daemon thread, giving up after ``timeout`` seconds.

    A daemon thread (not an executor) because a registry client stuck in its retries must not
    keep the process from exiting either.

    Raises:
        TimeoutError: when ``fn`` did not return in time (it keeps running, abandoned).
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"timeout-{fn.__name__}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{fn.__name__} did not finish within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _served(
    settings: Settings,
    params: Params,
    pipeline: Any,
    record: ChampionInfo,
    source: Source,
    reason: str | None,
    rules: FallbackRules | None,
) -> ServedModel:
    version = str(record.version)
    try:
        scorer = serving_scorer(pipeline, params.dataset)
        why = probe(params, version, scorer, rules)
    except Exception as exc:  # the scorer cannot even be built for this schema
        why = f"v{version}: no scorer for this service's requests ({type(exc).__name__}: {exc})"
    if why is not None:
        raise NotRunnable(Refusal(version, "probe", why, record.run_id))
    # Measured here, on a probe row, so that /version and /ready say what one request costs.
    ms = round(one_row_ms(scorer, probe_columns(params.dataset, n=1), repeats=50), 4)
    slow = None
    if scorer.kind != "compiled":
        slow = f"{getattr(scorer, 'reason', '')} ({scorer.kind}, one row {ms:.3f} ms)"
        by = "the plain pipeline" if scorer.kind == "pipeline" else "the model's own predict_proba"
        log.warning(
            "v%s is served by %s, not the compiled scorer (slower): %s", record.version, by, slow
        )
    return ServedModel(
        name=settings.model_name,
        version=str(record.version),
        source=source,
        threshold=record.decision_threshold,
        scorer=scorer,
        record=record,
        degraded_reason=reason,
        alias=settings.served_alias,
        slow_scorer=slow,
        rules=rules,
        one_row_ms=ms,
    )


def _cache_dir(settings: Settings) -> Path:
    """The last good copies of the served alias: another alias never replaces the champion's."""
    if settings.served_alias == registry.CHAMPION:
        return settings.model_cache_dir / settings.model_name
    return settings.model_cache_dir / f"{settings.model_name}@{settings.served_alias}"


def _point_cache_at(cache: Path, target: Path) -> None:
    """Atomically make ``target`` the cached champion, then prune older copies."""
    tmp = cache / f".current-{uuid.uuid4().hex}"
    tmp.write_text(target.name)
    tmp.replace(cache / "current")
    folders = sorted(
        (p for p in cache.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in folders[_KEEP_CACHED:]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
