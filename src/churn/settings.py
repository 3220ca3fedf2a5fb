"""The one typed settings object: infrastructure configuration read from the environment and ``.env``."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "dev"})


class Settings(BaseSettings):
    """Infrastructure settings with safe local defaults.

    Every field can be set as ``CHURN_<FIELD>`` in the environment or in ``.env``; the tracking URI
    also honours MLflow's own ``MLFLOW_TRACKING_URI``. ML parameters live in ``params.yaml`` instead.
    """

    model_config = SettingsConfigDict(
        env_prefix="CHURN_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "production"] = "development"
    project_dir: Path = Field(default_factory=Path.cwd)
    params_file: Path = Path("params.yaml")
    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_MLFLOW_TRACKING_URI")
    )
    experiment_name: str = "churn-training"
    model_name: str = "churn"
    dvc_push: bool = True
    git_commit: str | None = Field(
        None, description="Commit to record when the code is not in a git checkout (e.g. images)."
    )

    @model_validator(mode="after")
    def _absolute_project_dir(self) -> Settings:
        object.__setattr__(self, "project_dir", self.project_dir.resolve())
        return self

    @cached_property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: the environment's, else a SQLite store inside the project."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def mlruns_dir(self) -> Path:
        """Local MLflow state (database and artefacts) when no tracking server is configured."""
        return self.project_dir / "mlruns"

    @property
    def artifact_location(self) -> str | None:
        """Where a new experiment stores artefacts; None lets a remote server decide."""
        if self.mlflow_tracking_uri:
            return None
        return (self.mlruns_dir / "artifacts").as_uri()

    @property
    def params_path(self) -> Path:
        return self.project_dir / self.params_file

    @property
    def data_dir(self) -> Path:
        return self.project_dir / "data"


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
