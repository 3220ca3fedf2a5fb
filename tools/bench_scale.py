"""``churn bench scale``: the training stages on the pandas and dask engines, time and peak memory.

Each engine runs on a throw-away fork (``tools.fork``) with the same parameters; only
``engine.kind`` differs (the split is ``split.method: hash`` on both, so both see the same rows).
The steps are a list of named functions (``STEPS``); each is measured alike: wall time, the peak
resident memory of this process (the pandas engine's only process, the dask engine's client) and,
on the dask engine, the peak of each worker process, sampled every ``SAMPLE_S`` seconds.

The training steps call the flow's stage functions directly (no Prefect, no MLflow registration:
those cost the same on either engine and are not what scales).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tools.bench_scale_bare import Ratio, caption, per_core_table
from tools.fork import ROOT, fork_project

SAMPLE_S = 0.25
MIB = 1024 * 1024


@dataclass
class Bench:
    """What the steps of one engine's run share."""

    engine: str
    rows: int
    project: Path
    client: Any = None  # the distributed client on the dask engine
    state: dict[str, Any] = field(default_factory=dict)  # what a step leaves to the next ones

    @property
    def settings(self) -> Any:
        from churn.config.settings import get_settings

        return get_settings(project_dir=self.project)

    @property
    def params(self) -> Any:
        from churn.config.params import load_params

        return load_params(self.project / "params.yaml")


@dataclass
class StepResult:
    step: str
    engine: str
    rows: int
    seconds: float
    cpu_seconds: float  # this process's, plus every dask worker's on the dask engine
    peak_process_mib: float  # this process: the pandas engine, or the dask engine's client
    peak_worker_mib: dict[str, float] = field(default_factory=dict)  # dask: each worker
    figures: dict[str, Any] = field(default_factory=dict)  # what the step measured (ROC AUC...)

    @property
    def max_worker_mib(self) -> float | None:
        return max(self.peak_worker_mib.values()) if self.peak_worker_mib else None


def _worker_rss() -> int:
    return int(psutil.Process().memory_info().rss)


