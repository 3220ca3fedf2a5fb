"""Ingestion: read raw customers from the source named in ``params.yaml`` into a raw snapshot."""

from __future__ import annotations

import codecs
import csv
import glob
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.config.errors import DataError
from churn.config.layout import clear
from churn.config.params import FeedbackSource, IngestParams
from churn.data.generator import generate_part, part_sizes

log = logging.getLogger(__name__)

SEPARATORS = (",", ";", "\t", "|")
PART_SUFFIXES = (".parquet", ".pq", ".csv")  # the files of a directory named in ingest.path
# Byte-order marks, longest first (UTF-32 LE's starts with UTF-16 LE's): the codec named reads
# the mark and the byte order itself.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# A legacy encoding's guess (charset-normalizer): its text this clean (the share of odd
# characters), and rivals as clean whose language fits within the margin (detect_encoding).
MAX_CHAOS = 0.1
COHERENCE_MARGIN = 0.1
# sample_files reads Parquet this many rows at a time, CSV in blocks of this many bytes.
SAMPLE_CHUNK_ROWS = 100_000
CSV_BLOCK_BYTES = 16 << 20


class IngestError(DataError):
    """The source could not be read (missing or empty file, unreachable URL, failing query)."""


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: what ``ingest.sep``, ``encoding`` and ``decimal`` say.

    ``encoding_how`` says how the encoding was found; ``confident`` is False when it is only a
    guess among others that read the bytes as well (``detect_encoding``).
    """

    sep: str
    encoding: str
    decimal: str
    encoding_how: str = "given"
    confident: bool = True


def detect_encoding(sample: bytes) -> tuple[str, str, bool]:
    """``(encoding, how it was found, confident)`` for the first bytes of a text file.

    In order: a byte-order mark (UTF-8, UTF-16, UTF-32: certain); valid UTF-8 (ASCII included:
    other encodings' non-ASCII bytes are almost never valid UTF-8); else charset-normalizer's
    readings. Among the cleanest (``MAX_CHAOS``: the share of odd characters) and most plausible
    ones (their language fit within ``COHERENCE_MARGIN`` of the best), ``cp1252`` is taken when it
    is one of them (the Western legacy encoding: charset-normalizer may rank cp1250 first for the
    same French file), else the first. Confident: one text among them, or the cp1252 choice (the
    others are named in ``how``). Not confident: the Japanese bytes that Shift-JIS and the Korean
    cp949 read equally well, or text that no encoding reads cleanly.
    """
    for bom, encoding in BOMS:
        if sample.startswith(bom):
            return encoding, "byte-order mark", True
    if _decodes(sample, "utf-8"):
        return "utf-8", "valid UTF-8", True
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return "latin-1", "no encoding reads it cleanly", False
    best = matches[0]
    clean = [m for m in matches if m.chaos <= best.chaos + 0.01]
    top = max(m.coherence for m in clean)
    leaders = [m for m in clean if m.coherence >= top - COHERENCE_MARGIN]
    western = _text(sample, "cp1252") if _decodes(sample, "cp1252") else None
    chosen = next((m for m in leaders if str(m) == western), None)
    encoding = "cp1252" if chosen is not None else leaders[0].encoding
    chosen = chosen or leaders[0]
    rivals = [m for m in leaders if str(m) != str(chosen)]
    how = "guessed by charset-normalizer"
    others = ", ".join(dict.fromkeys(m.encoding for m in rivals[:4]))
    if best.chaos > MAX_CHAOS:
        return encoding, f"{how}, but {best.chaos:.0%} of its characters look wrong", False
    if rivals and encoding != "cp1252":
        return encoding, f"{how}; {others} read it as plausibly", False
    if rivals:
        return encoding, f"{how}, the Western default; also readable as {others}", True
    return encoding, how, True


def _text(sample: bytes, encoding: str) -> str:
    return sample.decode(encoding, errors="ignore")


def detect_csv_format(content: bytes, encoding: str | None = None) -> CsvFormat:
    """The separator, encoding and decimal mark of CSV bytes, from their first lines.

    The encoding is ``detect_encoding``'s, on the first 64 KiB (cut at the last line end). The
    separator is the one of ``SEPARATORS`` that splits the first lines into the most fields, the
    same number on each line. The decimal mark is ``,`` only when the separator is not a comma
    and numbers such as ``12,5`` occur. With ``encoding``, the bytes are read as that encoding.
    """
    sample = content[:65536]
    if len(sample) < len(content) and not sample.startswith(tuple(b for b, _ in BOMS)):
        # A multi-byte character cut at the end would rule its encoding out.
        sample = sample[: sample.rfind(b"\n") + 1] or sample
    how, confident = "given", True
    if encoding is None:
        encoding, how, confident = detect_encoding(sample)
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
    return CsvFormat(best, encoding, decimal, encoding_how=how, confident=confident)


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
        with _csv_errors(name, source, sep, detected):
            frame = pd.read_csv(io.BytesIO(content), **_csv_options(source, sep))
        _check_columns(frame, name, sep, detected)
    if frame.empty:
        raise IngestError(
            f"{name} holds only a header ({frame.shape[1]} columns: "
            f"{list(frame.columns)[:8]}...), no rows"
            if frame.shape[1]
            else f"{name} is empty: no columns, no rows"
        )
    return frame


def _csv_options(source: IngestParams, sep: str) -> dict[str, Any]:
    """How ``read_csv`` reads a source's CSV: blank cells missing, every other text as it is."""
    return {
        "sep": sep,
        "encoding": source.encoding,
        "decimal": source.decimal,
        "keep_default_na": False,
        "na_values": [""],
    }


@contextmanager
def _csv_errors(name: str, source: IngestParams, sep: str, detected: CsvFormat) -> Iterator[None]:
    """A file that does not decode or parse as configured, named with what it looks like."""
    try:
        yield
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


def _check_columns(frame: pd.DataFrame, name: str, sep: str, detected: CsvFormat) -> None:
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


@dataclass(frozen=True)
class Sample:
    """Rows of a source's files read in chunks: all of them, or a seeded uniform sample."""

    frame: pd.DataFrame  # the rows kept, in file order (index 0..n-1)
    positions: np.ndarray  # each kept row's position among all the rows read (0-based)
    total_rows: int  # the rows of every file

    @property
    def sampled(self) -> bool:
        return len(self.frame) < self.total_rows


def sample_files(
    files: list[Path],
    source: IngestParams,
    sample_rows: int | None,
    *,
    seed: int = 0,
    chunk_rows: int = SAMPLE_CHUNK_ROWS,
    progress: Callable[[int, int, int], None] | None = None,
) -> Sample:
    """Read the files in chunks of ``chunk_rows``, keeping every row or a uniform sample.

    The sample is exact and seeded: each row draws a random key (``numpy``'s generator from
    ``seed``) and the ``sample_rows`` smallest keys are kept, so every row is as likely to be
    kept wherever it is in the files, and memory holds the sample and one chunk. CSV cells are read
    as text (Arrow's CSV reader) and the sample is parsed again by pandas as a whole, so its
    column types are those a full read of the same rows gives (a chunk without a blank cell
    cannot turn a text column into numbers).

    Args:
        files: the data files (CSV or Parquet), read in this order; the same columns each.
        source: the ``ingest`` block (separator, encoding, decimal mark of the CSV files).
        sample_rows: rows to keep; None or 0 keeps every row.
        seed: the sample's seed.
        chunk_rows: rows read at a time from a Parquet file (CSV: ``CSV_BLOCK_BYTES``).
        progress: called after each chunk with (bytes read, bytes in all files, rows read).

    Raises:
        IngestError: as :func:`read_table` (empty file, header only, one column, does not
            decode or parse), or files whose columns differ.
    """
    sizes = [path.stat().st_size for path in files]
    total_bytes, done_bytes = sum(sizes), 0
    rng = np.random.default_rng(seed)
    # The reservoir: Arrow tables and their keys and positions, compacted to the sample_rows
    # smallest keys when they hold twice as many rows (few compactions, no pandas row per cell).
    tables: list[pa.Table] = []
    keys: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    held = 0
    threshold = np.inf  # the largest key kept once the sample is full
    total = 0
    columns: list[str] | None = None
    any_csv = False

    def compact() -> None:
        nonlocal held, threshold
        table = pa.concat_tables(tables, promote_options="permissive")
        drawn, at = np.concatenate(keys), np.concatenate(positions)
        if sample_rows and held > sample_rows:
            keep = np.sort(np.argpartition(drawn, sample_rows - 1)[:sample_rows])
            table, drawn, at = table.take(pa.array(keep)), drawn[keep], at[keep]
            threshold = float(drawn.max())
        tables[:], keys[:], positions[:] = [table], [drawn], [at]
        held = table.num_rows

    for path, size in zip(files, sizes, strict=True):
        rows = 0
        for table, read_bytes in _file_chunks(path, source, chunk_rows):
            any_csv = any_csv or not _is_parquet(path)
            if columns is None:
                columns = list(table.column_names)
            elif list(table.column_names) != columns:
                extra = sorted(set(table.column_names) - set(columns))
                lacking = sorted(set(columns) - set(table.column_names))
                raise IngestError(
                    f"{path} does not have the columns of {files[0]} (extra {extra}, lacking "
                    f"{lacking}, or another order): files of one source must have the same shape"
                )
            n = table.num_rows
            rows += n
            at = np.arange(total, total + n, dtype=np.int64)
            total += n
            drawn = rng.random(n) if sample_rows else np.zeros(n)
            if sample_rows and threshold < np.inf:
                take = drawn < threshold  # most rows of a large file: dropped here, in Arrow
                table, drawn, at = table.filter(pa.array(take)), drawn[take], at[take]
            tables.append(table)
            keys.append(drawn)
            positions.append(at)
            held += table.num_rows
            if sample_rows and held > 2 * sample_rows:
                compact()
            if progress is not None:
                progress(done_bytes + min(read_bytes, size), total_bytes, total)
        if rows == 0:
            raise IngestError(f"{path} holds only a header ({len(columns or [])} columns), no rows")
        done_bytes += size
        if progress is not None:
            progress(done_bytes, total_bytes, total)
    assert columns is not None
    compact()
    kept = tables[0].to_pandas()
    if any_csv and not kept.empty:
        # Types as a full read of these rows infers them (chunks were read as text).
        buffer = io.StringIO()
        sep = source.sep or ","
        kept.to_csv(buffer, index=False, sep=sep)
        buffer.seek(0)
        options = {**_csv_options(source, sep), "encoding": None}
        kept = pd.read_csv(buffer, **options)
        kept.columns = columns  # as the file names them (a repeated name stays as read)
    return Sample(kept, positions[0], total)


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith((".parquet", ".pq"))


def _file_chunks(
    path: Path, source: IngestParams, chunk_rows: int
) -> Iterator[tuple[pa.Table, int]]:
    """``(chunk, bytes read so far)`` of one file, as Arrow tables; CSV cells as text (blank
    cells missing), parsed by Arrow's CSV reader (no Python object per cell: a 1 GB file is
    parsed in seconds, and only the rows a sample keeps become pandas rows)."""
    if _is_parquet(path):
        parquet = pq.ParquetFile(path)
        rows, size = max(parquet.metadata.num_rows, 1), path.stat().st_size
        done = 0
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            done += batch.num_rows
            yield pa.Table.from_batches([batch]), int(size * done / rows)
        return
    import pyarrow.csv as pacsv

    with path.open("rb") as handle:
        head = handle.read(65537)
        if not head.strip():
            raise IngestError(f"{path} is empty: no header, no rows")
        detected = detect_csv_format(head, encoding=source.encoding)
        sep = source.sep or detected.sep
        name = str(path)
        # The header from the head's whole lines (a character cut at its end is no error).
        text = codecs.getincrementaldecoder(source.encoding)(errors="ignore").decode(head)
        text = text[: text.rfind("\n") + 1] or text
        with _csv_errors(name, source, sep, detected):
            options = {**_csv_options(source, sep), "encoding": None}
            header = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), **options, nrows=0)
        _check_columns(header, name, sep, detected)
        names = [str(c) for c in header.columns]  # as pandas names them (a repeat: "a.1")
        handle.seek(0)
        utf8 = codecs.lookup(source.encoding).name == "utf-8"
        read = pacsv.ReadOptions(
            encoding="utf8" if utf8 else source.encoding,
            column_names=names,
            skip_rows=1,
            block_size=CSV_BLOCK_BYTES,
        )
        parse = pacsv.ParseOptions(delimiter=sep, newlines_in_values=True)
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), null_values=[""]
        )
        try:
            reader = pacsv.open_csv(
                handle, read_options=read, parse_options=parse, convert_options=convert
            )
            # Arrow reads ahead: the bytes parsed are estimated from the rows (the head's
            # bytes per line), which the file position bounds.
            per_row = len(head) / max(head.count(b"\n"), 1)
            rows = 0
            for batch in reader:
                rows += batch.num_rows
                yield pa.Table.from_batches([batch]), min(int(rows * per_row), handle.tell())
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            text = str(exc).splitlines()[0][:300]
            if isinstance(exc, UnicodeDecodeError) or "UTF8" in text or "decode" in text:
                raise IngestError(
                    f"{name} is not {source.encoding} text ({text}); set ingest.encoding "
                    f"(it looks like {detected.encoding})"
                ) from exc
            raise IngestError(
                f"{name} does not parse with ingest.sep {sep!r}: {text}; it looks "
                f"{detected.sep!r}-separated"
            ) from exc


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
