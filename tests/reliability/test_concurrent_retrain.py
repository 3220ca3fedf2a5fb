"""Single-flight retraining: monitoring runs deciding at once get one retrain between them."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from churn.prediction_store import PredictionStore

KEY = b"a-test-key-of-32-bytes-or-more!!"
PG = os.environ.get("CHURN_TEST_DATABASE_URL", "")


def _race(url: str, runs: int = 4) -> list[datetime | None]:
    """``runs`` monitoring runs (each with its own store and connections, as separate processes
    have) claim at the same moment; each one's answer."""
    barrier = threading.Barrier(runs)
    now = datetime.now(UTC)
    answers: list[datetime | None] = []

    def claim() -> None:
        store = PredictionStore(url, url, KEY)
        barrier.wait()
        answers.append(store.claim_retrain(now, 24))
        store.close()

    threads = [threading.Thread(target=claim) for _ in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/log.db"
        PredictionStore(url, url, KEY, create=True).create_tables()  # as the service does
        yield url
        return
    if not PG:
        pytest.skip("CHURN_TEST_DATABASE_URL is not set (the production profile's PostgreSQL)")
    from tests.production.conftest import _create_databases, _drop_databases, pg_url

    name = f"churn_claim_{secrets.token_hex(4)}"
    _create_databases(PG, [name])
    try:
        yield pg_url(PG, name)
    finally:
        _drop_databases(PG, [name])


def test_of_monitoring_runs_deciding_at_once_exactly_one_retrains(url: str) -> None:
    answers = _race(url)
    granted = [a for a in answers if a is None]
    print(
        f"\nFAULT | concurrent monitoring runs ({url.split(':')[0]}) | 4 decided retrain | "
        f"{len(granted)} retrain | {len(answers) - len(granted)} cooldown | -"
    )
    assert len(granted) == 1
    held = {a for a in answers if a is not None}
    assert len(held) == 1  # the others name the winner's claim


def test_the_cooldown_runs_from_the_claim_and_then_expires(url: str) -> None:
    store = PredictionStore(url, url, KEY)
    decided = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert store.claim_retrain(decided, 24) is None
    assert store.claim_retrain(decided + timedelta(hours=23), 24) == decided
    assert store.claim_retrain(decided + timedelta(hours=25), 24) is None
    store.close()
