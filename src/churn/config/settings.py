"""The one typed settings object: infrastructure configuration from the environment and ``.env``."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.config.identity import identity

log = logging.getLogger(__name__)

# Values that say "fill me in", compared with case, spaces and punctuation removed
# ("CHANGE_ME", " change-me " and "changeme" are one placeholder).
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "changethis",
        "secret",
        "password",
        "placeholder",
        "dev",
        "development",
        "test",
        "default",
        "example",
        "apikey",
        "key",
        "todo",
        "xxx",
        "none",
        "null",
    }
)
MIN_SECRET_LENGTH = 32  # characters; `python -c "import secrets; print(secrets.token_urlsafe(32))"`
SECRETS = ("api_key", "id_hash_key")
# CHURN_* variables that other parts read, not Settings: the test suite (tests/, .ci/run) and the
# pipeline image's entrypoint (deploy/pipeline-entrypoint.sh).
OTHER_VARIABLES = frozenset({"CHURN_REAL_DATA", "CHURN_TEST_DATABASE_URL", "CHURN_DVC_REMOTE_URL"})
_warned: set[str] = set()


def lineage_name(params_path: Path) -> str | None:
    """The data set's lineage name (``dataset.name`` in ``params.yaml``), or None when unset.

    The one place the registered model's name is decided (``Settings.model_name``): training,
    the gate, the CLI, monitoring and the service all read it there, so each data set has its
    own registered model, champion, monitoring project and reports. Precedence: ``dataset.name``,
    else ``CHURN_MODEL_NAME``, else the identity block's ``model_name`` (``churn``). A file that
    is missing or does not parse gives None here: ``load_params`` reports it where it is read.
    """
    import yaml

    try:
        with params_path.open() as fh:
            raw = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return None
    dataset = raw.get("dataset") if isinstance(raw, dict) else None
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return name if isinstance(name, str) and name else None


class Settings(BaseSettings):
    """Infrastructure settings with safe local defaults.

    Every field can be set as ``CHURN_<FIELD>`` in the environment or in ``.env``; the tracking URI
    also honours MLflow's own ``MLFLOW_TRACKING_URI``. ML parameters live in ``params.yaml``.
    """

    # populate_by_name: ``get_settings(tracking_uri=...)`` works as well as the aliases.
    model_config = SettingsConfigDict(
        env_prefix="CHURN_", env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    environment: Literal["development", "test", "production"] = "development"
    project_dir: Path = Field(default_factory=Path.cwd)
    params_path: Path = Field(
        Path("params.yaml"), description="The ML parameters; relative paths are in project_dir."
    )
    tracking_uri: str = Field(
        "",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_TRACKING_URI"),
        description="MLflow tracking and registry URI; default: SQLite under <project>/mlruns.",
    )
    # The names' defaults: the identity block (pyproject.toml, read by churn.config.identity).
    experiment_name: str = Field(
        default_factory=lambda: identity().training_name,
        description="MLflow experiment of the training runs; default: the training flow's name.",
    )
    model_name: str = Field(
        default_factory=lambda: identity().model_name,
        description="The registered model in MLflow's registry: the lineage's name. params.yaml's "
        "`dataset.name` sets it per data set (it wins); this variable names the data sets that "
        "set none; default: the identity block's.",
    )
    dvc_push: bool = True
    git_commit: str | None = Field(
        None, description="Commit to record when the code is not in a git checkout (e.g. images)."
    )

    # Serving (serving/): secrets are required outside development, see serving_secrets().
    api_key: SecretStr | None = Field(
        None,
        description="Value of the X-API-Key header; optional in development, needed for /admin.",
    )
    id_hash_key: SecretStr | None = Field(
        None, description="HMAC key that hashes customer ids before they reach the prediction log."
    )
    max_records: int = Field(1000, ge=1, description="Most records one /predict request may carry.")
    predict_route: Literal["direct", "fastapi"] = Field(
        "direct",
        description="Which /predict route serves: `direct` (the hand-written ASGI route, kept "
        "while it earns >= 1.25x, docs/architecture.md) or `fastapi` (the idiomatic route: "
        "declared body, dependencies, response_model). Both give the same answers.",
    )
    port: int = Field(
        8000,
        ge=1,
        le=65535,
        # The platforms' own variables first: where one is set, the platform sends its traffic
        # there (Vertex AI's AIP_HTTP_PORT; SageMaker's SAGEMAKER_BIND_TO_PORT in a pipeline).
        validation_alias=AliasChoices("AIP_HTTP_PORT", "SAGEMAKER_BIND_TO_PORT", "CHURN_PORT"),
        description="Port `churn serve` listens on (its --port wins); Vertex AI's AIP_HTTP_PORT "
        "and SageMaker's SAGEMAKER_BIND_TO_PORT win over CHURN_PORT; the image's `serve` "
        "command (SageMaker's) defaults it to 8080.",
    )
    serving_contracts: str = Field(
        "",
        description="Cloud ML platform contracts served beside /predict, comma-separated: "
        "`sagemaker` (/ping, /invocations), `vertex` (AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE), `oip` "
        "(the Open Inference Protocol V2 of KServe, Seldon MLServer and Triton: /v2/...); "
        "default none (docs/cloud.md).",
    )
    max_body_bytes: int | None = Field(
        None, ge=1024, description="Largest /predict body (413 above it); default 4 KiB per record."
    )
    reload_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="How often serving polls the registry for a new champion; 0 = never.",
    )
    registry_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="How long serving waits for the registry to name the champion before using a "
        "fallback (downloading and loading the model gets 4x as long).",
    )
    prediction_retention_days: int = Field(
        90, ge=1, description="Predictions older than this are deleted by `make retention`."
    )
    prediction_log_url: str = Field(
        "", description="SQLAlchemy URL of the prediction log; default SQLite under data/."
    )
    prediction_journal_dir: Path | None = Field(
        None,
        description="Local folder where acknowledged predictions wait for the prediction log's "
        "database (replayed at the next start); default: beside a SQLite log, else "
        "./prediction-journal. Relative paths are in project_dir.",
    )
    prediction_log_max_queued_rows: int = Field(
        100_000,
        ge=1000,
        description="Rows waiting in memory for the journal above which /predict answers 503.",
    )
    prediction_journal_max_rows: int = Field(
        2_000_000,
        ge=10_000,
        description="Rows the prediction journal may hold (about 0.5 KB each on disk with the "
        "default data set) while the store does not take them; past it /predict answers 503 "
        "(acknowledged rows are kept, new ones refused).",
    )
    served_alias: str = Field(
        "champion",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Registry alias the service follows: the champion, or the challenger for the "
        "continuous-training job's smoke test (`churn check-challenger`).",
    )
    model_cache_dir: Path = Field(
        Path(".serving-cache"),
        description="Last good local copies of the champion; relative paths are in project_dir.",
    )

    # The warm process (pipelines/warm.py, `make warm`).
    warm_idle_timeout_seconds: float = Field(
        1800.0,
        gt=0,
        description="The warm process exits after this long without a command (30 min); it "
        "also exits when its project folder or its environment is gone.",
    )

    # Monitoring (monitoring/, pipelines/monitoring.py).
    monitoring_experiment_name: str = Field(
        default_factory=lambda: identity().monitoring_name,
        description="MLflow experiment of the monitoring runs; default: the monitoring flow's "
        "name.",
    )
    labels_url: str = Field(
        "", description="SQLAlchemy URL of the labels table; default: the prediction log's."
    )
    reports_dir: Path = Field(
        Path("reports"),
        description="Where monitoring writes HTML and JSON reports; relative paths are in "
        "project_dir.",
    )
    evidently_workspace: Path = Field(
        Path("evidently-workspace"),
        description="Evidently workspace holding one snapshot per monitoring run (the dashboard "
        "over time, `make ui` :8001); relative paths are in project_dir.",
    )
    service_url: str | None = Field(
        None,
        description="Base URL of the prediction service (http://api:8000); each monitoring run "
        "records its /predict latency and CPU cost per 1,000 predictions from its /metrics.",
    )
    # The dask engine (params.yaml `engine.kind: dask`, churn.engine).
    dask_scheduler: str | None = Field(
        None,
        description="Address of a running Dask scheduler (tcp://host:8786); unset: the dask "
        "engine starts a LocalCluster as params.yaml's `engine` block says.",
    )
    training_deployment: str | None = Field(
        None,
        description="Prefect deployment ('flow/deployment') a drift alarm runs; unset: a subflow.",
    )
    training_schedule: str = Field(
        "0 3 * * 1", description="Cron of the training deployment (make deployments): weekly."
    )
    monitoring_schedule: str = Field(
        "0 * * * *", description="Cron of the monitoring deployment (make deployments): hourly."
    )

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Settings:
        """Each location has one name; an unset one gets its default inside the project."""
        root = self.project_dir.resolve()
        resolved: dict[str, object] = {
            "project_dir": root,
            "params_path": root / self.params_path,
            "model_cache_dir": root / self.model_cache_dir,
            "reports_dir": root / self.reports_dir,
            "evidently_workspace": root / self.evidently_workspace,
            "prediction_journal_dir": self.prediction_journal_dir
            and root / self.prediction_journal_dir,
            "tracking_uri": self.tracking_uri or f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
            "model_name": lineage_name(root / self.params_path) or self.model_name,
        }
        log_url = self.prediction_log_url or (
            f"sqlite:///{root / 'data' / 'predictions' / 'predictions.db'}"
        )
        resolved["prediction_log_url"] = log_url
        resolved["labels_url"] = self.labels_url or log_url
        for name, value in resolved.items():
            object.__setattr__(self, name, value)
        return self

    @model_validator(mode="after")
    def _no_weak_secrets(self) -> Settings:
        """Outside development a key that is set must be strong: the API key guards the admin
        endpoints, and a guessable id-hash key makes the logged customer hashes reversible by
        enumerating ids. The message names the variable and the rule, never the value."""
        if self.environment != "development":
            for name in SECRETS:
                secret = getattr(self, name)
                if secret is None:
                    continue  # required by the service only: see serving_secrets()
                reason = weak_secret(secret.get_secret_value())
                if reason:
                    raise ValueError(
                        f"CHURN_{name.upper()} {reason} (CHURN_ENVIRONMENT={self.environment}); "
                        'generate one: python -c "import secrets; '
                        'print(secrets.token_urlsafe(32))"'
                    )
        return self

    def serving_secrets(self) -> tuple[str | None, bytes]:
        """``(api_key, id_hash_key)`` for the service; refuses to start without them outside dev.

        Only serving needs these secrets, so a training job in production does not have to carry
        them: the check runs when the service starts, not whenever settings are read. In
        development a missing hash key falls back to a fixed, documented development key.

        Raises:
            ValueError: outside development, when either secret is missing.
        """
        api_key = self.api_key.get_secret_value() if self.api_key else None
        hash_key = self.id_hash_key.get_secret_value() if self.id_hash_key else None
        if self.environment != "development":
            missing = [
                f"CHURN_{n.upper()}"
                for n, v in (("api_key", api_key), ("id_hash_key", hash_key))
                if not v
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set outside development")
        return api_key, (hash_key or "churn-development-only").encode()

    @property
    def tracking_is_local(self) -> bool:
        """True when no tracking server is configured: the project's own SQLite store."""
        return self.tracking_uri == f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def mlruns_dir(self) -> Path:
        """Local MLflow state (database and artefacts) when no tracking server is configured."""
        return self.project_dir / "mlruns"

    @property
    def artifact_location(self) -> str | None:
        """Where a new experiment stores artefacts; None lets a remote server decide."""
        if not self.tracking_is_local:
            return None
        return (self.mlruns_dir / "artifacts").as_uri()

    @property
    def data_dir(self) -> Path:
        return self.project_dir / "data"


