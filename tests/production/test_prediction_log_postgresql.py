"""The prediction log's one-statement insert on PostgreSQL (its own throw-away database)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from serving.metrics import ServingMetrics
from serving.predlog import PredictionLog, ScoredBatch, hash_id

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


def test_rows_are_stored_as_submitted(database: str) -> None:
    n = 9
    proba = np.linspace(0.05, 0.95, n)
    batch = ScoredBatch(
        logged_at=datetime.now(UTC),
        request_id="req-pg",
        model_version="4",
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
    log = PredictionLog(database, KEY, ServingMetrics())
    log.start()
    log.submit(batch)
    log.close()
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
        assert digest == hash_id(KEY, batch.ids[i])  # a missing id stays NULL
        assert json.loads(features) == {c: batch.columns[c][i] for c in batch.columns}
        assert p == pytest.approx(proba[i]) and churn is bool(proba[i] >= 0.5)
        assert (json.loads(unseen) if unseen is not None else []) == batch.unseen[i]