class MemorySampler:
    """Peak RSS of this process and of each dask worker while a step runs (a sampling thread)."""

    def __init__(self, client: Any = None) -> None:
        self.client = client
        self.process = 0
        self.workers: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        self.process = max(self.process, psutil.Process().memory_info().rss)
        if self.client is not None:
            try:
                for worker, rss in self.client.run(_worker_rss).items():
                    self.workers[worker] = max(self.workers.get(worker, 0), rss)
            except Exception:  # a worker restarting between samples: the next sample has it
                logging.getLogger(__name__).debug("worker memory sample failed", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# ---- the steps: each takes the run's Bench and returns its figures --------------------------


def step_generate(b: Bench) -> dict[str, Any]:
    from churn.data import stages as data_stages

    return {"raw_rows": data_stages.ingest(b.settings, b.params)}


def step_validate(b: Bench) -> dict[str, Any]:
    from churn.data import stages as data_stages

    report = data_stages.validate(b.settings, b.params)
    return {"valid_rows": report.n_valid, "quarantined": report.n_quarantined}


def step_split(b: Bench) -> dict[str, Any]:
    from churn.data import stages as data_stages

    return {"split_rows": data_stages.split(b.settings, b.params)}


def step_train(b: Bench) -> dict[str, Any]:
    """featurize, train (the configured XGBoost and the baseline), evaluate on the test split;
    each part's seconds, and on dask the bare ``xgboost.dask`` training on the same matrix."""
    params = b.params
    times: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        times[f"{name}_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()

    if b.engine != "pandas":
        from churn.dask.train import booster_params, monotone_constraints
        from churn.engine import plugin
        from tools.bench_scale_bare import bare_train

        runner = plugin(b.engine)  # on the session's client (b.client), which it reuses
        features = runner.featurize(b.settings, params)
        lap("featurize")
        trained = runner.train(b.settings, features, params)
        lap("train")
        result = runner.evaluate(features, trained, params)
        lap("evaluate")
        cfg = params.train
        monotone = monotone_constraints(features.sample.feature_names, cfg.monotone)
        native, rounds = booster_params(trained.candidates["xgboost"].params, cfg.seed, monotone)
        times["bare_xgboost_dask_s"] = round(
            bare_train(b.client, features.X["train"], features.y["train"], native, rounds), 1
        )
    else:
        from churn.data import stages as data_stages
        from churn.training import stages as model_stages

        fs = model_stages.featurize(data_stages.load_splits(b.settings), params)
        lap("featurize")
        trained = model_stages.train(fs, params)
        lap("train")
        result = model_stages.evaluate_models(fs, trained, params)
        lap("evaluate")
    b.state["model"] = result.model
    b.state["threshold"] = result.threshold
    return {
        "test_roc_auc": round(result.metrics["test_roc_auc"], 4),
        "baseline_test_roc_auc": round(result.baseline_metrics["baseline_test_roc_auc"], 4),
        **times,
    }


Step = tuple[str, Callable[[Bench], dict[str, Any]]]
# In order; later steps may use what earlier ones left in ``Bench.state`` (the trained model).
STEPS: list[Step] = [
    ("generate", step_generate),
    ("validate", step_validate),
    ("split", step_split),
    ("train", step_train),
]


def measure(name: str, fn: Callable[[Bench], dict[str, Any]], b: Bench) -> StepResult:
    from tools.bench_scale_bare import cpu_seconds

    with MemorySampler(b.client) as mem:
        cpu = cpu_seconds(b.client)
        started = time.perf_counter()
        figures = fn(b)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(b.client) - cpu
    return StepResult(
        step=name,
        engine=b.engine,
        rows=b.rows,
        seconds=round(seconds, 1),
        cpu_seconds=round(cpu, 1),
        peak_process_mib=round(mem.process / MIB),
        peak_worker_mib={w: round(v / MIB) for w, v in sorted(mem.workers.items())},
        figures=figures,
    )


def overrides(engine: str, rows: int, workers: int, memory_limit: str) -> dict[str, Any]:
    return {
        "engine": {
            "kind": engine,
            "workers": workers,
            "threads_per_worker": 1,
            "memory_limit": memory_limit,
            "partition_rows": 500_000,
        },
        "ingest": {"kind": "generator", "generator": {"n_rows": rows, "seed": 42}},
        "split": {"method": "hash"},
        "train": {"search": {"n_trials": 0}},  # one XGBoost fit per engine: what scales
    }


@contextmanager
def _engine(b: Bench, workers: int, memory_limit: str) -> Iterator[None]:
    if b.engine != "dask":
        yield
        return
    from churn.engine import session

    with session(b.settings, b.params.engine) as client:
        b.client = client
        yield


def run_engine(
    engine: str,
    rows: int,
    workers: int = 2,
    memory_limit: str = "5GiB",
    steps: list[Step] | None = None,
    echo: Callable[[str], None] = print,
) -> list[StepResult]:
    """Every step of ``STEPS`` on one engine, in a fork under a temporary folder (removed after)."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-scale-{engine}-"))
    try:
        project = fork_project(folder / "project", overrides(engine, rows, workers, memory_limit))
        b = Bench(engine=engine, rows=rows, project=project)
        results = []
        with _engine(b, workers, memory_limit):
            for name, fn in steps or STEPS:
                echo(f"{engine} {rows:,} rows: {name}...")
                result = measure(name, fn, b)
                echo(f"  {json.dumps(asdict(result))}")
                results.append(result)
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_engine_quietly(
    engine: str, rows: int, workers: int, memory_limit: str
) -> list[StepResult]:
    logging.basicConfig(level=logging.WARNING)
    if engine == "pandas":  # the yardstick is the pandas engine on ONE core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before any thread starts
    return run_engine(engine, rows, workers, memory_limit)


def table(results: list[StepResult]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| rows | engine | step | wall s | peak MiB (process) | peak MiB per worker | figures |",
        "|---:|---|---|---:|---:|---|---|",
    ]
    for r in results:
        workers = ", ".join(f"{v:,.0f}" for v in r.peak_worker_mib.values()) or "-"
        figures = ", ".join(f"{k} {v}" for k, v in r.figures.items())
        lines.append(
            f"| {r.rows:,} | {r.engine} | {r.step} | {r.seconds:.1f} | "
            f"{r.peak_process_mib:,.0f} | {workers} | {figures} |"
        )
    return "\n".join(lines)


def per_core(results: list[StepResult], workers: int) -> list[Ratio]:
    """Each dask step against the pandas engine's on one core (and train against the bare
    ``xgboost.dask`` on the same matrix: the train stage's seconds, not featurize's)."""
    pandas = {r.step: r for r in results if r.engine == "pandas"}
    ratios = []
    for r in results:
        if r.engine != "dask":
            continue
        p = pandas.get(r.step)
        if r.step == "train":
            ratios.append(
                Ratio(
                    step="train",
                    rows=r.rows,
                    workers=workers,
                    dask_s=r.figures["train_s"],
                    pandas_s=p.figures.get("train_s") if p else None,
                    bare_s=r.figures.get("bare_xgboost_dask_s"),
                )
            )
            continue
        ratios.append(
            Ratio(
                step=r.step,
                rows=r.rows,
                workers=workers,
                dask_s=r.seconds,
                pandas_s=p.seconds if p else None,
                dask_cpu_s=r.cpu_seconds,
                pandas_cpu_s=p.cpu_seconds if p else None,
            )
        )
    return ratios


def run(
    rows: int = 1_000_000,
    engines: tuple[str, ...] = ("pandas", "dask"),
    workers: int = 2,
    memory_limit: str = "5GiB",
    out: Path | None = None,
    echo: Callable[[str], None] = print,
) -> list[StepResult]:
    """Run the steps on each engine and write ``reports/bench-scale-<rows>.json``."""
    results: list[StepResult] = []
    for engine in engines:
        # Each engine in a fresh process: one engine's heap never counts in the other's peak.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results += pool.submit(
                _run_engine_quietly, engine, rows, workers, memory_limit
            ).result()
    ratios = per_core(results, workers)
    out = out or ROOT / "reports" / f"bench-scale-{rows}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "rows": rows,
                "workers": workers,
                "memory_limit": memory_limit,
                "cpus": psutil.cpu_count(),
                "results": [asdict(r) for r in results],
                "per_core": [asdict(r) for r in ratios],
                "load_after": os.getloadavg()[0],
            },
            indent=2,
        )
        + "\n"
    )
    echo(table(results))
    echo(caption(workers))
    echo(per_core_table(ratios))
    echo(f"written to {out}")
    return results
