"""A reader never creates the prediction store: a wrong SQLite URL is an error, not an empty log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from churn.prediction_store import MissingStoreError, PredictionStore

KEY = b"a-test-key-of-32-bytes-or-more!!"

READS = {
    "read_window": lambda s: s.read_window(100, max_rows=100),
    "read_labels": lambda s: s.read_labels(),
    "write_labels": lambda s: s.write_labels(["7590-VHVEG"], [True]),
    "forget": lambda s: s.forget("7590-VHVEG"),
    "apply_retention": lambda s: s.apply_retention(30),
    "claim_retrain": lambda s: s.claim_retrain(datetime.now(UTC), 24),
}


@pytest.mark.parametrize("operation", READS)
def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path, operation):
    db = tmp_path / "typo" / "predictions.db"
    url = f"sqlite:///{db}"
    store = PredictionStore(url, url, KEY)
    with pytest.raises(MissingStoreError) as error:
        READS[operation](store)
    message = str(error.value)
    assert str(db) in message and "CHURN_PREDICTION_LOG_URL" in message
    assert "make serve" in message  # what creates it
    assert not db.exists() and not db.parent.exists()


def test_the_labels_file_is_checked_too(tmp_path):
    log, labels = tmp_path / "log.db", tmp_path / "labels-typo.db"
    PredictionStore(f"sqlite:///{log}", f"sqlite:///{log}", KEY, create=True).create_tables()
    store = PredictionStore(f"sqlite:///{log}", f"sqlite:///{labels}", KEY)
    assert store.read_window(10, max_rows=10).rows == 0  # the log exists: empty, not an error
    with pytest.raises(MissingStoreError, match="CHURN_LABELS_URL") as error:
        store.read_labels()
    assert str(labels) in str(error.value) and "CHURN_PREDICTION_LOG_URL" not in str(error.value)
    assert not labels.exists()


def test_the_writer_creates_the_file_and_then_readers_open_it(tmp_path):
    db = tmp_path / "new" / "predictions.db"
    url = f"sqlite:///{db}"
    writer = PredictionStore(url, url, KEY, create=True)
    writer.create_tables()
    writer.close()
    assert db.is_file()
    reader = PredictionStore(url, url, KEY)
    assert reader.forget("7590-VHVEG").predictions == 0
    assert reader.read_labels().empty
