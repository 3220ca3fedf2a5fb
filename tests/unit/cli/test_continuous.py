"""The continuous-training commands (pipelines/cli/continuous.py): promotions and records that
cannot happen say why and move nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from churn.config.identity import identity

ROOT = Path(__file__).resolve().parents[3]


def test_promote_names_a_missing_version_and_what_lists_them(cli, plain, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = cli("-C", str(tmp_path), "promote", "--version", "7")
    assert result.exit_code == 1
    assert (
        f"model {identity().model_name!r} has no version '7'; `churn history` lists them"
        in plain(result.output)
    )


def test_record_image_refuses_a_digest_that_is_not_sha256(cli, plain, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = cli("-C", str(tmp_path), "record-image", "--digest", "latest", "--version", "1")
    assert result.exit_code == 1
    assert "image digest 'latest' is not sha256:<64 lowercase hex digits>" in plain(result.output)


def test_promote_from_live_says_live_mode_is_off_and_moves_nothing(cli, plain, tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    result = cli("-C", str(tmp_path), "promote", "--from-live")
    assert result.exit_code == 1
    assert "live.mode is off in params.yaml" in plain(result.output)
    assert "set it to shadow or canary" in plain(result.output)
    forced = cli("-C", str(tmp_path), "promote", "--from-live", "--force")
    assert forced.exit_code == 2
    assert "--from-live promotes the live challenger" in plain(forced.output)
