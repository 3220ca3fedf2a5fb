"""churn.release.live: the canary split, the live comparison and the rule of a promotion from live
evidence; the prediction store's role column and its migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churn.config.params import LiveParams
from churn.prediction_store import PredictionStore
from churn.release import live

KEY = b"unit-test-hash-key"


def _store(tmp_path: Path) -> PredictionStore:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    return PredictionStore(url, url, KEY, create=True)


def test_canary_assignment_is_stable_per_id_and_near_the_share(tmp_path: Path) -> None:
    """The same id always lands on the same side; over 20,000 ids the challenger's share is
    within 1.5 points of the configured 10 %; another key draws another (equally sized) set."""
    ids = [f"C{i:06d}" for i in range(20_000)]
    store = _store(tmp_path)
    first = [live.in_canary(h, 0.1) for h in store.hash_ids(ids)]
    again = [live.in_canary(h, 0.1) for h in store.hash_ids(list(reversed(ids)))][::-1]
    assert first == again
    assert abs(np.mean(first) - 0.1) < 0.015, np.mean(first)
    other = PredictionStore(store.predictions_url, store.labels_url, b"another-key")
    second = [live.in_canary(h, 0.1) for h in other.hash_ids(ids)]
    assert abs(np.mean(second) - 0.1) < 0.015
    assert first != second
    assert not live.in_canary(None, 0.99)  # a record without an id goes to the champion
    half = [live.in_canary(h, 0.5) for h in store.hash_ids(ids)]
    assert all(h for f, h in zip(first, half, strict=True) if f)  # a larger share keeps them


def test_roc_auc_and_calibration_match_hand_and_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1).round(2)  # ties included
    assert live.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert np.isnan(live.roc_auc(np.ones(5), np.linspace(0, 1, 5)))
    # two bins: scores 0.05 (observed 0 of 2) and 0.95 (observed 1 of 2): |0-.05|, |.5-.95|
    ece = live.expected_calibration_error(
        np.array([0, 0, 1, 0]), np.array([0.05, 0.05, 0.95, 0.95])
    )
    assert ece == pytest.approx((2 * 0.05 + 2 * 0.45) / 4)


def _traffic(n: int, seed: int, quality: float) -> pd.DataFrame:
    """Labelled customers and a score whose separation grows with ``quality``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(quality * (2 * y - 1) + rng.normal(0, 1, n))))
    return pd.DataFrame(
        {"customer_hash": [f"h{seed}-{i}" for i in range(n)], "churn_probability": score,
         "churn_label": y}
    )  # fmt: skip


def _compare(a: pd.DataFrame, b: pd.DataFrame, mode: str, **params: object) -> live.LiveComparison:
    return live.compare(
        a, b, mode=mode, champion_version="1", challenger_version="2", champion_threshold=0.5,
        challenger_threshold=0.4, params=LiveParams(**params),
    )  # fmt: skip


def test_shadow_comparison_is_paired_and_proves_a_better_challenger() -> None:
    champion = _traffic(1500, 1, quality=0.6)
    rng = np.random.default_rng(9)
    y = champion["churn_label"].to_numpy()
    better = champion.assign(
        churn_probability=1 / (1 + np.exp(-(1.6 * (2 * y - 1) + rng.normal(0, 1, len(y)))))
    )
    result = _compare(champion, better, "shadow", min_labelled_rows=200)
    assert result.paired and result.better, result.reason
    assert result.champion.labelled_rows == result.challenger.labelled_rows == 1500
    assert result.auc_difference == pytest.approx(
        roc_auc_score(y, better["churn_probability"])
        - roc_auc_score(y, champion["churn_probability"])
    )
    assert result.interval is not None and 0 < result.interval[0] < result.auc_difference
    live.require_better(result)  # does not raise
    tags = result.tags()
    assert tags["interval_low"] == f"{result.interval[0]:.4f}" and tags["paired"] == "True"
    assert result.challenger.recall == pytest.approx(
        ((better["churn_probability"] >= 0.4) & (y == 1)).sum() / y.sum()
    )


