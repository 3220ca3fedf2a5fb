"""Erasure of one customer and the retention period, on a real SQLite prediction log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from typer.testing import CliRunner

from churn.settings import get_settings
from monitoring.labels import write_labels
from monitoring.privacy import apply_retention, cli, forget_customer
from serving.predlog import hash_id, make_engine, predictions_table


def _log(settings, rows):
    engine = make_engine(settings.prediction_log_uri)
    predictions_table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            predictions_table.insert(),
            [
                {
                    "logged_at": at,
                    "request_id": "r",
                    "model_version": "1",
                    "customer_hash": h,
                    "features": {"tenure": 1},
                    "churn_probability": 0.5,
                    "churn": True,
                    "latency_ms": 1.0,
                }
                for h, at in rows
            ],
        )
    engine.dispose()


def _hashes(settings):
    engine = make_engine(settings.prediction_log_uri)
    with engine.connect() as conn:
        out = sorted(r[0] for r in conn.execute(sa.select(predictions_table.c.customer_hash)))
    engine.dispose()
    return out


def test_forget_erases_one_customer_everywhere_and_nobody_else(tmp_path):
    settings = get_settings(project_dir=tmp_path)
    _, key = settings.serving_secrets()
    a, b = hash_id(key, "1111-AAAAA"), hash_id(key, "2222-BBBBB")
    now = datetime.now(UTC)
    _log(settings, [(a, now), (a, now), (b, now)])
    write_labels(settings.labels_uri, [a, b], [True, False])

    erased = forget_customer(settings, "1111-AAAAA")
    assert (erased.predictions, erased.labels) == (2, 1)
    assert _hashes(settings) == [b]
    assert forget_customer(settings, "1111-AAAAA").predictions == 0


def test_retention_deletes_only_old_predictions(tmp_path):
    settings = get_settings(project_dir=tmp_path, prediction_retention_days=30)
    _, key = settings.serving_secrets()
    now = datetime.now(UTC)
    old, new = hash_id(key, "old"), hash_id(key, "new")
    _log(settings, [(old, now - timedelta(days=31)), (new, now - timedelta(days=29))])
    assert apply_retention(settings, now=now) == 1
    assert _hashes(settings) == [new]


def test_cli_forget_on_an_empty_project_reports_zero(tmp_path):
    result = CliRunner().invoke(cli, ["forget", "--customer-id", "x", "-C", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "erased 0 predictions and 0 labels" in result.output
