"""Batch scoring: a CSV or Parquet file scored in chunks by the same champion as the service."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from churn.config.layout import staged
from churn.config.params import Params, load_params
from churn.config.settings import Settings
from churn.data.parts import input_parts
from churn.engine import plugin
from churn.models import explainer_for
from churn.scoring import CompiledScorer, UnseenLevels
from churn.scoring.explain import Explainer, NotExplainable
from serving.model import ServedModel, load_initial
from serving.schemas import batch_columns

log = logging.getLogger(__name__)
console = Console(stderr=True)

# A cell a spreadsheet would run as a formula (OWASP, "CSV Injection"): text starting with one of
# these. In CSV output such text cells get a leading ``'`` (``neutralise_cells``).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class BatchSummary:
    """What a batch run did."""

    rows: int
    seconds: float
    model_version: str
    source: str
    unseen: dict[str, int]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


def read_chunks(
    path: Path, columns: list[str], chunk_rows: int, categorical: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The input file in chunks of ``chunk_rows``, only the columns needed.

    Parquet string columns named in ``categorical`` are read dictionary-encoded (pandas
    categoricals), so mapping them to levels costs a few codes, not a million strings.
    """
    if path.suffix.lower() in (".parquet", ".pq"):
        pf = pq.ParquetFile(path, read_dictionary=categorical or [])
        wanted = [c for c in pf.schema_arrow.names if c in set(columns)]
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=wanted):
            yield batch.to_pandas()
    elif path.suffix.lower() == ".csv":
        yield from pd.read_csv(
            path,
            usecols=lambda c: c in set(columns),
            chunksize=chunk_rows,
            dtype=dict.fromkeys(columns, "string"),  # parsed per column below
            keep_default_na=False,
        )
    else:
        raise ValueError(f"{path}: expected a .csv or .parquet file")


