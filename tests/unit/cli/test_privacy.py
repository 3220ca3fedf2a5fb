"""The privacy commands (pipelines/cli/privacy.py): forget names a missing store or a wrong key."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _service_store(project: Path) -> None:
    """The prediction store as the service leaves it after its first start (tables, no rows)."""
    from churn.config.settings import get_settings
    from churn.prediction_store import PredictionStore

    store = PredictionStore.from_settings(get_settings(project_dir=project), create=True)
    store.create_tables()
    store.close()


def test_forget_without_a_prediction_log_names_the_setting_and_creates_nothing(
    cli, plain, tmp_path
):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = cli("-C", str(tmp_path), "forget", "--customer-id", "x")
    assert result.exit_code == 1
    text = " ".join(plain(result.output).split())
    assert text.startswith("error: no prediction store at") and "Traceback" not in text
    assert "CHURN_PREDICTION_LOG_URL" in text
    assert not (tmp_path / "data").exists()  # a wrong URL does not become an empty log


def test_forget_that_matches_nothing_says_the_key_may_be_wrong(cli, plain, tmp_path, monkeypatch):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("CHURN_ID_HASH_KEY", "not-the-service-key-0123456789abcdef")
    _service_store(tmp_path)
    result = cli("-C", str(tmp_path), "forget", "--customer-id", "7590-VHVEG")
    assert result.exit_code == 0
    text = " ".join(plain(result.output).split())
    assert "erased 0 predictions and 0 labels" in text
    assert "or CHURN_ID_HASH_KEY is not the key the service hashed ids with" in text
