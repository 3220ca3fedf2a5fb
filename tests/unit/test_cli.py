"""The one ``churn`` command line: every stage, service and tool, with clear errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["ingest"],
    ["validate"],
    ["split"],
    ["train"],
    ["evaluate"],
    ["model-info"],
    ["history"],
    ["rollback"],
    ["tag-data"],
    ["pull-data"],
    ["check-challenger"],
    ["promote"],
    ["record-image"],
    ["job-summary"],
    ["serve"],
    ["batch-predict"],
    ["monitor"],
    ["deployments"],
    ["forget"],
    ["retention"],
    ["simulate"],
    ["demo"],
    ["bench", "serve"],
    ["bench", "monitor"],
]


def _run(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="churn")


def _plain(text: str) -> str:
    """Help text without rich's colour codes and box drawing."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_the_top_level_help_lists_every_command():
    result = _run("--help")
    assert result.exit_code == 0
    listed = set(re.findall(r"│ ([a-z-]+) ", _plain(result.output)))
    assert {c[0] for c in COMMANDS} <= listed


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_explains_itself(command):
    result = _run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: churn " + " ".join(command) in _plain(result.output)


def test_a_missing_params_file_is_named_before_anything_runs(tmp_path):
    result = _run("-C", str(tmp_path), "train")
    assert result.exit_code == 2
    assert f"{tmp_path / 'params.yaml'} not found" in result.output


def test_an_invalid_params_key_is_named(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  seed: 42\n", "  seed: forty-two\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    result = _run("-C", str(tmp_path), "validate")
    assert result.exit_code == 2
    assert "is invalid" in result.output and "ingest.generator.seed" in result.output


def test_forget_on_an_empty_project_reports_zero(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = _run("-C", str(tmp_path), "forget", "--customer-id", "x")
    assert result.exit_code == 0, result.output
    assert "erased 0 predictions and 0 labels" in result.output


def test_the_simulator_refuses_an_unknown_drift_and_names_the_choices():
    result = _run("simulate", "--drift", "sideways")
    assert result.exit_code == 2
    assert "'sideways' is not one of" in result.output and "competitor" in result.output


def test_the_simulator_is_bounded():
    assert _run("simulate", "--rows", "0").exit_code == 2  # at least one customer


def test_a_settings_error_names_the_variable_and_never_prints_a_secret(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("CHURN_ENVIRONMENT", "production")
    monkeypatch.setenv("CHURN_API_KEY", "change-me")
    monkeypatch.setenv("CHURN_ID_HASH_KEY", "a-real-secret-Hmac-9f8e7d6c5b4a")
    monkeypatch.setenv("CHURN_PREDICTION_LOG_URL", "postgresql://app:db-Passw0rd@db/app")
    result = _run("-C", str(tmp_path), "serve")
    assert result.exit_code == 2
    assert "CHURN_API_KEY is a placeholder" in result.output
    assert "9f8e7d6c5b4a" not in result.output and "Passw0rd" not in result.output


def test_promote_names_a_missing_version_and_what_lists_them(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = _run("-C", str(tmp_path), "promote", "--version", "7")
    assert result.exit_code == 1
    assert "model 'churn' has no version '7'; `churn history` lists them" in _plain(result.output)


def test_record_image_refuses_a_digest_that_is_not_sha256(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = _run("-C", str(tmp_path), "record-image", "--digest", "latest", "--version", "1")
    assert result.exit_code == 1
    assert "image digest 'latest' is not sha256:<64 lowercase hex digits>" in _plain(result.output)


def test_the_project_comes_from_churn_project_dir_unless_c_names_one(tmp_path, monkeypatch):
    """Images and services set CHURN_PROJECT_DIR; -C still wins on the command line."""
    monkeypatch.setenv("CHURN_PROJECT_DIR", str(tmp_path / "from-env"))
    assert f"{tmp_path / 'from-env' / 'params.yaml'} not found" in _run("validate").output
    other = _run("-C", str(tmp_path / "given"), "validate").output
    assert f"{tmp_path / 'given' / 'params.yaml'} not found" in other


def test_forget_that_matches_nothing_says_the_key_may_be_wrong(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("CHURN_ID_HASH_KEY", "not-the-service-key-0123456789abcdef")
    result = _run("-C", str(tmp_path), "forget", "--customer-id", "7590-VHVEG")
    assert result.exit_code == 0
    text = " ".join(_plain(result.output).split())
    assert "erased 0 predictions and 0 labels" in text
    assert "or CHURN_ID_HASH_KEY is not the key the service hashed ids with" in text
