"""Typed view of ``params.yaml``: the ML parameters shared by the code, DVC and the flows."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from churn.config.feature_store import FeatureStoreParams
from churn.config.features import FeatureParams, column_problem

Level = str | int
# A label as the file holds it. bool first, so that YAML `true` stays a boolean (pydantic's lax
# int would turn it into 1); labels are compared as data through ``label_text``.
LabelValue = bool | int | float | str

# The key of a row when the data set has no id column (``dataset.id_column: null``): validation
# adds it (see ``churn.data.contract.row_keys``); it is never a feature and never sent to the
# service.
ROW_KEY = "_row_key"


def label_text(value: object) -> str:
    """A label value as text, so that the file's values and ``params.yaml``'s compare as data.

    ``True``, ``"True"`` and ``"true"`` are one label; so are ``1``, ``1.0`` and ``"1"``.
    Other text is compared as written (stripped; ``VRAI`` is not ``vrai``).
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        number = float(value)  # type: ignore[arg-type]
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def label_texts(labels: pd.Series) -> pd.Series:
    """A label column as comparable text (``label_text`` of each value; missing stays missing)."""
    return labels.map(label_text, na_action="ignore")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorSource(_Strict):
    n_rows: int = Field(7043, gt=0)
    seed: int = 42


class SqlSource(_Strict):
    url: str | None = None
    query: str | None = None


class FeedbackSource(_Strict):
    """Newly labelled traffic appended to the source (the retraining data policy, monitoring/).

    The monitoring flow exports labelled predictions to ``path`` before it retrains; ingestion
    appends the newest ``max_rows`` of them to the source's rows when the file exists. The file is
    not a DVC dependency (it may not exist yet): a retrain re-ingests with ``force_ingest``, and
    the raw snapshot that includes it is versioned by DVC like any other.
    """

    path: str | None = None
    max_rows: int = Field(50_000, gt=0)


class IngestParams(_Strict):
    """Where raw data comes from: the project's generator, a file, a URL or a SQL query.

    ``path`` is one file or a list; each entry may be a glob (``data/part-*.csv``). Several files
    must have the same columns and are read one after the other into one frame. ``sep``,
    ``encoding`` and ``decimal`` apply to CSV files and URLs (``sep: null`` detects the
    separator among ``, ; tab |``); Parquet files carry their own.
    """

    kind: Literal["generator", "file", "url", "sql"] = "generator"
    generator: GeneratorSource = GeneratorSource()
    path: str | list[str] | None = None
    url: str | None = None
    sql: SqlSource = SqlSource()
    sep: str | None = None
    encoding: str = "utf-8"
    decimal: Literal[".", ","] = "."
    feedback: FeedbackSource = FeedbackSource()

    @property
    def paths(self) -> list[str]:
        """``path`` as a list (each entry may still be a glob)."""
        if self.path is None:
            return []
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @model_validator(mode="after")
    def _source_is_complete(self) -> IngestParams:
        if self.kind == "file" and not any(self.paths):
            raise ValueError("ingest.kind is 'file' but ingest.path is empty")
        if self.sep is not None and len(self.sep) != 1:
            raise ValueError(
                f"ingest.sep must be one character (or null to detect), got {self.sep!r}"
            )
        if self.sep is not None and self.sep == self.decimal:
            raise ValueError("ingest.sep and ingest.decimal are the same character")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"ingest.encoding {self.encoding!r} is not a known encoding") from None
        if self.kind == "url" and not (self.url and self.url.startswith(("http://", "https://"))):
            raise ValueError("ingest.kind is 'url' but ingest.url is not an http(s) URL")
        if self.kind == "sql" and not (self.sql.url and self.sql.query):
            raise ValueError("ingest.kind is 'sql' but ingest.sql.url or ingest.sql.query is empty")
        return self


class NumericColumn(_Strict):
    min: float | None = None
    max: float | None = None
    integer: bool = False
    nullable: bool = False
    fill_value: float | None = None  # imputation value; the training median when unset


