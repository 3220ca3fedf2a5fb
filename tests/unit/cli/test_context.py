"""What every command shares (pipelines/cli/context.py): the project, settings and params.yaml,
or one clear error naming the file, key or variable."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_missing_params_file_is_named_before_anything_runs(cli, tmp_path):
    result = cli("-C", str(tmp_path), "train")
    assert result.exit_code == 2
    assert f"{tmp_path / 'params.yaml'} not found" in result.output


def test_an_invalid_params_key_is_named(cli, tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  seed: 42\n", "  seed: forty-two\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    result = cli("-C", str(tmp_path), "validate")
    assert result.exit_code == 2
    assert "is invalid" in result.output and "ingest.generator.seed" in result.output


def test_a_settings_error_names_the_variable_and_never_prints_a_secret(cli, tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("CHURN_ENVIRONMENT", "production")
    monkeypatch.setenv("CHURN_API_KEY", "change-me")
    monkeypatch.setenv("CHURN_ID_HASH_KEY", "a-real-secret-Hmac-9f8e7d6c5b4a")
    monkeypatch.setenv("CHURN_PREDICTION_LOG_URL", "postgresql://app:db-Passw0rd@db/app")
    result = cli("-C", str(tmp_path), "serve")
    assert result.exit_code == 2
    assert "CHURN_API_KEY is a placeholder" in result.output
    assert "9f8e7d6c5b4a" not in result.output and "Passw0rd" not in result.output


def test_the_project_comes_from_churn_project_dir_unless_c_names_one(cli, tmp_path, monkeypatch):
    """Images and services set CHURN_PROJECT_DIR; -C still wins on the command line."""
    monkeypatch.setenv("CHURN_PROJECT_DIR", str(tmp_path / "from-env"))
    assert f"{tmp_path / 'from-env' / 'params.yaml'} not found" in cli("validate").output
    other = cli("-C", str(tmp_path / "given"), "validate").output
    assert f"{tmp_path / 'given' / 'params.yaml'} not found" in other


def test_a_fresh_process_prints_no_library_chatter(tmp_path):
    """MLflow's own handler printed "Creating initial MLflow database tables" (and alembic its
    migrations) in its own format, in every new process that opened a new store: `churn` keeps
    MLflow on the project's handler, where INFO chatter is left out and errors stay."""
    import subprocess
    import sys

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "-C", str(tmp_path), "model-info"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (tmp_path / "mlruns" / "mlflow.db").exists()  # the store was created in this run
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model "), lines
