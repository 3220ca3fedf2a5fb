"""The labels table: true outcomes that arrive after the prediction, keyed by the hashed id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from serving.predlog import make_engine

TABLE = "labels"
_metadata = sa.MetaData()
labels_table = sa.Table(
    TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_hash", sa.String(64), nullable=False, index=True),
    sa.Column("churned", sa.Boolean, nullable=False),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
)


def write_labels(
    url: str, hashes: Sequence[str], churned: Sequence[bool], at: datetime | None = None
) -> int:
    """Append true labels (the CRM telling us who left); returns the rows written.

    Args:
        url: SQLAlchemy URL of the labels database (by default the prediction log's).
        hashes: ``serving.predlog.hash_id`` of each customer id, with the service's key.
        churned: whether each customer churned.
        at: when the labels became known (default now, UTC).
    """
    if len(hashes) != len(churned):
        raise ValueError(f"{len(hashes)} hashes but {len(churned)} labels")
    stamp = (at or datetime.now(UTC)).astimezone(UTC)
    engine = make_engine(url)
    try:
        _metadata.create_all(engine)
        rows = [
            {"customer_hash": h, "churned": bool(c), "labelled_at": stamp}
            for h, c in zip(hashes, churned, strict=True)
        ]
        with engine.begin() as conn:
            for start in range(0, len(rows), 10_000):
                conn.execute(labels_table.insert(), rows[start : start + 10_000])
    finally:
        engine.dispose()
    return len(hashes)


def read_labels(url: str, hashes: Iterable[str] | None = None) -> pd.DataFrame:
    """``customer_hash``, ``churned``, ``labelled_at``; the latest label per customer.

    Args:
        url: SQLAlchemy URL of the labels database.
        hashes: only these customers (the window's), if given.
    """
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(TABLE):
            return pd.DataFrame(columns=["customer_hash", "churned", "labelled_at"])
        wanted = None if hashes is None else list(dict.fromkeys(h for h in hashes if h))
        query = sa.select(
            labels_table.c.customer_hash, labels_table.c.churned, labels_table.c.labelled_at
        ).order_by(labels_table.c.id)
        frames = []
        with engine.connect() as conn:
            if wanted is None:
                frames.append(pd.DataFrame(conn.execute(query).mappings().all()))
            else:
                for start in range(0, len(wanted), 5_000):
                    chunk = wanted[start : start + 5_000]
                    rows = conn.execute(query.where(labels_table.c.customer_hash.in_(chunk)))
                    frames.append(pd.DataFrame(rows.mappings().all()))
    finally:
        engine.dispose()
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["customer_hash", "churned", "labelled_at"])
    labels = pd.concat(frames, ignore_index=True)
    return labels.drop_duplicates("customer_hash", keep="last").reset_index(drop=True)