# A lineage's name: an MLflow registered model's, an Evidently project's and a folder's.
LINEAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class DatasetConfig(_Strict):
    """Column roles and the data contract of one churn data set.

    ``id_column: null`` declares a data set without customer ids: validation keys each row by
    ``ROW_KEY`` instead, and the service logs predictions without an id. ``id_type`` is the
    id's type in the file (``string`` or ``integer``), which the API's id field follows.
    ``ignore_columns`` are columns of the file that are never features (a row number, an
    internal code, a column that leaks the label): validation leaves them out of the validated
    rows.

    ``name`` is the data set's lineage: the registered model its versions go to (``churn
    init-dataset`` writes one derived from the file). Unset, the project's model name
    (``CHURN_MODEL_NAME``, else the identity block's) is used: see
    ``churn.config.settings.lineage_name``.
    """

    name: str | None = Field(None, pattern=LINEAGE_NAME_PATTERN)
    id_column: str | None
    # The id's type as the file has it (``churn init-dataset`` writes ``integer`` when the id
    # column holds integers): the API takes an integer id as a JSON integer or a string of
    # digits, and hashes both the same way. ``string`` (the default) takes text.
    id_type: Literal["string", "integer"] = "string"
    label_column: str
    positive_label: LabelValue
    negative_label: LabelValue
    time_column: str | None = None
    pii_columns: list[str] = []
    ignore_columns: list[str] = []
    numeric: dict[str, NumericColumn]
    categorical: dict[str, list[Level]]

    @property
    def feature_columns(self) -> list[str]:
        """Model inputs in a fixed order: numeric, then categorical. Never the id or the label."""
        return [*self.numeric, *self.categorical]

    @property
    def key_column(self) -> str:
        """The column that keys a row: the id column, else ``ROW_KEY`` (added by validation)."""
        return self.id_column or ROW_KEY

    @model_validator(mode="after")
    def _roles_are_disjoint(self) -> DatasetConfig:
        features = set(self.feature_columns)
        if len(features) != len(self.numeric) + len(self.categorical):
            raise ValueError("a column is listed as both numeric and categorical")
        for role in ("id_column", "label_column", "time_column"):
            name = getattr(self, role)
            if name is not None and name in features:
                raise ValueError(f"dataset.{role} {name!r} must not also be a feature column")
        for name in self.pii_columns:
            if name in features:
                raise ValueError(f"PII column {name!r} must not be a feature column")
        for name in self.ignore_columns:
            if name in features or name in (self.id_column, self.label_column, self.time_column):
                raise ValueError(
                    f"dataset.ignore_columns lists {name!r}, which has a role (feature, id, "
                    "label or time): remove it from one of the two"
                )
        if self.id_type == "integer" and self.id_column is None:
            raise ValueError("dataset.id_type is 'integer' but there is no id_column: remove it")
        if label_text(self.positive_label) == label_text(self.negative_label):
            raise ValueError("dataset.positive_label and dataset.negative_label are equal")
        return self


class ValidateParams(_Strict):
    max_quarantine_share: float = Field(0.05, ge=0, le=1)


class SplitParams(_Strict):
    """How validated rows are split.

    ``method``: ``stratified`` (a seeded, label-stratified shuffle of the whole frame), ``hash``
    (each row's split is decided by a keyed hash of its id or row key: no global shuffle, the same
    rows on either engine) or ``auto`` (stratified on the pandas engine, hash on the dask engine).
    """

    seed: int = 42
    valid_size: float = Field(0.15, gt=0, lt=0.5)
    test_size: float = Field(0.2, gt=0, lt=0.5)
    method: Literal["auto", "stratified", "hash"] = "auto"


class SearchParams(_Strict):
    n_trials: int = Field(4, ge=0, le=200)
    # The random forest's own trial count (null: ``n_trials``); its fits cost more per trial.
    random_forest_trials: int | None = Field(1, ge=0, le=200)


# The baseline candidate: always trained, never selected, what the selected model must beat.
# The candidates themselves (names, blocks, titles, how they are fitted) are declared in
# ``churn.models``, which validates ``train.candidates`` and each block against its table
# wherever a command loads this file.
BASELINE = "logistic"


