"""Ingestion: read raw customers from the source named in ``params.yaml`` into a raw snapshot."""

from __future__ import annotations

import csv
import glob
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from churn.config.errors import DataError
from churn.config.layout import clear
from churn.config.params import FeedbackSource, IngestParams
from churn.data.generator import generate_part, part_sizes

log = logging.getLogger(__name__)

SEPARATORS = (",", ";", "\t", "|")
PART_SUFFIXES = (".parquet", ".pq", ".csv")  # the files of a directory named in ingest.path
ENCODINGS = ("utf-8", "cp1252", "latin-1")  # latin-1 decodes any bytes: the last resort


class IngestError(DataError):
    """The source could not be read (missing or empty file, unreachable URL, failing query)."""


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: what ``ingest.sep``, ``encoding`` and ``decimal`` say."""

    sep: str
    encoding: str
    decimal: str


def detect_csv_format(content: bytes) -> CsvFormat:
    """The separator, encoding and decimal mark of CSV bytes, from their first lines.

    The encoding is the first of ``ENCODINGS`` that decodes the sample (a UTF-8 byte-order mark is
    dropped by ``utf-8``'s reader anyway). The separator is the one of ``SEPARATORS`` that splits
    the first lines into the most fields, the same number on each line. The decimal mark is
    ``,`` only when the separator is not a comma and numbers such as ``12,5`` occur.
    """
    sample = content[:65536]
    encoding = next(e for e in ENCODINGS if _decodes(sample, e))
    text = sample.decode(encoding, errors="ignore").lstrip("\ufeff")
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(sample) < len(content) and len(lines) > 1:
        lines = lines[:-1]  # the sample may end in the middle of a line
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        counts = {len(row) for row in csv.reader(lines, delimiter=sep)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    decimal = "."
    if best != ",":
        cells = [cell for row in csv.reader(lines[1:], delimiter=best) for cell in row]
        if any(_is_decimal_comma(cell) for cell in cells):
            decimal = ","
    return CsvFormat(sep=best, encoding=encoding, decimal=decimal)


def _decodes(sample: bytes, encoding: str) -> bool:
    try:
        sample.decode(encoding)
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sample's end is not a decoding failure.
        return encoding == "utf-8" and exc.start >= len(sample) - 3
    return True


def _is_decimal_comma(cell: str) -> bool:
    head, comma, tail = cell.strip().partition(",")
    return bool(comma) and head.lstrip("-").isdigit() and tail.isdigit()


def read_source(
    source: IngestParams,
    *,
    base_dir: Path,
    timeout_s: float = 60.0,
    partition_rows: int | None = None,
) -> pd.DataFrame:
    """Read the raw customers frame from the configured source, as it is (no cleaning).

    Args:
        source: the ``ingest`` block of ``params.yaml``.
        base_dir: folder that relative file paths are resolved against (the project root).
        timeout_s: HTTP timeout for ``kind: url``.
        partition_rows: the generator draws its rows in parts of this size
            (``engine.partition_rows``; ``generate_part``), the same parts the dask engine
            writes, so that both engines see the same rows. None: one part.

    Raises:
        IngestError: with the source named, when it cannot be read.
    """
    try:
        frame = _read_base(source, base_dir, timeout_s, partition_rows)
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


def _read_base(
    source: IngestParams, base_dir: Path, timeout_s: float, partition_rows: int | None
) -> pd.DataFrame:
    if source.kind == "generator":
        n, seed = source.generator.n_rows, source.generator.seed
        per_part = partition_rows or n
        parts = [generate_part(n, seed, i, per_part) for i in range(len(part_sizes(n, per_part)))]
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    if source.kind == "file":
        return read_files(source_files(source, base_dir), source)
    if source.kind == "url":
        url = source.url or ""
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
        return read_table(response.content, url.split("?")[0], source)
    return _read_sql(source.sql.url or "", source.sql.query or "")


def source_files(source: IngestParams, base_dir: Path) -> list[Path]:
    """The files ``ingest.path`` names, globs expanded (sorted), relative ones under ``base_dir``.

    A directory stands for its Parquet and CSV files (``PART_SUFFIXES``, sorted): a data set
    written in parts (``part-00000.parquet``...) is named by its folder.

    Raises:
        IngestError: when an entry names no existing file, or a directory without parts.
    """
    files: list[Path] = []
    for entry in source.paths:
        pattern = entry if Path(entry).is_absolute() else str(base_dir / entry)
        if Path(pattern).is_dir():
            parts = sorted(p for p in Path(pattern).iterdir() if p.suffix.lower() in PART_SUFFIXES)
            if not parts:
                raise IngestError(
                    f"ingest.path {entry!r} is a directory without Parquet or CSV files "
                    f"({', '.join(PART_SUFFIXES)})"
                )
            files.extend(parts)
            continue
        # glob.glob, not Path.glob: the pattern may be absolute.
        matches = sorted(glob.glob(pattern)) if glob.has_magic(entry) else [pattern]  # noqa: PTH207
        found = [Path(m) for m in matches if Path(m).is_file()]
        if not found and glob.has_magic(entry):
            raise IngestError(f"ingest.path {entry!r} matches no file (looked for {pattern})")
        if not found:
            raise IngestError(f"ingest.path {pattern} does not exist")
        files.extend(found)
    return files


def read_files(files: list[Path], source: IngestParams) -> pd.DataFrame:
    """Read several files of the same shape into one frame, in order.

    Raises:
        IngestError: naming the file whose columns differ from the first file's.
    """
    frames = [read_table(path.read_bytes(), str(path), source) for path in files]
    first = list(frames[0].columns)
    for path, frame in zip(files[1:], frames[1:], strict=True):
        if list(frame.columns) != first:
            extra = sorted(set(frame.columns) - set(first))
            lacking = sorted(set(first) - set(frame.columns))
            raise IngestError(
                f"{path} does not have the columns of {files[0]} (extra {extra}, lacking "
                f"{lacking}, or another order): files of one source must have the same shape"
            )
    if len(frames) > 1:
        log.info("read %d files: %s", len(files), ", ".join(str(p) for p in files))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def append_feedback(frame: pd.DataFrame, feedback: FeedbackSource, base_dir: Path) -> pd.DataFrame:
    """Append newly labelled traffic (``ingest.feedback``) to the source's rows, if there is any.

    The newest ``feedback.max_rows`` rows are kept. Only the source's columns are taken, and a
    column the source holds as text (the Telco ``TotalCharges``) gets the feedback's numbers as
    text too, so the snapshot has one type per column; validation parses both alike. Without the
    file (no retrain has exported traffic yet) the frame is returned unchanged.

    A feedback file that lacks one of the source's columns holds another data set's traffic
    (``make monitor`` ran on the previous data set): it is set aside with one WARNING line and
    the source's rows are returned unchanged; the next ``make monitor`` rewrites it with this
    data set's labelled traffic.
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
        log.warning(
            "feedback file %s lacks the source's columns %s: it holds another data set's "
            "traffic, set aside (not appended); the next `make monitor` rewrites it for this one",
            path,
            missing,
        )
        return frame
    extra = extra[list(frame.columns)].copy()
    for name in frame.columns:
        if frame[name].dtype == object and extra[name].dtype != object:
            extra[name] = extra[name].astype(str).where(extra[name].notna(), " ")
    log.info("feedback: appending %d labelled rows from %s", len(extra), path)
    return pd.concat([frame, extra], ignore_index=True)


def read_table(content: bytes, name: str, source: IngestParams) -> pd.DataFrame:
    """Parse CSV or Parquet bytes. CSV cells are kept as text where pandas cannot infer numbers,
    so quirks such as blank numbers reach validation instead of being guessed at here.

    Raises:
        IngestError: when the file is empty, holds only a header, or parses to one column (the
            message names the separator it probably has).
    """
    if name.lower().endswith((".parquet", ".pq")):
        frame = pd.read_parquet(io.BytesIO(content))
    else:
        if not content.strip():
            raise IngestError(f"{name} is empty: no header, no rows")
        detected = detect_csv_format(content)
        sep = source.sep or detected.sep
        try:
            frame = pd.read_csv(
                io.BytesIO(content),
                sep=sep,
                encoding=source.encoding,
                decimal=source.decimal,
                keep_default_na=False,
                na_values=[""],
            )
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"{name} is not {source.encoding} text ({exc.reason} at byte {exc.start}); "
                f"set ingest.encoding (it looks like {detected.encoding})"
            ) from exc
        except pd.errors.ParserError as exc:
            raise IngestError(
                f"{name} does not parse with ingest.sep {sep!r}: {exc}; it looks "
                f"{detected.sep!r}-separated"
            ) from exc
        if frame.shape[1] == 1:
            header = str(frame.columns[0])[:80]
            hint = (
                f"it is probably {detected.sep!r}-separated: set ingest.sep: {detected.sep!r}"
                if detected.sep != sep
                else "no separator among , ; tab | splits it either: a churn data set needs "
                "a label and at least one feature column"
            )
            raise IngestError(
                f"{name} parses to one column with separator {sep!r} (header {header!r}); {hint}"
            )
    if frame.empty:
        raise IngestError(
            f"{name} holds only a header ({frame.shape[1]} columns: "
            f"{list(frame.columns)[:8]}...), no rows"
            if frame.shape[1]
            else f"{name} is empty: no columns, no rows"
        )
    return frame


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
    clear(path)  # a file, or the directory of parts the dask engine wrote
    tmp.replace(path)
    log.info("raw snapshot: %d rows x %d columns -> %s", len(frame), frame.shape[1], path)
    return path
