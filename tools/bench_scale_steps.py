"""Batch scoring and monitoring at scale, pandas vs dask: wall time and peak memory per step.

``make bench-scale STEPS=scoring`` (``churn bench scale --steps scoring``; ``--steps all`` runs
these after generate, validate, split and train) trains a champion on a throw-away fork, writes
``rows`` customers and the same rows as a window of logged predictions, and measures both steps
on each engine::

    make bench-scale STEPS=scoring ROWS=1000000                  # pandas and dask
    make bench-scale STEPS=scoring ROWS=10000000 ENGINES=dask

Memory is sampled every 50 ms: this process's resident set (``peak_mib``, and ``delta_mib`` above
what it held before the step), and each Dask worker process's (``worker_peak_mib``: the largest
single worker) on the LocalCluster of ``params.yaml``'s ``engine`` block.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from tools.bench_monitor import BENCH_OVERRIDES
from tools.bench_scale import MemorySampler
from tools.bench_scale_bare import (
    Ratio,
    bare_score,
    caption,
    cpu_seconds,
    load,
    one_core,
    per_core_table,
)
from tools.fork import ROOT, fork_project

MiB = 1024 * 1024


def warm_up(client: Any) -> float:
    """Import the scoring and monitoring code on every worker once; returns seconds.

    A worker pays these imports once in its life; the steps are timed without them.
    """
    import importlib

    started = time.perf_counter()
    modules = ("serving.batch", "monitoring.at_scale", "xgboost", "sklearn.pipeline")
    client.run(lambda: [importlib.import_module(m) for m in modules])  # the model's too
    return round(time.perf_counter() - started, 1)


@contextmanager
def measured(figures: dict[str, Any], client: Any = None) -> Iterator[None]:
    """Fill ``figures`` with the block's wall time and peak memory."""
    before = psutil.Process().memory_info().rss
    cpu = cpu_seconds(client)
    started = time.perf_counter()
    with MemorySampler(client) as memory:
        yield
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["cpu_s"] = round(cpu_seconds(client) - cpu, 1)
    figures["peak_mib"] = round(memory.process / MiB)
    figures["delta_mib"] = round((memory.process - before) / MiB)
    if memory.workers:
        figures["worker_peak_mib"] = round(max(memory.workers.values()) / MiB)


def write_data(
    project: Path, folder: Path, rows: int, part_rows: int, seed: int = 11
) -> dict[str, Path]:
    """Customers as Parquet parts (``customers/``), and the same rows as a window of exported
    predictions (``window/``: features and the champion's scores), one part in memory at a time;
    also one single file of customers for the pandas batch path (up to 2M rows)."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from churn.data.generator import generate_customers
    from churn.prediction_store import SCORE_COLUMN
    from serving.batch import score_frame
    from serving.model import load_initial

    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    model = load_initial(settings, params)
    customers, window = folder / "customers", folder / "window"
    customers.mkdir(parents=True)
    window.mkdir(parents=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    single = folder / "customers.parquet" if rows <= 2_000_000 else None
    writer: pq.ParquetWriter | None = None
    for i, start in enumerate(range(0, rows, part_rows)):
        chunk = generate_customers(min(part_rows, rows - start), seed + i, id_prefix=f"b{i}-")
        chunk.to_parquet(customers / f"part-{i:05d}.parquet", index=False)
        if single is not None:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(single, table.schema)
            writer.write_table(table)
        scored, _ = score_frame(chunk, model, params)
        chunk["TotalCharges"] = pd.to_numeric(chunk["TotalCharges"], errors="coerce")
        chunk[SCORE_COLUMN] = scored[SCORE_COLUMN].to_numpy()
        chunk.drop(columns=["Churn"]).to_parquet(window / f"part-{i:05d}.parquet", index=False)
    if writer is not None:
        writer.close()
    out = {"customers": customers, "window": window}
    if single is not None:
        out["single"] = single
    return out


def batch_score_step(
    project: Path, source: Path, output: Path, engine: str, client: Any = None
) -> dict[str, Any]:
    """``churn batch-predict`` on ``engine`` (a single file on pandas, the parts on dask), three
    times: the figures of the run of median wall time, and every run's wall seconds."""
    runs = [_batch_score_once(project, source, output, engine, client) for _ in range(3)]
    chosen = sorted(runs, key=lambda r: r["wall_s"])[1]
    return chosen | {"runs_wall_s": [r["wall_s"] for r in runs]}


def _batch_score_once(
    project: Path, source: Path, output: Path, engine: str, client: Any = None
) -> dict[str, Any]:
    import shutil

    shutil.rmtree(output, ignore_errors=True)
    from churn.config.settings import get_settings
    from serving.batch import score_file, score_partitioned

    settings = get_settings(project_dir=project)
    figures: dict[str, Any] = {"engine": engine}
    with measured(figures, client):
        if engine == "dask":
            summary = score_partitioned(settings, source, output, kind=engine, progress=False)
        else:
            summary = score_file(settings, source, output, progress=False)
    figures["rows"] = summary.rows
    return figures


