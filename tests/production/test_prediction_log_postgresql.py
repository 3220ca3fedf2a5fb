"""The prediction store on PostgreSQL (its own throw-away database): insert, read, erase."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from churn.prediction_store import PredictionStore
from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch

from .conftest import DATABASE_URL, SKIP_REASON, _create_databases, _drop_databases, pg_url

pytestmark = [pytest.mark.production, pytest.mark.skipif(not DATABASE_URL, reason=SKIP_REASON)]

KEY = b"a-test-key-of-32-bytes-or-more!!"


@pytest.fixture
def database() -> Iterator[str]:
    name = f"churn_predlog_{secrets.token_hex(4)}"
    _create_databases(DATABASE_URL, [name])
    try:
        yield pg_url(DATABASE_URL, name)
    finally:
        _drop_databases(DATABASE_URL, [name])


def _batch(n: int = 9, version: str = "4") -> ScoredBatch:
    proba = np.linspace(0.05, 0.95, n)
    return ScoredBatch(
        logged_at=datetime.now(UTC),
        request_id="req-pg",
        model_version=version,
        ids=[None if i == 0 else f"cust-{i}" for i in range(n)],
        columns={
            "tenure": list(range(n)),
            "TotalCharges": [None if i % 4 == 0 else i * 10.5 for i in range(n)],
            "Contract": ["Two year"] * n,
        },
        proba=proba,
        decisions=proba >= 0.5,
        latency_ms=2.25,
        unseen=[["Contract"] if i % 3 == 0 else [] for i in range(n)],
    )


def _write(database: str, *batches: ScoredBatch) -> PredictionStore:
    store = PredictionStore(database, database, KEY)
    journal = Path(tempfile.mkdtemp(prefix="churn-journal-"))
    log = PredictionLog(store, ServingMetrics(), journal_dir=journal)
    log.start()
    for batch in batches:
        log.submit(batch)
    log.close()
    return store


def test_rows_are_stored_as_submitted(database: str) -> None:
    n = 9
    batch = _batch(n)
    proba = batch.proba
    store = _write(database, batch)
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT logged_at, request_id, model_version, customer_hash, features::text,"
                " churn_probability, churn, latency_ms, unseen_categories::text"
                " FROM predictions ORDER BY id"
            ).fetchall()
    finally:
        engine.dispose()
    assert len(rows) == n
    for i, row in enumerate(rows):
        at, request_id, version, digest, features, p, churn, latency, unseen = row
        assert at == batch.logged_at
        assert (request_id, version, latency) == ("req-pg", "4", 2.25)
        assert digest == store.hash_ids(list(batch.ids))[i]  # a missing id stays NULL
        assert json.loads(features) == {c: batch.columns[c][i] for c in batch.columns}
        assert p == pytest.approx(proba[i]) and churn is bool(proba[i] >= 0.5)
        assert (json.loads(unseen) if unseen is not None else []) == batch.unseen[i]


def test_windows_labels_erasure_and_retention(database: str) -> None:
    """What monitoring and the privacy commands do, on PostgreSQL's dialect."""
    from monitoring.data import join_labels

    store = _write(database, _batch(9, version="4"), _batch(5, version="5"))
    window = store.read_window(100, max_rows=100, model_version="4")
    assert window.total_rows == 9 and set(window.frame["model_version"]) == {"4"}
    assert window.frame["Contract"].tolist() == ["Two year"] * 9
    assert store.read_window(100, max_rows=3, model_version="4").rows == 3  # sampled
    store.write_labels(["cust-1", "cust-2"], [True, False])
    joined = join_labels(window, store)
    assert sorted(joined["churn_label"].tolist()) == [0, 1]
    erased = store.forget("cust-1")
    assert (erased.predictions, erased.labels) == (2, 1)  # one row of each version, one label
    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    assert store.apply_retention(30, now=later) == 14 - 2
    store.close()
