"""``churn bench monitor``: monitoring time and memory at 100k and 1M predictions; false alarms."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tools.fork import CHURN, CHURN_COMMAND, deep_merge, fork_project, warm_env

# A champion whose training split has about 10,000 rows (65 % of the generated rows).
BENCH_OVERRIDES: dict[str, Any] = {
    "ingest": {"generator": {"n_rows": 15_400, "seed": 3}},
    "train": {"search": {"n_trials": 1}},
    "monitor": {"max_reference_rows": 10_000},
}


def fill_log(project: Path, rows: int, seed: int, drift: Any = None) -> float:
    """Score ``rows`` generated customers with the champion and append them to the project's log
    through the service's own writer (as version 1, the bench's champion); returns seconds."""
    import mlflow

    from churn.config.settings import get_settings
    from churn.data.generator import generate_customers
    from churn.prediction_store import PredictionStore
    from churn.release import tracking
    from serving.metrics import ServingMetrics
    from serving.predlog import PredictionLog, ScoredBatch

    settings = get_settings(project_dir=project)
    tracking.connect(settings)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    started = time.perf_counter()
    log = PredictionLog(PredictionStore.from_settings(settings, create=True), ServingMetrics())
    log.start()
    step = 50_000
    for start in range(0, rows, step):
        batch = generate_customers(min(step, rows - start), seed + start, drift=drift)
        ids = [f"B{seed}-{start}-{i}" for i in range(len(batch))]
        batch["TotalCharges"] = pd.to_numeric(batch["TotalCharges"], errors="coerce")
        features = batch.drop(columns=["customerID", "Churn"])
        proba = model.predict_proba(batch)[:, 1]
        columns: dict[str, Sequence[Any]] = {c: features[c].tolist() for c in features.columns}
        columns["TotalCharges"] = [None if v != v else v for v in columns["TotalCharges"]]
        log.submit(
            ScoredBatch(
                datetime.now(UTC),
                f"bench-{start}",
                "1",
                ids,
                columns,
                proba,
                proba > 0.3,
                1.0,
                None,
            )
        )
    log.close(timeout=600)
    return time.perf_counter() - started


def _measure_in_child(
    project: Path, temporary_prefect: bool = False, warm: bool = False
) -> dict[str, Any]:
    """Run ``churn monitor --no-retrain`` (what ``make monitor`` runs) as a fresh process.

    End to end: interpreter start, imports, the flow (with the Prefect server that
    PREFECT_API_URL names, else Prefect's temporary one) and exit; the process's own peak
    memory (RSS, from ``wait4``: its children, e.g. a temporary Prefect server, count apart).
    ``temporary_prefect``: without PREFECT_API_URL, as a process that starts its own server.
    ``warm``: through the ``churn`` command with the project's warm process up, as ``make
    monitor`` runs it; the command runs in the warm process's child, so only the wall time
    counts (the CPU and memory are the caller's, which waits).
    """
    env = warm_env(project) if warm else dict(os.environ)
    if temporary_prefect:
        env.pop("PREFECT_API_URL", None)
    command = [*CHURN_COMMAND] if warm else [*CHURN, "-C", str(project)]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command, "monitor", "--no-retrain"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=project,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"churn monitor failed ({proc.returncode}):\n{text[-3000:]}")
    stages = re.search(r"stage seconds: (.*)", text)
    if warm:
        return {
            "process_s": round(elapsed, 1),
            "stages": stages.group(1).strip() if stages else None,
        }
    return {
        "process_s": round(elapsed, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "stages": stages.group(1).strip() if stages else None,
    }


def false_alarms(project: Path, seeds: int, rows: int) -> dict[str, Any]:
    """Monitor ``seeds`` un-shifted windows of ``rows`` rows; how often is drift declared?"""
    import mlflow

    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from churn.data.generator import generate_customers
    from churn.prediction_store import SCORE_COLUMN
    from churn.release import tracking
    from monitoring.data import features_frame, load_reference
    from monitoring.report import check_data

    settings = get_settings(project_dir=project)
    params = load_params(settings.params_path)
    client = tracking.connect(settings)
    reference = load_reference(
        client, settings.model_name, project, params.dataset, max_rows=10_000
    )
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    alarms = columns_flagged = 0
    for seed in range(1000, 1000 + seeds):
        batch = generate_customers(rows, seed)
        batch["TotalCharges"] = pd.to_numeric(batch["TotalCharges"], errors="coerce")
        current = features_frame(batch, params.dataset)
        current[SCORE_COLUMN] = model.predict_proba(batch)[:, 1]
        checks = check_data(reference.train, current, params.dataset, params.monitor)
        alarms += checks.drifted_share >= params.monitor.drift_share
        columns_flagged += len(checks.drifted_columns)
    return {
        "seeds": seeds,
        "rows": rows,
        "false_alarms": alarms,
        "false_alarm_rate": alarms / seeds,
        "column_flags_per_run": columns_flagged / seeds,
    }


def run(seeds: int = 50, skip_million: bool = False, echo: Any = print) -> dict[str, Any]:
    """Train a champion on ~10k rows, log 100k then 1M predictions, time the monitoring flow.

    Also counts false alarms on ``seeds`` un-shifted windows; writes ``reports/bench-monitor.json``.
    """
    from pipelines.training import training_flow

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        project = fork_project(Path(tmp) / "project", BENCH_OVERRIDES)
        training_flow(str(project), push=False)
        window = {"monitor": {"window": {"rows": 1_000_000}, "max_reference_rows": 10_000}}
        params_path = project / "params.yaml"
        params_path.write_text(
            yaml.safe_dump(deep_merge(yaml.safe_load(params_path.read_text()), window))
        )
        total = 0
        for rows in (100_000, 1_000_000):
            if rows == 1_000_000 and skip_million:
                break
            fill_s = fill_log(project, rows - total, seed=rows)
            total = rows
            run = _measure_in_child(project)
            results[f"{rows}"] = {"fill_log_s": round(fill_s, 1), **run}
            echo(f"{rows:>9,} predictions: {json.dumps(results[f'{rows}'])}")
            if rows == 100_000 and os.environ.get("PREFECT_API_URL"):
                try:
                    alone: dict[str, Any] = _measure_in_child(project, temporary_prefect=True)
                except RuntimeError as exc:  # e.g. its start timed out on a busy machine
                    lines = str(exc).splitlines()
                    why = [x for x in lines if "rror" in x or "Timed out" in x] or lines[-1:]
                    alone = {"failed": why[-1].strip()[:300]}
                results["100000_temporary_prefect"] = alone
                echo(f"  the same with Prefect's temporary server: {json.dumps(alone)}")
                subprocess.run(  # noqa: S603 - our own command
                    [*CHURN_COMMAND, "warm"], cwd=project, env=warm_env(project), check=True
                )
                try:
                    results["100000_warm"] = warm = _measure_in_child(project, warm=True)
                finally:
                    subprocess.run(  # noqa: S603 - our own command
                        [*CHURN_COMMAND, "warm", "--stop"], cwd=project, env=warm_env(project)
                    )
                echo(f"  the same in the warm process (make monitor): {json.dumps(warm)}")
        for rows in (5_000, 100_000):
            fa = false_alarms(project, seeds, rows)
            results[f"false_alarms_{rows}"] = fa
            echo(f"false alarms at {rows:,} rows: {json.dumps(fa)}")
    results["bench_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path("reports") / "bench-monitor.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    echo(f"written to {out}")
    return results
