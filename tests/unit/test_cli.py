"""The one ``churn`` command line: every stage, service and tool, with clear errors."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from churn.config.identity import identity
from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["init-dataset"],
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
    ["screenshots"],
    ["bench", "serve"],
    ["bench", "monitor"],
    ["bench", "scale"],
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


def test_bench_scale_names_an_unknown_engine():
    result = _run("bench", "scale", "--engines", "pandas,spark")
    assert result.exit_code == 2
    assert "unknown engine(s) ['spark']; choose from pandas, dask" in _plain(result.output)


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


def test_forget_without_a_prediction_log_names_the_setting_and_creates_nothing(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = _run("-C", str(tmp_path), "forget", "--customer-id", "x")
    assert result.exit_code == 1
    text = " ".join(_plain(result.output).split())
    assert text.startswith("error: no prediction store at") and "Traceback" not in text
    assert "CHURN_PREDICTION_LOG_URL" in text
    assert not (tmp_path / "data").exists()  # a wrong URL does not become an empty log


def _service_store(project: Path) -> None:
    """The prediction store as the service leaves it after its first start (tables, no rows)."""
    from churn.config.settings import get_settings
    from churn.prediction_store import PredictionStore

    store = PredictionStore.from_settings(get_settings(project_dir=project), create=True)
    store.create_tables()
    store.close()


def test_the_simulator_refuses_an_unknown_drift_and_names_the_choices():
    result = _run("simulate", "--drift", "sideways")
    assert result.exit_code == 2
    assert "'sideways' is not one of" in result.output and "competitor" in result.output


def test_the_simulator_says_in_one_line_when_no_service_answers(tmp_path):
    from tools.fork import free_port

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = _run("-C", str(tmp_path), "simulate", "--url", url, "--rows", "5")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no prediction service answers at {url}: start one with `make serve` (another "
        "terminal), or pass the running one's --url (make simulate PORT=...)"
    ]


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
    assert (
        f"model {identity().model_name!r} has no version '7'; `churn history` lists them"
        in _plain(result.output)
    )


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


def test_init_dataset_writes_params_that_load_and_prints_one_line_per_column(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    data = tmp_path / "data" / "clients.csv"
    data.parent.mkdir()
    rows = [f"{i};{'Oui' if i % 4 == 0 else 'Non'};{i % 3 + 1};{i * 1.5:.1f}" for i in range(40)]
    data.write_text("n;Resilie;Forfait;Montant\n" + "\n".join(r.replace(".", ",") for r in rows))
    result = _run("-C", str(tmp_path), "init-dataset", str(data), "--label", "Resilie")
    assert result.exit_code == 0, result.output
    text = _plain(result.output)
    assert re.search(r"Resilie\s+label\s+text\s+'Oui' = churn\s+minority: 10/40 \(25.0%\)", text)
    assert re.search(r"Forfait\s+categorical\s+integer\s+1, 2, 3", text)
    assert re.search(r"n\s+ignored\s+integer\s+0\.\.39\s+a row number", text)
    from churn.config.params import load_params

    params = load_params(tmp_path / "params.yaml")
    assert params.ingest.path == "data/clients.csv" and params.ingest.sep == ";"
    assert params.ingest.decimal == "," and params.dataset.positive_label == "Oui"
    assert params.dataset.id_column is None and list(params.dataset.numeric) == ["Montant"]


def test_init_dataset_dry_run_leaves_params_unchanged_and_errors_name_the_values(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    data = tmp_path / "c.csv"
    data.write_text("a,b,Churn\n" + "\n".join(f"{i},{i % 2},{i % 3}" for i in range(30)))
    result = _run("-C", str(tmp_path), "init-dataset", str(data), "--label", "Churn")
    assert result.exit_code == 2
    assert "holds 3 distinct value(s)" in result.output and "Traceback" not in result.output
    result = _run("-C", str(tmp_path), "init-dataset", str(data), "--label", "b")
    assert result.exit_code == 2 and "equally often: pass --positive" in result.output
    args = ["init-dataset", str(data), "--label", "b", "--positive", "1", "--dry-run"]
    result = _run("-C", str(tmp_path), *args)
    assert result.exit_code == 0, result.output
    assert "dataset:" in result.output and "--dry-run: params.yaml unchanged" in result.output
    assert (tmp_path / "params.yaml").read_text() == before


def test_a_monotone_entry_for_a_missing_column_fails_train_before_anything_runs(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("Contract: {Month-to-month: 1, Two year: -1}", "Plan: {gold: -1}")
    (tmp_path / "params.yaml").write_text(text)
    started = time.perf_counter()
    result = _run("-C", str(tmp_path), "train")
    assert result.exit_code == 2
    assert "train.monotone.Plan" in result.output and "remove the entry" in result.output
    assert time.perf_counter() - started < 5  # no Prefect, no data stage


def test_forget_that_matches_nothing_says_the_key_may_be_wrong(tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("CHURN_ID_HASH_KEY", "not-the-service-key-0123456789abcdef")
    _service_store(tmp_path)
    result = _run("-C", str(tmp_path), "forget", "--customer-id", "7590-VHVEG")
    assert result.exit_code == 0
    text = " ".join(_plain(result.output).split())
    assert "erased 0 predictions and 0 labels" in text
    assert "or CHURN_ID_HASH_KEY is not the key the service hashed ids with" in text


def test_promote_from_live_says_live_mode_is_off_and_moves_nothing(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = _run("-C", str(tmp_path), "promote", "--from-live")
    assert result.exit_code == 1
    assert "live.mode is off in params.yaml" in _plain(result.output)
    assert "set it to shadow or canary" in _plain(result.output)
    forced = _run("-C", str(tmp_path), "promote", "--from-live", "--force")
    assert forced.exit_code == 2
    assert "--from-live promotes the live challenger" in _plain(forced.output)