def _columns(chunk: pd.DataFrame, params: Params) -> dict[str, np.ndarray | pd.Series]:
    """Raw feature columns with the API's types: numbers as floats (blank = missing)."""
    ds = params.dataset
    missing = [c for c in ds.feature_columns if c not in chunk]
    if missing:
        raise ValueError(f"input lacks feature columns {missing}")
    cols: dict[str, np.ndarray | pd.Series] = {}
    # Categorical columns stay pandas categoricals when the file had them (see read_chunks).
    for c in ds.numeric:
        col = chunk[c]
        if col.dtype.kind not in "iuf":
            col = pd.to_numeric(col, errors="coerce")
        cols[c] = col.to_numpy(np.float64, na_value=np.nan)
    for c, levels in ds.categorical.items():
        col = chunk[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cols[c] = col
            continue
        if all(isinstance(level, int) for level in levels) and col.dtype.kind not in "iuf":
            col = pd.to_numeric(col, errors="coerce")
        if col.dtype.kind == "f" and all(isinstance(level, int) for level in levels):
            col = col.astype("Int64")
        cols[c] = col.to_numpy(dtype=object)
    return cols


def score_file(
    settings: Settings,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    model: ServedModel | None = None,
    progress: bool = True,
    explain_top_k: int | None = None,
    raw_cells: bool = False,
) -> BatchSummary:
    """Score every row of ``input_path`` into ``output_path`` (CSV or Parquet by extension).

    The output holds the id column (when present) and :data:`serving.schemas.BATCH_COLUMNS`
    (``churn_probability``, ``churn``, ``model_version``: ``Prediction``'s fields, as
    ``/predict`` names them), in input order. With ``explain_top_k``, also the reasons of each score
    (``churn.scoring.explain``): ``reason_up_1..k`` and ``reason_down_1..k``, each
    ``"Contract = Month-to-month: +0.21"`` (log-odds before calibration), empty when a row has
    fewer reasons that way.

    In CSV output, text cells a spreadsheet would run as a formula (an id ``=HYPERLINK(...)``,
    ``+cmd|...``, ``-123``: ``FORMULA_STARTS``) get a leading ``'`` unless ``raw_cells``
    (``neutralise_cells``), and every text cell is double-quoted (OWASP's two rules; a CR in a
    cell then stays in its row); numbers are written as they are, and Parquet output (typed
    columns, no formulas) is never changed.

    Raises:
        ValueError: a file that is not CSV or Parquet, lacks feature columns or has no rows;
            nothing this project can run (a swap check refused the champion, no rules);
            with ``explain_top_k``, a model that cannot be explained (nothing is written).
    """
    params = load_params(settings.params_path)
    model = servable(model or load_initial(settings, params))
    ds = params.dataset
    explainer: Explainer | None = None
    if explain_top_k is not None:
        try:
            explainer = explainer_for(model.scorer, ds)
        except NotExplainable as exc:
            raise ValueError(
                f"--explain: v{model.version} ({model.source}) cannot be explained: {exc}; "
                "score without --explain"
            ) from None
    wanted = [*([ds.id_column] if ds.id_column else []), *ds.feature_columns]
    unseen_levels = UnseenLevels(ds)
    unseen: dict[str, int] = {}
    total = _count_rows(input_path)
    writer: pq.ParquetWriter | None = None
    parquet_out = output_path.suffix.lower() in (".parquet", ".pq")
    if not parquet_out and output_path.suffix.lower() != ".csv":
        raise ValueError(f"{output_path}: expected a .csv or .parquet file")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".partial")
    tmp.unlink(missing_ok=True)
    rows = 0
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeRemainingColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            task = bar.add_task("score", total=total)
            text_levels = [
                c for c, levels in ds.categorical.items() if all(isinstance(x, str) for x in levels)
            ]

            def write(
                ids: np.ndarray | None, proba: np.ndarray, reasons: dict[str, list[str]]
            ) -> None:
                nonlocal writer
                out = _output(ids, proba, model, params, reasons)
                if parquet_out:
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                else:
                    # Text cells quoted: a CR inside one (which pandas' writer leaves bare)
                    # stays in its row for every reader.
                    out = out if raw_cells else neutralise_cells(out)
                    out.to_csv(
                        tmp,
                        mode="a",
                        header=not tmp.exists(),
                        index=False,
                        quoting=csv.QUOTE_NONNUMERIC,
                    )
                bar.advance(task, len(out))

            # Two-stage pipeline: the booster (which releases the GIL) scores chunk k in a worker
            # thread while this thread reads and encodes chunk k+1 and writes chunk k-1.
            pending: tuple[np.ndarray | None, Future[np.ndarray], dict[str, list[str]]] | None
            pending = None
            with ThreadPoolExecutor(1, thread_name_prefix="batch-score") as pool:
                for chunk in read_chunks(input_path, wanted, chunk_rows, text_levels):
                    n = len(chunk)
                    cols = _columns(chunk, params)
                    X = None
                    if isinstance(model.scorer, CompiledScorer):
                        X = model.scorer.encode(cols, n)
                        future = pool.submit(model.scorer.predict, X)
                    else:
                        future = pool.submit(model.scorer.score, cols, n)
                    reasons: dict[str, list[str]] = {}
                    if explainer is not None and explain_top_k is not None:
                        reasons = explainer.explain(cols, n, X).texts(explain_top_k)
                    _count_unseen(unseen, unseen_levels, cols, n)
                    if pending is not None:
                        write(pending[0], pending[1].result(), pending[2])
                    pending = (_ids(chunk, params), future, reasons)
                    rows += n
                if pending is not None:
                    write(pending[0], pending[1].result(), pending[2])
    except BaseException:
        # No half-written output and no open file handle left behind.
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    if rows == 0:
        raise ValueError(f"{input_path} has no rows")
    tmp.replace(output_path)  # the output appears whole or not at all
    return BatchSummary(rows, time.perf_counter() - started, model.version, model.source, unseen)