class SettingsError(ValueError):
    """Invalid settings: each field and the rule it breaks, never the value given."""


def weak_secret(value: str) -> str | None:
    """Why ``value`` is not acceptable as a key outside development, or None."""
    if "".join(c for c in value.lower() if c.isalnum()) in PLACEHOLDER_SECRETS:
        return "is a placeholder"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    return None


def unknown_variables(variables: Mapping[str, str | None]) -> dict[str, str | None]:
    """``CHURN_*`` names no setting reads, each with the closest setting's name (or None).

    A misspelt or renamed variable would otherwise be ignored without a word.
    """
    known = {f"CHURN_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES
    known.add("CHURN_TRACKING_URI")  # the tracking URI's own alias
    known.add("CHURN_PORT")  # the port's alias beside the platforms' variables
    return {
        name: next(iter(difflib.get_close_matches(name, sorted(known), n=1)), None)
        for name in variables
        if name.startswith("CHURN_") and name not in known
    }


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (used by tests and the CLI).

    ``CHURN_*`` variables (in the environment or ``.env``) that name no setting are reported once
    per process, at WARNING, with the closest name.
    """
    found = {**dotenv_values(".env"), **os.environ} if Path(".env").is_file() else os.environ
    for name, closest in unknown_variables(found).items():
        if name not in _warned:
            _warned.add(name)
            hint = f"; did you mean {closest}?" if closest else ""
            if closest == "CHURN_ENVIRONMENT":  # the mistake that silently drops every check
                hint += " (this process runs in the environment CHURN_ENVIRONMENT names, "
                hint += "default development: keys are NOT required)"
            log.warning("%s is not a setting and is ignored%s", name, hint)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # pydantic's own message shows every input (secrets and database passwords included).
        raise SettingsError(
            f"the settings (CHURN_* variables, .env) are invalid: {describe_errors(exc)}"
        ) from None


def describe_errors(exc: ValidationError) -> str:
    """Each error's field and rule, never the value given (it may be a secret)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(x) for x in error["loc"])
        if where in Settings.model_fields:
            where = f"CHURN_{where.upper()}"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
