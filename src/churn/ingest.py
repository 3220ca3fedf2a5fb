"""Ingestion: read raw customers from the source named in ``params.yaml`` into a raw snapshot."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import httpx
import pandas as pd

from churn.data.generator import generate_customers
from churn.params import FeedbackSource, IngestParams

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The source could not be read (missing file, unreachable URL, failing query)."""


def read_source(source: IngestParams, *, base_dir: Path, timeout_s: float = 60.0) -> pd.DataFrame:
    """Read the raw customers frame from the configured source, as it is (no cleaning).

    Args:
        source: the ``ingest`` block of ``params.yaml``.
        base_dir: folder that relative file paths are resolved against (the project root).
        timeout_s: HTTP timeout for ``kind: url``.

    Raises:
        IngestError: with the source named, when it cannot be read.
    """
    try:
        frame = _read_base(source, base_dir, timeout_s)
    except IngestError:
        raise
    except (OSError, httpx.HTTPError, ValueError) as exc:
        raise IngestError(f"could not read the {source.kind} source: {exc}") from exc
    return append_feedback(frame, source.feedback, base_dir)


def source_is_volatile(source: IngestParams, base_dir: Path) -> bool:
    """Whether the source can change behind unchanged parameters, so ingestion must re-read it.

    DVC sees only the ``ingest`` parameters and the code: a file edited in place, a URL or a
    query whose answer moved on, or newly exported feedback would otherwise go unnoticed. The
    generator is a pure function of its parameters, so DVC's own check is enough for it.
    """
    if source.kind != "generator":
        return True
    feedback = Path(source.feedback.path) if source.feedback.path else None
    if feedback is None:
        return False
    return (feedback if feedback.is_absolute() else base_dir / feedback).is_file()


def _read_base(source: IngestParams, base_dir: Path, timeout_s: float) -> pd.DataFrame:
    if source.kind == "generator":
        return generate_customers(source.generator.n_rows, source.generator.seed)
    if source.kind == "file":
        path = Path(source.path or "")
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise IngestError(f"ingest.path {path} does not exist")
        return _read_table(path.read_bytes(), path.name)
    if source.kind == "url":
        url = source.url or ""
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
        return _read_table(response.content, url.split("?")[0])
    return _read_sql(source.sql.url or "", source.sql.query or "")


def append_feedback(frame: pd.DataFrame, feedback: FeedbackSource, base_dir: Path) -> pd.DataFrame:
    """Append newly labelled traffic (``ingest.feedback``) to the source's rows, if there is any.

    The newest ``feedback.max_rows`` rows are kept. Only the source's columns are taken, and a
    column the source holds as text (the Telco ``TotalCharges``) gets the feedback's numbers as
    text too, so the snapshot has one type per column; validation parses both alike. Without the
    file (no retrain has exported traffic yet) the frame is returned unchanged.

    Raises:
        IngestError: when the feedback file lacks one of the source's columns.
    """
    if not feedback.path:
        return frame
    path = Path(feedback.path)
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        return frame
    extra = pd.read_parquet(path).tail(feedback.max_rows)
    if extra.empty:
        return frame
    missing = [c for c in frame.columns if c not in extra.columns]
    if missing:
        raise IngestError(f"feedback file {path} lacks the source's columns {missing}")
    extra = extra[list(frame.columns)].copy()
    for name in frame.columns:
        if frame[name].dtype == object and extra[name].dtype != object:
            extra[name] = extra[name].astype(str).where(extra[name].notna(), " ")
    log.info("feedback: appending %d labelled rows from %s", len(extra), path)
    return pd.concat([frame, extra], ignore_index=True)


def _read_table(content: bytes, name: str) -> pd.DataFrame:
    """Parse CSV or Parquet bytes. CSV cells are kept as text where pandas cannot infer numbers,
    so quirks such as blank numbers reach validation instead of being guessed at here."""
    if name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(io.BytesIO(content))
    return pd.read_csv(io.BytesIO(content), keep_default_na=False, na_values=[""])


def _read_sql(url: str, query: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(text(query), conn)
    except SQLAlchemyError as exc:
        raise IngestError(f"the SQL source failed: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()


def write_snapshot(frame: pd.DataFrame, path: Path) -> Path:
    """Write the raw snapshot as Parquet, read-only, replacing any earlier snapshot.

    Earlier snapshots are not lost: DVC keeps every version in its content-addressed cache and
    remote, and ``dvc.lock`` records which one each run used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.chmod(0o444)
    if path.exists():
        path.chmod(0o644)
    tmp.replace(path)
    log.info("raw snapshot: %d rows x %d columns -> %s", len(frame), frame.shape[1], path)
    return path
