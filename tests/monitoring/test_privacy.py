"""Erasure of one customer and the retention period, on a real SQLite prediction store."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from churn.config.settings import get_settings
from churn.prediction_store import PredictionStore, predictions_table


def _log(store: PredictionStore, rows: list[tuple[str, datetime]]) -> None:
    store.create_tables()
    with store.engine(store.predictions_url).begin() as conn:
        conn.execute(
            predictions_table.insert(),
            [
                {
                    "logged_at": at,
                    "request_id": "r",
                    "model_version": "1",
                    "customer_hash": store.hash_id(customer),
                    "features": {"tenure": 1},
                    "churn_probability": 0.5,
                    "churn": True,
                    "latency_ms": 1.0,
                }
                for customer, at in rows
            ],
        )


def _hashes(store: PredictionStore) -> list[str]:
    with store.engine(store.predictions_url).connect() as conn:
        return sorted(r[0] for r in conn.execute(sa.select(predictions_table.c.customer_hash)))


def test_forget_erases_one_customer_everywhere_and_nobody_else(tmp_path):
    store = PredictionStore.from_settings(get_settings(project_dir=tmp_path), create=True)
    now = datetime.now(UTC)
    _log(store, [("1111-AAAAA", now), ("1111-AAAAA", now), ("2222-BBBBB", now)])
    store.write_labels(["1111-AAAAA", "2222-BBBBB"], [True, False])

    erased = store.forget("1111-AAAAA")
    assert (erased.predictions, erased.labels) == (2, 1)
    assert _hashes(store) == [store.hash_id("2222-BBBBB")]
    assert store.forget("1111-AAAAA").predictions == 0


def test_retention_deletes_only_old_predictions(tmp_path):
    store = PredictionStore.from_settings(get_settings(project_dir=tmp_path), create=True)
    now = datetime.now(UTC)
    _log(store, [("old", now - timedelta(days=31)), ("new", now - timedelta(days=29))])
    assert store.apply_retention(30, now=now) == 1
    assert _hashes(store) == [store.hash_id("new")]


def test_ids_are_keyed_hashes_that_depend_on_the_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    one, other = PredictionStore(url, url, b"key one"), PredictionStore(url, url, b"key two")
    ids = ["7590-VHVEG", None, "5575-GNVDE"]
    assert one.hash_ids(ids) == [one.hash_id("7590-VHVEG"), None, one.hash_id("5575-GNVDE")]
    assert one.hash_id("x") != other.hash_id("x") and len(one.hash_id("x")) == 64


@pytest.mark.parametrize("key_length", [1, 32, 64, 65, 200])
def test_the_id_hash_is_hmac_sha256_of_the_key(key_length):
    """The same digests as the standard library's HMAC, for keys shorter and longer than the
    hash's block (labels joined on them, and ``churn forget``, depend on it)."""
    key = bytes(range(1, 256))[:key_length]
    store = PredictionStore("sqlite://", "sqlite://", key)
    for customer in ("7590-VHVEG", "", "é-ü", "x" * 500):
        assert store.hash_id(customer) == hmac.new(key, customer.encode(), "sha256").hexdigest()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (
            "postgresql+psycopg://app:old@DB.example:5432/churn",
            "postgresql://app:rotated@db.example/churn",
            True,
        ),
        ("postgresql://db:5432/churn", "postgresql://db:5433/churn", False),
        ("postgresql://db/churn", "postgresql://db/other", False),
        ("sqlite:////tmp/x/../x/log.db", "sqlite:////tmp/x/log.db", True),
    ],
)
def test_the_journal_is_named_by_the_store_not_its_credentials(a, b, same):
    """The journal's key: driver, credentials, host case and a default port do not matter."""
    from churn.prediction_store import store_identity

    assert (store_identity(a) == store_identity(b)) is same
    key = PredictionStore(a, a, b"k" * 32).journal_key()
    assert (key == PredictionStore(b, b, b"k" * 32).journal_key()) is same
    assert "old" not in store_identity(a) and "rotated" not in store_identity(b)