def test_identical_models_are_not_proven_better() -> None:
    """The same scores on both sides: difference 0, interval [0, 0], which does not exclude 0."""
    traffic = _traffic(800, 2, quality=1.0)
    result = _compare(traffic, traffic, "shadow", min_labelled_rows=200)
    assert result.auc_difference == 0 and not result.better
    assert "includes 0" in result.reason
    with pytest.raises(live.NotProven, match="includes 0"):
        live.require_better(result)


def test_a_worse_challenger_is_refused_in_canary_mode() -> None:
    result = _compare(
        _traffic(1200, 3, quality=1.5),
        _traffic(600, 4, quality=0.2),
        "canary",
        min_labelled_rows=200,
    )
    assert not result.paired and not result.better
    assert result.interval is not None and result.interval[1] < 0
    assert "the champion is better" in result.reason


def test_promotion_from_live_evidence_refuses_when_the_evidence_is_short() -> None:
    """120 labelled challenger rows against live.min_labelled_rows 200: refused, the message
    names the version, the count, the key and the fix, whatever the figures say."""
    champion = _traffic(1000, 5, quality=0.2)
    short = _traffic(120, 6, quality=3.0)
    result = _compare(champion, short, "canary", min_labelled_rows=200)
    assert not result.better and result.interval is None
    with pytest.raises(live.NotProven) as refused:
        live.require_better(result)
    message = str(refused.value)
    assert "challenger v2 has 120 labelled predictions" in message
    assert "live.min_labelled_rows needs 200" in message
    assert "churn promote" in message
    # shadow: only the customers both models scored count
    paired = _compare(champion, champion.head(150), "shadow", min_labelled_rows=200)
    assert not paired.better and "150 labelled predictions" in paired.reason


def test_role_column_is_added_to_an_older_table_and_old_rows_read_as_champion(
    tmp_path: Path,
) -> None:
    """A predictions table made before #14 (no role) gets the column when the service starts;
    its rows are the champion's, and a journaled row without a role is stored as one."""
    db = tmp_path / "p.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, logged_at DATETIME "
            "NOT NULL, request_id VARCHAR(64) NOT NULL, model_version VARCHAR(32) NOT NULL, "
            "customer_hash VARCHAR(64), features JSON NOT NULL, churn_probability FLOAT NOT NULL,"
            " churn BOOLEAN NOT NULL, latency_ms FLOAT NOT NULL, unseen_categories JSON)"
        )
        conn.execute(
            "INSERT INTO predictions (logged_at, request_id, model_version, customer_hash, "
            "features, churn_probability, churn, latency_ms) VALUES "
            "('2026-01-01 00:00:00', 'r0', '1', 'h0', '{\"tenure\": 1}', 0.2, 0, 1.0)"
        )
    url = f"sqlite:///{db}"
    reader = PredictionStore(url, url, KEY)
    assert reader.read_window(10, max_rows=10, roles=["champion"]).rows == 1  # before migration
    assert reader.read_window(10, max_rows=10, roles=["shadow"]).rows == 0
    store = PredictionStore(url, url, KEY, create=True)
    store.create_tables()
    store.create_tables()  # idempotent
    old = '["2026-01-01 00:00:01", "r1", "1", "h1", {"tenure": 2}, 0.3, false, 1.0, null]'
    new = '["2026-01-01 00:00:02", "r1", "2", "h1", {"tenure": 2}, 0.4, false, 1.0, null, "shadow"]'
    store.insert_rows(f"[{old}, {new}]")
    frame = store.read_window(10, max_rows=10).frame
    assert frame["role"].tolist() == ["champion", "champion", "shadow"]
    shadow = store.read_window(10, max_rows=10, roles=["shadow"]).frame
    assert shadow["model_version"].tolist() == ["2"]