class SelectParams(_Strict):
    """How the model that goes to the gate is chosen among the candidates (never on test).

    ``metric`` is measured on the validation split: ``valid_roc_auc`` and ``valid_pr_auc`` are
    maximised, ``valid_cost`` (``train.costs`` per validation row at each candidate's own cost
    threshold) is minimised. The logistic regression is the baseline, never the selected model.

    Among the challengers within ``tolerance`` of the best figure, the first one listed in
    ``prefer`` wins: a difference that small is within the validation split's noise, and the
    earlier models are smaller, faster to score and explained by exact TreeSHAP.
    """

    metric: Literal["valid_roc_auc", "valid_pr_auc", "valid_cost"] = "valid_roc_auc"
    tolerance: float = Field(0.005, ge=0)
    prefer: list[str] = ["xgboost", "random_forest"]


class CostParams(_Strict):
    false_negative: float = Field(5.0, gt=0)
    false_positive: float = Field(1.0, gt=0)


class TrainParams(BaseModel):
    """``train``: the shared training settings, and one block per candidate.

    A candidate's block (``train.xgboost``, ``train.random_forest``, ``train.baseline``, a
    forker's ``train.<name>``) is kept here as written; its module in ``churn.models``
    declares and validates it (``churn.models.check_params``, which also refuses any other
    unknown key).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    seed: int = 42
    n_jobs: int = Field(1, ge=1)
    # The models trained and compared; ``logistic`` is the baseline (always fitted: the gate
    # needs it), the others compete for the gate by ``select``.
    candidates: list[str] = ["logistic", "random_forest", "xgboost"]
    select: SelectParams = SelectParams()
    search: SearchParams = SearchParams()
    monotone: dict[str, dict[str, int]] = {}
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    costs: CostParams = CostParams()

    @property
    def challengers(self) -> list[str]:
        """The candidates that may go to the gate (every one but the baseline), in order."""
        return [c for c in self.candidates if c != BASELINE]

    @model_validator(mode="after")
    def _has_a_challenger(self) -> TrainParams:
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"train.candidates lists a model twice: {self.candidates}")
        if BASELINE not in self.candidates:
            raise ValueError(
                f"train.candidates must include {BASELINE!r}: the logistic regression is the "
                f"baseline the selected model must beat (got {self.candidates})"
            )
        if not self.challengers:
            raise ValueError(
                "train.candidates needs a model besides the logistic-regression baseline "
                "(e.g. xgboost): the baseline is what the selected model must beat"
            )
        return self


class ValueParams(_Strict):
    """Optional economics on top of ``train.costs`` for the business-value figures.

    With both set, contacting a churner is worth ``offer_acceptance x retained_value`` less the
    offer (``train.costs.false_positive``), contacting a customer who stays costs the offer;
    unset, the figures are ``train.costs``' savings against contacting nobody.
    """

    retained_value: float | None = Field(None, gt=0)
    offer_acceptance: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _both_or_neither(self) -> ValueParams:
        if (self.retained_value is None) != (self.offer_acceptance is None):
            raise ValueError(
                "value.retained_value and value.offer_acceptance go together: set both, or "
                "neither (the figures then use train.costs)"
            )
        return self


class FairnessParams(_Strict):
    """Per-segment quality (``churn.training.fairness``): at training, in the model card, in
    monitoring.

    ``segments`` are categorical columns of the dataset block. Segments with fewer than
    ``min_rows`` rows (or only one class) are reported but left out of the gaps. With
    ``max_recall_gap`` set, the gate refuses a model whose largest recall gap between two
    levels of one column exceeds it (null: report only).
    """

    segments: list[str] = []
    min_rows: int = Field(30, ge=1)
    max_recall_gap: float | None = Field(None, gt=0, le=1)


class PromoteParams(_Strict):
    min_roc_auc: float = Field(0.70, ge=0, le=1)
    margin: float = Field(0.002, ge=0)


class MonitorWindow(_Strict):
    """Which predictions the monitoring job looks at: the last ``rows``, within ``hours``."""

    rows: int = Field(5000, gt=0)
    hours: float | None = Field(None, gt=0)


class MonitorParams(_Strict):
    """The monitoring job (monitoring/): window, thresholds, cooldown, sampling."""

    window: MonitorWindow = MonitorWindow()
    min_rows: int = Field(500, gt=0)
    min_labelled_rows: int = Field(200, gt=0)
    drift_share: float = Field(0.25, gt=0, le=1)
    num_method: str | None = None
    cat_method: str | None = None
    quality_drop: float = Field(0.05, gt=0, le=1)
    cooldown_hours: float = Field(24.0, ge=0)
    max_current_rows: int = Field(100_000, gt=0)
    max_reference_rows: int = Field(20_000, gt=0)
    current_path: str | None = None  # a Parquet window (file, directory, glob), not the store
    sample_seed: int = 0
    retrain: bool = True


class LiveParams(_Strict):
    """A gate-approved challenger proven on live traffic (``churn.release.live``, docs/serving.md).

    ``mode``: ``off`` (only the champion is loaded), ``shadow`` (the challenger scores every
    request off the request path; logged, never returned) or ``canary`` (``canary_share`` of the
    customers, chosen by the keyed hash of their id, are answered by the challenger).
    ``churn promote --from-live`` promotes the challenger only when both models have
    ``min_labelled_rows`` labelled predictions in the monitoring window and the ``confidence``
    bootstrap interval of the ROC AUC difference (challenger minus champion) lies above 0.
    """

    mode: Literal["off", "shadow", "canary"] = "off"
    canary_share: float = Field(0.1, gt=0, lt=1)
    min_labelled_rows: int = Field(200, gt=0)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    metric: Literal["roc_auc"] = "roc_auc"
    bootstrap: int = Field(1000, ge=100, le=100_000)
    shadow_queue: int = Field(1000, gt=0)

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false: take it as the mode it was meant to be.
        return "off" if value is False else value


# The library's own folder: an engine plug-in is a package of it holding a ``plugin.py``.
_LIBRARY = Path(__file__).resolve().parents[1]


def engine_plugins() -> dict[str, str]:
    """The plug-in engines found beside the library's packages: ``{kind: its plugin module}``.

    A plug-in is a package of ``churn`` with a ``plugin.py`` (its ``ENGINE``, ``churn.engine``);
    the folder is read, nothing is imported, so deleting the package is deleting the plug-in.
    """
    return {
        d.name: f"churn.{d.name}.plugin"
        for d in sorted(_LIBRARY.iterdir())
        if (d / "__init__.py").is_file() and (d / "plugin.py").is_file()
    }


class EngineParams(_Strict):
    """Where the stages run: in this process (pandas) or a plug-in engine (``churn.engine``).

    ``kind`` is ``pandas`` or a plug-in package's name (``engine_plugins``: ``dask``). With
    ``kind: dask`` and no scheduler address (``CHURN_DASK_SCHEDULER``), a ``LocalCluster`` of
    ``workers`` processes, ``threads_per_worker`` threads and ``memory_limit`` each is started
    for the run.
    """

    kind: str = "pandas"
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    partition_rows: int = Field(500_000, gt=0)
    # The few things fitted in one process on the dask engine (the logistic-regression baseline,
    # the fallback rules, the gate's champion comparison, the serving check) use a seeded sample
    # of at most this many rows per split.
    sample_rows: int = Field(200_000, gt=0)
    # How long a worker in XGBoost's distributed training waits for another in one collective
    # operation: past it, a worker that died fails the run instead of hanging it.
    collective_timeout_s: int = Field(300, gt=0)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        known = ["pandas", *engine_plugins()]
        if value not in known:
            raise ValueError(
                f"engine.kind {value!r} is not an engine here; the known ones are {known} "
                "(a plug-in engine is a package of src/churn/ with a plugin.py)"
            )
        return value


class Params(_Strict):
    """Everything in ``params.yaml``."""

    engine: EngineParams = EngineParams()
    ingest: IngestParams = IngestParams()
    dataset: DatasetConfig
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams = SplitParams()
    features: FeatureParams = FeatureParams()
    train: TrainParams = TrainParams()
    promote: PromoteParams = PromoteParams()
    fairness: FairnessParams = FairnessParams()
    value: ValueParams = ValueParams()
    monitor: MonitorParams = MonitorParams()
    live: LiveParams = LiveParams()
    feature_store: FeatureStoreParams = FeatureStoreParams()

    @property
    def split_method(self) -> Literal["stratified", "hash"]:
        """The split method in force: ``split.method``, with ``auto`` resolved by the engine."""
        if self.split.method == "auto":
            return "stratified" if self.engine.kind == "pandas" else "hash"
        return self.split.method

    @model_validator(mode="after")
    def _engine_fits_the_split(self) -> Params:
        # A plug-in engine splits per part, by a keyed hash of each row's id.
        kind = self.engine.kind
        if kind == "pandas":
            return self
        if self.split.method == "stratified":
            raise ValueError(
                f"split.method: stratified needs the whole data set in one process; the {kind} "
                "engine splits by a keyed hash of each row's id: set split.method: hash (or auto)"
            )
        if self.dataset.time_column:
            raise ValueError(
                f"dataset.time_column {self.dataset.time_column!r} asks for a split by time, "
                f"which the {kind} engine does not do (it splits by a keyed hash of each row's "
                "id): set dataset.time_column: null, or engine.kind: pandas"
            )
        return self

    @model_validator(mode="after")
    def _feature_store_has_events(self) -> Params:
        # Only the generated data set has activity events (churn.data.events) for now.
        if self.feature_store.enabled and self.ingest.kind != "generator":
            raise ValueError(
                f"feature_store.enabled needs activity events, which only the generated data set "
                f"has (ingest.kind: generator; here {self.ingest.kind!r}): set "
                "feature_store.enabled: false"
            )
        if self.feature_store.enabled and self.engine.kind != "pandas":
            raise ValueError(
                f"feature_store.enabled joins the training rows on the pandas engine only (here "
                f"engine.kind: {self.engine.kind}): set engine.kind: pandas, or "
                "feature_store.enabled: false"
            )
        if self.feature_store.enabled and self.dataset.id_column is None:
            raise ValueError(
                "feature_store.enabled needs customer ids (the store's entity): set "
                "dataset.id_column, or feature_store.enabled: false"
            )
        return self

    @model_validator(mode="after")
    def _features_use_known_columns(self) -> Params:
        known = set(self.dataset.feature_columns)
        for kind, name, entry in self.features.entries():
            problem = column_problem(kind, name, entry, self.dataset.numeric, known)
            if problem:
                raise ValueError(problem)
            if name in known:
                raise ValueError(
                    f"features.{kind}.{name}: {name!r} is a column of the dataset block; a "
                    "derived feature's name is a new column: rename it"
                )
        categorical = self.dataset.categorical
        for column in self.fairness.segments:
            if column not in categorical:
                raise ValueError(
                    f"fairness.segments names {column!r}, not a categorical column of the "
                    f"dataset block (categorical: {sorted(categorical)}); segments are the "
                    "levels of a categorical column: fix the name or remove it (segments: [])"
                )
        for column, levels in self.train.monotone.items():
            if column not in categorical:
                raise ValueError(
                    f"train.monotone.{column}: {column!r} is not a categorical column of the "
                    f"dataset block (categorical: {sorted(categorical)}); constraints apply to "
                    "the levels of a categorical column: fix the name or remove the entry "
                    "(train.monotone: {})"
                )
            known_levels = {label_text(level) for level in categorical[column]}
            unknown_levels = [level for level in levels if label_text(level) not in known_levels]
            if unknown_levels:
                raise ValueError(
                    f"train.monotone.{column} names levels {unknown_levels} that "
                    f"dataset.categorical.{column} does not list ({categorical[column]}): fix "
                    "the level or remove it"
                )
            bad = {level: sign for level, sign in levels.items() if sign not in (-1, 0, 1)}
            if bad:
                raise ValueError(f"train.monotone.{column}: a sign is +1, -1 or 0, got {bad}")
        return self


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        FileNotFoundError: when the file does not exist.
        pydantic.ValidationError: naming the offending key when a value is invalid.
    """
    with Path(path).open(encoding="utf-8") as fh:  # levels may be any text (init-dataset)
        raw = yaml.safe_load(fh) or {}
    return Params.model_validate(raw)
