"""Training commands (pipelines/cli/training.py): a broken params.yaml fails before any stage."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_a_monotone_entry_for_a_missing_column_fails_train_before_anything_runs(cli, tmp_path):
    text = (ROOT / "params.yaml").read_text()
    text = text.replace("Contract: {Month-to-month: 1, Two year: -1}", "Plan: {gold: -1}")
    (tmp_path / "params.yaml").write_text(text)
    started = time.perf_counter()
    result = cli("-C", str(tmp_path), "train")
    assert result.exit_code == 2
    assert "train.monotone.Plan" in result.output and "remove the entry" in result.output
    assert time.perf_counter() - started < 5  # no Prefect, no data stage


def test_history_on_an_empty_registry_says_there_is_nothing_yet(cli, tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = cli("-C", str(tmp_path), "history")
    assert result.exit_code == 0, result.output
    assert "no versions of 'churn' yet" in result.output and "make train" in result.output
    assert "Traceback" not in result.output
