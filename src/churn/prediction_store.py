"""The prediction store: the predictions and labels tables, and all that reads or writes them.

The service appends predictions (``insert_rows``), the CRM (or the simulator) appends labels,
monitoring reads a window of predictions joined with labels, and privacy operations erase one
customer or apply retention. All of it goes through :class:`PredictionStore`: neither serving
nor monitoring touches the tables, the engine or the id hashing themselves.

Customer ids are never stored in clear: both tables hold a keyed HMAC of the id
(:meth:`PredictionStore.hash_ids`), stable for joins, useless without the key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from churn.config.errors import DataError
from churn.config.settings import Settings

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
LABELS = "labels"
REQUEST_ID_MAX = 64  # characters of a client's X-Request-ID that the store (and the API) accept
SCORE_COLUMN = "churn_probability"  # the score, in the table and in every frame read from it
# The role of a logged prediction: the champion answered; the challenger answered (a canary);
# the challenger scored it in the shadow (never returned).
CHAMPION_ROLE, CHALLENGER_ROLE, SHADOW_ROLE = "champion", "challenger", "shadow"
ROLES = (CHAMPION_ROLE, CHALLENGER_ROLE, SHADOW_ROLE)
_CHUNK = 10_000  # ids per IN (...) query: below every database's bound-parameter limit

_metadata = sa.MetaData()
predictions_table = sa.Table(
    PREDICTIONS,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(REQUEST_ID_MAX), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("customer_hash", sa.String(64)),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column(SCORE_COLUMN, sa.Float, nullable=False),
    sa.Column("churn", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("unseen_categories", sa.JSON),
    # Which model answered, or scored in the shadow (``ROLES``); added in #14, so tables created
    # before it get the column from ``create_tables`` (their rows were the champion's).
    sa.Column("role", sa.String(16), nullable=False, server_default=CHAMPION_ROLE),
)
labels_table = sa.Table(
    LABELS,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_hash", sa.String(64), nullable=False, index=True),
    sa.Column("churned", sa.Boolean, nullable=False),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),
)

RETRAIN_CLAIMS = "retrain_claims"
retrain_claims_table = sa.Table(
    RETRAIN_CLAIMS,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
# A constant key for PostgreSQL's advisory lock around a claim (any 64-bit number works).
_CLAIM_LOCK_KEY = 0x636875726E  # "churn"

# The order of a prediction row as ``insert_rows`` takes it (a JSON array per row).
ROW_COLUMNS = (
    "logged_at",
    "request_id",
    "model_version",
    "customer_hash",
    "features",
    SCORE_COLUMN,
    "churn",
    "latency_ms",
    "unseen_categories",
    "role",
)


@dataclass
class PredictionWindow:
    """Logged predictions with one column per feature, and how they were chosen."""

    frame: pd.DataFrame
    total_rows: int  # rows in the window before sampling
    sampled: bool
    start: datetime | None
    end: datetime | None

    @property
    def rows(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> PredictionWindow:
        return cls(pd.DataFrame(), 0, False, None, None)


@dataclass(frozen=True)
class Erased:
    """Rows deleted for one customer, per table."""

    predictions: int
    labels: int


class MissingStoreError(DataError):
    """A reader was pointed at a SQLite file that does not exist (most often a wrong URL)."""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for an in-memory database or another dialect."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# The port a dialect listens on when a URL names none (made explicit in a store's identity).
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}


def store_identity(url: str) -> str:
    """A store's identity without credentials: the backend (not the driver), the lowercased
    host, the port (the default made explicit) and the database; a SQLite file's absolute path.

    ``postgresql+psycopg://app:old@DB.example:5432/churn`` and
    ``postgresql://app:new@db.example/churn`` are the same store: ``postgresql://db.example:5432/churn``.
    """
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database or ""
        path = db if db in ("", ":memory:") else str(Path(db).expanduser().resolve())
        return f"sqlite:///{path}"
    host = (parsed.host or "localhost").lower()
    port = parsed.port or _DEFAULT_PORTS.get(backend, 0)
    return f"{backend}://{host}:{port}/{parsed.database or ''}"


def make_engine(
    url: str, *, create: bool = False, setting: str = "CHURN_PREDICTION_LOG_URL"
) -> sa.Engine:
    """An engine for the store; SQLite gets WAL so readers never block.

    Only ``create`` (the service, which writes the log) makes a missing SQLite file and its
    folder. Anyone else gets :class:`MissingStoreError` naming ``setting``: SQLite would
    silently create an empty database, and a wrong URL would then read as a log with no
    traffic ("insufficient data") forever.
    """
    db = sqlite_file(url)
    if db is not None:
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
        elif not db.exists():
            raise MissingStoreError(
                f"no prediction store at {db}: the SQLite file does not exist. Check {setting}: "
                "it must name the service's database, which the service creates when it "
                "starts (make serve)."
            )
    if url.startswith("sqlite:///"):
        engine = sa.create_engine(url, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # Parameters stay out of error messages: a failed batch would print rows of features.
    return sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)


def insert_statement(dialect: str) -> str:
    """One INSERT of every row in a JSON array of ``ROW_COLUMNS``-ordered arrays (one parameter).

    One statement for a whole batch: an ``executemany`` gives the GIL up and takes it back once
    per row, and with a busy event loop each take waits for the switch interval.
    """
    names = ", ".join(ROW_COLUMNS)
    if dialect == "sqlite":
        # json_extract gives objects and arrays back as JSON text, true/false as 1/0.
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(ROW_COLUMNS) - 1))
        # Rows journaled before the role existed have 9 fields: they were the champion's.
        values += f", COALESCE(json_extract(value, '$[9]'), '{CHAMPION_ROLE}')"
        return f"INSERT INTO {PREDICTIONS} ({names}) SELECT {values} FROM json_each(?)"
    if dialect == "postgresql":
        values = (
            "(r->>0)::timestamptz, r->>1, r->>2, r->>3, r->4, (r->>5)::float8, "
            "(r->>6)::boolean, (r->>7)::float8, "
            "CASE WHEN json_typeof(r->8) = 'null' THEN NULL ELSE r->8 END, "
            f"COALESCE(r->>9, '{CHAMPION_ROLE}')"
        )
        rows = "json_array_elements(%s::json) AS r"
        return f"INSERT INTO {PREDICTIONS} ({names}) SELECT {values} FROM {rows}"
    raise ValueError(f"the prediction store supports SQLite and PostgreSQL, not {dialect}")


class PredictionStore:
    """The predictions and labels tables behind one object.

    Args:
        predictions_url: SQLAlchemy URL of the predictions table (SQLite or PostgreSQL).
        labels_url: SQLAlchemy URL of the labels table; the predictions' database when equal.
        hash_key: the HMAC key that pseudonymises customer ids (``CHURN_ID_HASH_KEY``).
        create: create a missing SQLite database (the service, the log's writer, does). Every
            other user (monitoring, labels, ``churn forget``) reads an existing store: a
            missing file raises :class:`MissingStoreError` naming the settings to check.
    """

    def __init__(
        self, predictions_url: str, labels_url: str, hash_key: bytes, *, create: bool = False
    ) -> None:
        self.predictions_url = predictions_url
        self.labels_url = labels_url
        self.create = create
        # The standard library's HMAC, keyed once; hash_id copies it (OpenSSL's HMAC context,
        # copied in C). Never a hand-made copy of the construction.
        self._keyed = hmac.new(hash_key, digestmod="sha256")
        self._second: tuple[int, str] = (-1, "")  # timestamp(): the last second and its text
        self._engines: dict[str, sa.Engine] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, create: bool = False) -> PredictionStore:
        """The store the settings name, with the service's id-hash key."""
        _, hash_key = settings.serving_secrets()
        return cls(settings.prediction_log_url, settings.labels_url, hash_key, create=create)

    # -- plumbing -------------------------------------------------------------------------------

    def engine(self, url: str) -> sa.Engine:
        if url not in self._engines:
            setting = (
                "CHURN_PREDICTION_LOG_URL" if url == self.predictions_url else "CHURN_LABELS_URL"
            )
            self._engines[url] = make_engine(url, create=self.create, setting=setting)
        return self._engines[url]

    @functools.cached_property
    def dialect(self) -> str:
        """The predictions database's SQL dialect (``sqlite`` or ``postgresql``), from its URL
        (read for every logged request: no engine is looked up)."""
        return sa.make_url(self.predictions_url).get_backend_name()

    def close(self) -> None:
        """Release every connection."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def create_tables(self) -> None:
        """Create both tables where missing, and add the columns a newer release brought to
        a predictions table an older one created (idempotent)."""
        engine = self.engine(self.predictions_url)
        predictions_table.create(engine, checkfirst=True)
        self._add_missing_columns(engine)
        labels_table.create(self.engine(self.labels_url), checkfirst=True)

    def _add_missing_columns(self, engine: sa.Engine) -> None:
        """The migration path of the predictions table: ``role`` (#14) is added with its
        default, so rows logged before it read as the champion's."""
        present = {c["name"] for c in sa.inspect(engine).get_columns(PREDICTIONS)}
        if "role" in present:
            return
        ddl = (
            f"ALTER TABLE {PREDICTIONS} ADD COLUMN role VARCHAR(16) NOT NULL "
            f"DEFAULT '{CHAMPION_ROLE}'"
        )
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(ddl)
        except sa.exc.DBAPIError:  # another process added it between the check and the ALTER
            present = {c["name"] for c in sa.inspect(engine).get_columns(PREDICTIONS)}
            if "role" not in present:
                raise
        log.info(
            "prediction store: added the role column to %s (rows so far: champion)", PREDICTIONS
        )

    def _has(self, url: str, table: sa.Table) -> bool:
        return sa.inspect(self.engine(url)).has_table(table.name)

    def _has_role_column(self) -> bool:
        """Whether the predictions table has ``role`` (a reader never migrates a table: the
        service does, when it starts; until then every row is the champion's)."""
        engine = self.engine(self.predictions_url)
        return "role" in {c["name"] for c in sa.inspect(engine).get_columns(PREDICTIONS)}

    # -- ids ------------------------------------------------------------------------------------

    def hash_ids(self, customer_ids: Sequence[str | int | None]) -> list[str | None]:
        """Keyed HMAC-SHA256 of each id (None stays None)."""
        return [None if i is None else self.hash_id(i) for i in customer_ids]

    def hash_id(self, customer_id: str | int) -> str:
        """Keyed HMAC-SHA256 of one id (``hmac.new(key, id, sha256).hexdigest()``; what the hash
        costs a request: ``churn bench serve --in-process``, "without the log's id hash").

        An integer id is hashed as its decimal text: ``15634602`` and ``"15634602"`` (an
        integer id sent as digits, or read from a file as text) are the same customer.
        """
        keyed = self._keyed.copy()
        keyed.update(str(customer_id).encode())
        return keyed.hexdigest()

    # -- predictions ----------------------------------------------------------------------------

    def timestamp(self, at: datetime) -> str:
        """How ``insert_rows`` wants ``logged_at``: SQLite has no time zones (naive UTC text),
        PostgreSQL takes ISO 8601 with the offset.

        The text of a UTC time (the service's clock) is made from its second's, kept from the
        previous call, and its microseconds: the same text as ``isoformat``, for a fraction
        of its cost (every logged request needs one).
        """
        if at.tzinfo is not UTC:
            if self.dialect == "sqlite":
                return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
            return at.isoformat()
        sqlite = self.dialect == "sqlite"
        second = int(at.timestamp())
        cached, prefix = self._second
        if second != cached:
            prefix = at.replace(microsecond=0, tzinfo=None).isoformat(sep=" " if sqlite else "T")
            self._second = (second, prefix)
        suffix = "" if sqlite else "+00:00"
        if at.microsecond:
            return f"{prefix}.{at.microsecond:06d}{suffix}"
        return prefix + suffix

    def insert_rows(self, rows_json: str, *, commit: bool = True) -> None:
        """Append predictions given as one JSON array of ``ROW_COLUMNS``-ordered arrays.

        With ``commit=False`` the rows are inserted and rolled back: whether the store takes
        them (the prediction log's search for the rows it refuses), nothing kept.
        """
        with self.engine(self.predictions_url).connect() as conn:
            conn.exec_driver_sql(insert_statement(self.dialect), (rows_json,))
            if commit:
                conn.commit()
            else:
                conn.rollback()

    def journal_dir(self) -> Path:
        """Where the service journals rows before the store takes them (next to a SQLite file,
        else ``prediction-journal`` in the working directory), unless settings name one."""
        url = self.predictions_url
        if url.startswith("sqlite:///"):
            db = Path(url.removeprefix("sqlite:///"))
            return db.parent / f"{db.stem}.journal"
        return Path.cwd() / "prediction-journal"

    def journal_key(self) -> str:
        """A name for this store's journal folder: the digest of its identity
        (:func:`store_identity`), so a journal is only ever replayed into the store it was
        written for, whatever the URL's spelling, driver or credentials."""
        return hashlib.sha256(store_identity(self.predictions_url).encode()).hexdigest()[:16]

    def legacy_journal_key(self) -> str:
        """The journal folder's name before issue #26 (the digest of the whole URL, password
        included): the service moves a backlog found under it into :meth:`journal_key`'s."""
        return hashlib.sha256(self.predictions_url.encode()).hexdigest()[:16]

    def read_window(
        self,
        rows: int,
        *,
        hours: float | None = None,
        max_rows: int,
        seed: int = 0,
        now: datetime | None = None,
        model_version: str | None = None,
        roles: Sequence[str] | None = None,
    ) -> PredictionWindow:
        """The last ``rows`` predictions (within ``hours``), sampled down to ``max_rows``.

        With ``model_version``, only that version's predictions count; with ``roles``, only
        predictions logged in those roles (``ROLES``).

        Only ids are read to find the window; when it is larger than ``max_rows``, a seeded
        uniform sample of them is drawn before any feature JSON is parsed, so memory stays
        bounded by ``max_rows`` whatever the window's size.
        """
        if not self._has(self.predictions_url, predictions_table):
            return PredictionWindow.empty()
        table = predictions_table
        conditions = []
        if hours is not None:
            since = (now or datetime.now(UTC)) - timedelta(hours=hours)
            if self.dialect == "sqlite":  # the store keeps naive UTC there
                since = since.astimezone(UTC).replace(tzinfo=None)
            conditions.append(table.c.logged_at >= since)
        if model_version is not None:
            conditions.append(table.c.model_version == model_version)
        if roles is not None:
            if not self._has_role_column():
                if CHAMPION_ROLE not in roles:  # an old table: every row was the champion's
                    return PredictionWindow.empty()
            else:
                conditions.append(table.c.role.in_(list(roles)))
        ids_query = sa.select(table.c.id).where(*conditions).order_by(table.c.id.desc()).limit(rows)
        columns = [
            table.c.id,
            table.c.logged_at,
            table.c.model_version,
            table.c.customer_hash,
            sa.type_coerce(table.c.features, sa.Text).label("features"),
            table.c[SCORE_COLUMN],
            table.c.churn,
        ]
        has_role = self._has_role_column()
        if has_role:
            columns.append(table.c.role)
        found: list[Any] = []
        with self.engine(self.predictions_url).connect() as conn:
            ids = np.fromiter(conn.execute(ids_query).scalars(), dtype=np.int64)
            total = len(ids)
            sampled = total > max_rows
            if sampled:
                rng = np.random.default_rng(seed)
                ids = np.sort(rng.choice(ids, size=max_rows, replace=False))
            if total and not sampled:  # the newest ids are contiguous: one range query
                span = table.c.id.between(int(ids.min()), int(ids.max()))
                found = list(conn.execute(sa.select(*columns).where(span, *conditions)))
            else:
                for start in range(0, len(ids), _CHUNK):
                    chunk = [int(i) for i in ids[start : start + _CHUNK]]
                    found.extend(conn.execute(sa.select(*columns).where(table.c.id.in_(chunk))))
        if not found:
            return PredictionWindow.empty()
        meta = pd.DataFrame(
            [r[:4] + r[5:7] for r in found],
            columns=["id", "logged_at", "model_version", "customer_hash", SCORE_COLUMN, "churn"],
        )
        meta["role"] = [r[7] for r in found] if has_role else CHAMPION_ROLE
        features = pd.DataFrame.from_records(
            [orjson.loads(r[4]) if isinstance(r[4], str | bytes) else r[4] for r in found]
        )
        frame = pd.concat([meta, features], axis=1).sort_values("id", ignore_index=True)
        return PredictionWindow(
            frame, total, sampled, frame["logged_at"].min(), frame["logged_at"].max()
        )

    # -- retraining ---------------------------------------------------------------------------

    def claim_retrain(self, now: datetime, cooldown_hours: float) -> datetime | None:
        """Claim the one retrain allowed per cooldown: None when granted (the claim is recorded
        at ``now``, so the cooldown runs from the decision), else when the holding claim was made.

        Atomic across processes on both dialects: SQLite runs the conditional INSERT under its
        database write lock; PostgreSQL takes a transaction-level advisory lock first (two
        READ COMMITTED transactions could otherwise both see no recent claim).
        """
        engine = self.engine(self.predictions_url)
        try:
            retrain_claims_table.create(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another run created it between the check and the CREATE
            if not self._has(self.predictions_url, retrain_claims_table):
                raise
        table = retrain_claims_table
        since = now - timedelta(hours=cooldown_hours)
        if self.dialect == "sqlite":  # naive UTC, as for the predictions
            now = now.astimezone(UTC).replace(tzinfo=None)
            since = since.astimezone(UTC).replace(tzinfo=None)
        recent = sa.select(table.c.id).where(table.c.claimed_at > since)
        insert = table.insert().from_select(
            ["claimed_at"],
            sa.select(sa.literal(now, sa.DateTime(timezone=True))).where(~sa.exists(recent)),
        )
        with engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIM_LOCK_KEY})
            if conn.execute(insert.returning(table.c.id)).first() is not None:
                return None
            held = conn.execute(sa.select(sa.func.max(table.c.claimed_at))).scalar_one()
        return held if held.tzinfo else held.replace(tzinfo=UTC)

    # -- labels ---------------------------------------------------------------------------------

    def write_labels(
        self, customer_ids: Sequence[str], churned: Sequence[bool], at: datetime | None = None
    ) -> int:
        """Append true outcomes (the CRM telling us who left), keyed like the predictions.

        Args:
            customer_ids: the ids as the CRM knows them; hashed here with the store's key.
            churned: whether each customer churned.
            at: when the labels became known (default now, UTC).

        Returns:
            The rows written.
        """
        if len(customer_ids) != len(churned):
            raise ValueError(f"{len(customer_ids)} customer ids but {len(churned)} labels")
        stamp = (at or datetime.now(UTC)).astimezone(UTC)
        engine = self.engine(self.labels_url)
        labels_table.create(engine, checkfirst=True)
        rows = [
            {"customer_hash": h, "churned": bool(c), "labelled_at": stamp}
            for h, c in zip(self.hash_ids(customer_ids), churned, strict=True)
        ]
        with engine.begin() as conn:
            for start in range(0, len(rows), _CHUNK):
                conn.execute(labels_table.insert(), rows[start : start + _CHUNK])
        return len(rows)

    def read_labels(self, hashes: Iterable[str] | None = None) -> pd.DataFrame:
        """``customer_hash``, ``churned``, ``labelled_at``: the latest label per customer.

        Args:
            hashes: only these customers (a window's), if given.
        """
        columns = ["customer_hash", "churned", "labelled_at"]
        if not self._has(self.labels_url, labels_table):
            return pd.DataFrame(columns=columns)
        wanted = None if hashes is None else list(dict.fromkeys(h for h in hashes if h))
        query = sa.select(*(labels_table.c[c] for c in columns)).order_by(labels_table.c.id)
        frames = []
        with self.engine(self.labels_url).connect() as conn:
            if wanted is None:
                frames.append(pd.DataFrame(conn.execute(query).mappings().all()))
            else:
                for start in range(0, len(wanted), 5_000):
                    chunk = wanted[start : start + 5_000]
                    found = conn.execute(query.where(labels_table.c.customer_hash.in_(chunk)))
                    frames.append(pd.DataFrame(found.mappings().all()))
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=columns)
        labels = pd.concat(frames, ignore_index=True)
        return labels.drop_duplicates("customer_hash", keep="last").reset_index(drop=True)

    # -- privacy --------------------------------------------------------------------------------

    def forget(self, customer_id: str) -> Erased:
        """Delete every prediction and label of one customer (GDPR art. 17), by keyed hash."""
        digest = self.hash_id(customer_id)
        return Erased(
            predictions=self._delete(
                self.predictions_url,
                predictions_table,
                predictions_table.c.customer_hash == digest,
            ),
            labels=self._delete(
                self.labels_url, labels_table, labels_table.c.customer_hash == digest
            ),
        )

    def apply_retention(self, days: int, now: datetime | None = None) -> int:
        """Delete predictions logged more than ``days`` ago; returns the count."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        return self._delete(
            self.predictions_url, predictions_table, predictions_table.c.logged_at < cutoff
        )

    def _delete(self, url: str, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
        if not self._has(url, table):
            return 0
        with self.engine(url).begin() as conn:
            return int(conn.execute(table.delete().where(where)).rowcount or 0)