def neutralise_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each text cell that starts with ``FORMULA_STARTS`` prefixed by ``'``.

    The OWASP rule for CSV files opened in a spreadsheet: ``=HYPERLINK(...)`` or ``+cmd|...``
    becomes text the spreadsheet shows instead of a formula it runs. A text id such as ``-123``
    gets the prefix too (a spreadsheet would read a number); numeric columns (the scores) are
    left alone. The frame given is not changed.
    """
    out = frame
    for name in frame.columns:
        column = frame[name]
        if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
            continue
        text = column.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        if text.any():
            out = out.copy() if out is frame else out
            out[name] = column.mask(text, "'" + column[text].astype(str))
    return out


def _ids(chunk: pd.DataFrame, params: Params) -> np.ndarray | None:
    id_column = params.dataset.id_column
    return chunk[id_column].to_numpy() if id_column and id_column in chunk else None


def _count_unseen(
    unseen: dict[str, int], levels: UnseenLevels, cols: dict[str, np.ndarray | pd.Series], n: int
) -> None:
    for c, mask in levels.masks(cols, n).items():
        unseen[c] = unseen.get(c, 0) + int(mask.sum())


def _output(
    ids: np.ndarray | None,
    proba: np.ndarray,
    model: ServedModel,
    params: Params,
    reasons: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """The scored rows: id (when the data has one), score, decision, model version (and the
    reasons' columns with --explain)."""
    out = pd.DataFrame(
        {**batch_columns(proba, proba >= model.threshold, model.version), **(reasons or {})}
    )
    if ids is not None and params.dataset.id_column:
        out.insert(0, params.dataset.id_column, ids)
    return out


def score_frame(
    chunk: pd.DataFrame, model: ServedModel, params: Params
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One frame scored: ``(output rows, unseen-level counts per column)``.

    The same steps :func:`score_file` runs on each chunk (there pipelined over two threads); the
    plug-in engines run this on each partition (:func:`score_partitioned`).
    """
    n = len(chunk)
    cols = _columns(chunk, params)
    if isinstance(model.scorer, CompiledScorer):
        proba = model.scorer.predict(model.scorer.encode(cols, n))
    else:
        proba = model.scorer.score(cols, n)
    unseen: dict[str, int] = {}
    _count_unseen(unseen, UnseenLevels(params.dataset), cols, n)
    return _output(_ids(chunk, params), proba, model, params), unseen


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() in (".parquet", ".pq"):
        return int(pq.ParquetFile(path).metadata.num_rows)
    return None


def _score_part(
    part: pd.DataFrame, shared: tuple[ServedModel, Params, list[str], str], index: int
) -> tuple[int, dict[str, int]]:
    """Score one partition into its own Parquet file (runs on a plug-in engine's worker)."""
    model, params, text_levels, folder = shared
    for c in text_levels:  # what read_chunks's dictionary read gives the pandas path
        if c in part and not isinstance(part[c].dtype, pd.CategoricalDtype):
            part[c] = part[c].astype("category")
    out, unseen = score_frame(part.reset_index(drop=True), model, params)
    pq.write_table(
        pa.Table.from_pandas(out, preserve_index=False), f"{folder}/part-{index:05d}.parquet"
    )
    return len(out), unseen


def _columns_of(path: str) -> list[str]:
    """A part's column names, from its Parquet footer or its CSV header."""
    if path.lower().endswith(".csv"):
        return list(pd.read_csv(path, nrows=0).columns)
    return list(pq.read_schema(path).names)


def score_partitioned(
    settings: Settings,
    source: str | Path,
    output_dir: Path,
    *,
    kind: str | None = None,
    model: ServedModel | None = None,
    blocksize: str = "64MiB",
    progress: bool = True,
) -> BatchSummary:
    """A plug-in engine (``kind``, else ``engine.kind``): every part of ``source`` scored on its
    workers into ``output_dir``.

    ``source`` is a Parquet or CSV file, a directory of parts or a glob; each partition is scored
    by :func:`score_frame` (the per-chunk function of :func:`score_file`) with the champion sent
    to each worker once, and written as ``output_dir/part-NNNNN.parquet`` in input order. The
    directory appears whole or not at all; the workers must see both paths (a shared volume).

    Raises:
        ValueError: ``kind`` is not a plug-in engine here or its libraries are not installed
            (``churn.engine.plugin``'s message), the input lacks features or has no rows.
    """
    params = load_params(settings.params_path)
    runner = plugin(kind or params.engine.kind)  # before the model: a missing engine says so
    model = servable(model or load_initial(settings, params))
    ds = params.dataset
    if output_dir.suffix.lower() == ".csv":
        raise ValueError(f"{output_dir}: a plug-in engine writes a directory of Parquet parts")
    files = [str(p) for p in input_parts(source)]
    missing = [c for c in ds.feature_columns if c not in set(_columns_of(files[0]))]
    if missing:
        raise ValueError(f"{source}: input lacks feature columns {missing}")
    wanted = [*([ds.id_column] if ds.id_column else []), *ds.feature_columns]
    text_levels = [
        c for c, levels in ds.categorical.items() if all(isinstance(x, str) for x in levels)
    ]
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The workers write into output_dir.partial; it becomes output_dir when every partition is
    # written (a lost worker's partitions are scored again elsewhere), else it is removed.
    with staged(output_dir) as (tmp,):
        with Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("partitions"),
            TimeRemainingColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            task = bar.add_task("score", total=None)
            results = runner.map_parts(
                settings,
                params.engine,
                files,
                wanted,
                _score_part,
                (model, params, text_levels, str(tmp)),
                blocksize=blocksize,
                categorical=text_levels,  # dictionary-read, as read_chunks does
                on_done=lambda done, total: bar.update(task, completed=done, total=total),
            )
        rows, unseen = 0, dict[str, int]()
        for n, part_unseen in results:
            rows += n
            for c, k in part_unseen.items():
                unseen[c] = unseen.get(c, 0) + k
        if rows == 0:
            raise ValueError(f"{source} has no rows")
    return BatchSummary(rows, time.perf_counter() - started, model.version, model.source, unseen)


def servable(model: ServedModel) -> ServedModel:
    """``model``, unless nothing this project can run was found (``source`` ``none``).

    Raises:
        ValueError: naming why (the refused champion, no rules of this lineage).
    """
    if model.source == "none":
        raise ValueError(f"nothing can score this file: {model.degraded_reason}")
    return model
