"""Batch scoring: a CSV or Parquet file scored in chunks by the same champion as the service."""

from __future__ import annotations

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

from churn.explain import Explainer, NotExplainable, explainer_for
from churn.params import Params, load_params
from churn.scoring import CompiledScorer, UnseenLevels
from churn.settings import Settings
from serving.model import ServedModel, load_initial

log = logging.getLogger(__name__)
console = Console(stderr=True)


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
) -> BatchSummary:
    """Score every row of ``input_path`` into ``output_path`` (CSV or Parquet by extension).

    The output holds the id column (when present), ``churn_probability``, ``churn`` and
    ``model_version``, in input order. With ``explain_top_k``, also the reasons of each score
    (``churn.explain``): ``reason_up_1..k`` and ``reason_down_1..k``, each
    ``"Contract = Month-to-month: +0.21"`` (log-odds before calibration), empty when a row has
    fewer reasons that way.

    Raises:
        ValueError: a file that is not CSV or Parquet, lacks feature columns or has no rows;
            with ``explain_top_k``, a model that cannot be explained (nothing is written).
    """
    params = load_params(settings.params_path)
    model = model or load_initial(settings, params)
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
                out = pd.DataFrame(
                    {
                        "churn_probability": proba,
                        "churn": proba >= model.threshold,
                        "model_version": model.version,
                        **reasons,
                    }
                )
                if ids is not None and ds.id_column:
                    out.insert(0, ds.id_column, ids)
                if parquet_out:
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                else:
                    out.to_csv(tmp, mode="a", header=not tmp.exists(), index=False)
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
                    for c, mask in unseen_levels.masks(cols, n).items():
                        unseen[c] = unseen.get(c, 0) + int(mask.sum())
                    if pending is not None:
                        write(pending[0], pending[1].result(), pending[2])
                    ids = (
                        chunk[ds.id_column].to_numpy()
                        if ds.id_column and ds.id_column in chunk
                        else None
                    )
                    pending = (ids, future, reasons)
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


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() in (".parquet", ".pq"):
        return int(pq.ParquetFile(path).metadata.num_rows)
    return None