def monitor_step(project: Path, window: Path, engine: str, client: Any = None) -> dict[str, Any]:
    """The monitoring job's data steps on a Parquet window: read (or count), the champion's
    reference, and the drift checks (Evidently's report included); the decision's figures."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from monitoring import job

    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    params = params.model_copy(update={"engine": params.engine.model_copy(update={"kind": engine})})
    version = job.champion_version(settings)
    assert version is not None
    now = datetime.now(UTC)
    figures: dict[str, Any] = {"engine": engine}
    with tempfile.TemporaryDirectory() as tmp, measured(figures, client):
        current = job.read_window(None, params, now, version, window)  # type: ignore[arg-type]
        reference = job.load_reference(settings, params, version)
        html = Path(tmp) / "data_drift.html"
        if engine == "dask":
            data, current = job.check_data_at_scale(settings, reference, window, params, html)
        else:
            data = job.check_data(reference, current, params, html)
    figures.update(
        rows=current.total_rows,
        rows_judged=data.current_rows,
        evidently_rows=data.evidently_rows or data.current_rows,
        drifted_columns=data.drifted_columns,
    )
    return figures


def bare_batch(project: Path, customers: Path, client: Any) -> float:
    """The bare libraries' batch scoring of the same parts on the same cluster (seconds)."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from serving.model import load_initial

    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    model = load_initial(settings, params)
    ds = params.dataset
    files = sorted(str(p) for p in customers.glob("*.parquet"))
    text = [c for c, levels in ds.categorical.items() if all(isinstance(x, str) for x in levels)]
    pipeline = getattr(model.scorer, "pipeline", None)
    with tempfile.TemporaryDirectory() as tmp:
        return bare_score(
            client, files, ds.feature_columns, text, list(ds.numeric), pipeline, Path(tmp) / "out"
        )


def per_core(results: dict[str, Any], rows: int, workers: int) -> list[Ratio]:
    """Batch scoring and monitoring on dask against the pandas engine on one core (and batch
    scoring against the bare libraries)."""
    ratios = []
    for step, key in (("batch scoring", "batch"), ("monitor", "monitor")):
        dask_run, pandas_run = results.get(f"{key}_dask"), results.get(f"{key}_pandas")
        if dask_run is None:
            continue
        ratios.append(
            Ratio(
                step=step,
                rows=rows,
                workers=workers,
                dask_s=dask_run["wall_s"],
                pandas_s=pandas_run["wall_s"] if pandas_run else None,
                bare_s=results.get(f"{key}_bare_s"),
                dask_cpu_s=dask_run["cpu_s"],
                pandas_cpu_s=pandas_run["cpu_s"] if pandas_run else None,
            )
        )
    return ratios


def run(
    rows: int,
    engines: tuple[str, ...] = ("pandas", "dask"),
    workers: int = 2,
    memory_limit: str = "4GiB",
    part_rows: int = 500_000,
    echo: Callable[..., Any] = print,
) -> dict[str, Any]:
    """Train a champion on a fork, write ``rows`` rows, measure both steps on each engine (the
    dask engine on a LocalCluster of ``workers`` processes of one thread, ``memory_limit`` each)."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from churn.engine import session
    from pipelines.training import training_flow

    results: dict[str, Any] = {"rows": rows, "part_rows": part_rows}
    with tempfile.TemporaryDirectory(prefix="bench-scale-steps-") as tmp:
        cluster = {"workers": workers, "threads_per_worker": 1, "memory_limit": memory_limit}
        project = fork_project(Path(tmp) / "project", BENCH_OVERRIDES | {"engine": cluster})
        training_flow(str(project), push=False)
        started = time.perf_counter()
        data = write_data(project, Path(tmp) / "data", rows, part_rows)
        results["write_data_s"] = round(time.perf_counter() - started, 1)
        echo(f"data written in {results['write_data_s']} s")
        if "pandas" in engines:
            if "single" not in data:
                echo(f"pandas engine skipped: {rows:,} rows are over its single-file bound (2M)")
            else:
                with one_core():  # the yardstick is the pandas engine on ONE core
                    results["batch_pandas"] = batch_score_step(
                        project, data["single"], Path(tmp) / "scores.parquet", "pandas"
                    )
                    echo(f"batch-score pandas: {json.dumps(results['batch_pandas'])}")
                    results["monitor_pandas"] = monitor_step(project, data["window"], "pandas")
                    echo(f"monitor pandas: {json.dumps(results['monitor_pandas'])}")
        if "dask" in engines:
            settings = get_settings(project_dir=project)
            engine = load_params(settings.params_path).engine.model_copy(update={"kind": "dask"})
            results["cluster"] = dict(cluster)
            with session(settings, engine) as client:  # the steps reuse its client
                results["cluster"]["warm_up_s"] = warm_up(client)
                results["batch_dask"] = batch_score_step(
                    project, data["customers"], Path(tmp) / "scores", "dask", client
                )
                echo(f"batch-score dask: {json.dumps(results['batch_dask'])}")
                bare = round(bare_batch(project, data["customers"], client), 1)
                results["batch_bare_s"] = bare
                echo(f"batch-score bare (dask.dataframe + inplace_predict): {bare} s")
                results["monitor_dask"] = monitor_step(project, data["window"], "dask", client)
                echo(f"monitor dask: {json.dumps(results['monitor_dask'])}")
    ratios = per_core(results, rows, workers)
    results["per_core"] = [r.__dict__ for r in ratios]
    results["load_after"] = load()
    out = ROOT / "reports" / f"bench-scale-steps-{rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    echo(caption(workers))
    echo(per_core_table(ratios))
    echo(f"written to {out}")
    return results
