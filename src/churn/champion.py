"""The champion record: what training writes on a model version, and what everything else reads.

Training writes one :class:`ChampionInfo` as the version's tags (``to_tags``); the CLI, the
service's ``/version``, monitoring and the model card read it back (``from_version``). No other
module reads or writes these tags, so a field has one name, one type and one default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.config.feature_store import StoreVersion
from churn.config.layout import DataLayout

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


class ChampionRecordError(LookupError):
    """A model version lacks a field of the record (it was not registered by the training flow)."""


# Field name -> tag name. Unprefixed, so the MLflow UI shows them as they read.
_REQUIRED = (
    "decision_threshold",
    "test_roc_auc",
    "baseline_test_roc_auc",
    "data_version",
    "data_files",
    "git_commit",
    "trained_at",
)
_FLOATS = ("decision_threshold", "test_roc_auc", "baseline_test_roc_auc")


@dataclass(frozen=True)
class ServingCheck:
    """The training run's check of the serving scorer against the pipeline, on the test split.

    Attributes:
        scorer: ``compiled`` (the numpy replay of features and model), ``predict_proba`` (the
            numpy replay of the features, then the model's own ``predict_proba``: its kind
            declares no compiled replay) or ``pipeline`` (the replay does not support this
            pipeline, so serving calls the scikit-learn pipeline: correct, slower).
        max_abs_diff: the largest difference between the replay's probabilities and the
            pipeline's (None when no replay could run).
        rows: test rows compared.
        reason: why the model is not replayed (``predict_proba``, ``pipeline``), else empty.
        one_row_ms: the median one-row time of that scorer, measured at the check (None on
            versions registered before it was recorded, and for ``pipeline``).
    """

    scorer: str
    max_abs_diff: float | None
    rows: int
    reason: str = ""
    one_row_ms: float | None = None

    @property
    def compiled(self) -> bool:
        return self.scorer == "compiled"

    @property
    def replayed(self) -> bool:
        """The numpy replay serves (the model itself compiled or by its ``predict_proba``)."""
        return self.scorer in ("compiled", "predict_proba")


@dataclass(frozen=True)
class Lineage:
    """The data set a version was trained on: what a model can be compared with and served for.

    Two versions share a lineage when they share its ``name`` (the registered model) and its
    ``fingerprint`` (the schema's); a model is only ever compared with, or swapped for, a model of
    the same lineage. Built by :func:`churn.data.lineage.lineage_of`.

    Attributes:
        name: the lineage's name: the registered model its versions go to.
        fingerprint: 12 hex digits of the SHA-256 of ``schema`` (canonical JSON).
        schema: ``{"id", "label", "positive", "time", "columns": {name: kind}}``; kind is
            ``numeric``, ``integer`` or ``categorical``. Levels and ranges are not part of it:
            new data may add a level without starting a new lineage.
    """

    name: str
    fingerprint: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class SplitIdentity:
    """How a version's train / valid / test rows were chosen (``churn.data.split``).

    Two versions' test splits hold the same rows only when their identities are equal and the
    data are the same; otherwise a comparison must use rows held out from both.

    Attributes:
        method: ``stratified`` or ``hash`` (``auto`` resolved by the engine).
        seed: ``split.seed``.
        valid_size: ``split.valid_size``.
        test_size: ``split.test_size``.
        key: the column that keys a row (the id column or the row key).
        time_column: the time column when the split is by time, else None.
    """

    method: str
    seed: int
    valid_size: float
    test_size: float
    key: str
    time_column: str | None = None


@dataclass(frozen=True)
class ChampionInfo:
    """One registered version's facts, as the training run recorded them.

    Attributes:
        decision_threshold: probability at or above which a customer is flagged (cost-based).
        test_roc_auc: ROC AUC on the held-out test split.
        baseline_test_roc_auc: the logistic-regression baseline's ROC AUC on the same split.
        data_version: short hash of every data file the run used (``versioning.data_version``).
        data_files: ``{path: DVC md5}`` of those files, so any of them can be read back.
        git_commit: the code's commit (``-dirty`` when tracked files had changes).
        trained_at: ISO time the run was recorded (UTC).
        serving_check: the training-time check of the serving scorer; None on versions
            registered before it existed.
        rules_test_roc_auc: the fallback rules' ROC AUC on the same test split
            (``churn.scoring.fallback_rules``); None on versions registered before they existed, or
            when the test split holds one class.
        lineage: the data set's identity (:class:`Lineage`); None on versions registered
            before it was recorded.
        feature_code: the feature code's version the model was fitted with
            (``churn.features.version.FEATURE_CODE_VERSION``); None on older versions.
        split: how the run split its rows (:class:`SplitIdentity`); None on older versions.
        feature_store: the feature store the training rows were joined to, as of each row's
            label time (its feature views' versions and its data version); None when the run
            did not use the store (``feature_store.enabled: false``, the default).
        version: registry version (None until registered).
        run_id: the MLflow run that trained it.
    """

    decision_threshold: float
    test_roc_auc: float
    baseline_test_roc_auc: float
    data_version: str
    data_files: dict[str, str]
    git_commit: str
    trained_at: str
    serving_check: ServingCheck | None = None
    rules_test_roc_auc: float | None = None
    lineage: Lineage | None = None
    feature_code: int | None = None
    split: SplitIdentity | None = None
    feature_store: StoreVersion | None = None
    version: str | None = None
    run_id: str | None = None

    def to_tags(self) -> dict[str, str]:
        """The version's tags (strings): what ``from_tags`` reads back."""
        tags = {
            "decision_threshold": f"{self.decision_threshold:.6f}",
            "test_roc_auc": f"{self.test_roc_auc:.6f}",
            "baseline_test_roc_auc": f"{self.baseline_test_roc_auc:.6f}",
            "data_version": self.data_version,
            "data_files": json.dumps(self.data_files, sort_keys=True),
            "git_commit": self.git_commit,
            "trained_at": self.trained_at,
        }
        if self.serving_check is not None:
            tags["serving_check"] = json.dumps(asdict(self.serving_check))
        if self.rules_test_roc_auc is not None:
            tags["rules_test_roc_auc"] = f"{self.rules_test_roc_auc:.6f}"
        if self.lineage is not None:
            tags["lineage"] = json.dumps(asdict(self.lineage), sort_keys=True)
        if self.feature_code is not None:
            tags["feature_code"] = str(self.feature_code)
        if self.split is not None:
            tags["split"] = json.dumps(asdict(self.split), sort_keys=True)
        if self.feature_store is not None:
            tags["feature_store"] = json.dumps(asdict(self.feature_store), sort_keys=True)
        return tags

    @classmethod
    def from_tags(
        cls, tags: Mapping[str, str], *, version: str | None = None, run_id: str | None = None
    ) -> ChampionInfo:
        """The record written by ``to_tags``.

        Raises:
            ChampionRecordError: naming the first missing or unreadable tag.
        """
        where = f"model version {version}" if version else "the model version"
        values: dict[str, Any] = {}
        for name in _REQUIRED:
            if name not in tags:
                raise ChampionRecordError(
                    f"{where} has no {name!r} tag: it was not registered by the training flow "
                    "(register one with `make train`)"
                )
            try:
                raw = tags[name]
                if name in _FLOATS:
                    values[name] = float(raw)
                elif name == "data_files":
                    values[name] = dict(json.loads(raw))
                else:
                    values[name] = raw
            except ValueError as exc:
                raise ChampionRecordError(f"{where} has an unreadable {name!r} tag: {exc}") from exc
        check = tags.get("serving_check")
        rules_auc = tags.get("rules_test_roc_auc")
        try:
            rules_test_roc_auc = float(rules_auc) if rules_auc else None
        except ValueError as exc:
            raise ChampionRecordError(
                f"{where} has an unreadable 'rules_test_roc_auc' tag: {exc}"
            ) from exc
        try:
            lineage = Lineage(**json.loads(tags["lineage"])) if "lineage" in tags else None
            feature_code = int(tags["feature_code"]) if "feature_code" in tags else None
            split = SplitIdentity(**json.loads(tags["split"])) if "split" in tags else None
            store = tags.get("feature_store")
            feature_store = StoreVersion(**json.loads(store)) if store else None
        except (TypeError, ValueError) as exc:
            raise ChampionRecordError(
                f"{where} has an unreadable lineage, split or feature_store tag: {exc}"
            ) from exc
        return cls(
            **values,
            serving_check=ServingCheck(**json.loads(check)) if check else None,
            rules_test_roc_auc=rules_test_roc_auc,
            lineage=lineage,
            feature_code=feature_code,
            split=split,
            feature_store=feature_store,
            version=version,
            run_id=run_id,
        )

    @classmethod
    def from_version(cls, model_version: ModelVersion) -> ChampionInfo:
        """The record on an MLflow ``ModelVersion``."""
        return cls.from_tags(
            dict(model_version.tags or {}),
            version=str(model_version.version),
            run_id=None if model_version.run_id is None else str(model_version.run_id),
        )

    def split_md5(self, name: str) -> str:
        """DVC md5 of the ``train`` / ``valid`` / ``test`` split this version was trained on.

        Raises:
            ChampionRecordError: when the run did not record that split.
        """
        path = DataLayout(Path("data")).split(name).as_posix()
        try:
            return self.data_files[path]
        except KeyError:
            raise ChampionRecordError(
                f"model version {self.version} recorded no data file {path}"
            ) from None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``churn model-info --json``, ``/version``)."""
        return asdict(self)
