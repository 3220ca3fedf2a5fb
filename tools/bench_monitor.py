"""``churn bench monitor``: monitoring time and memory at 100k and 1M predictions; false alarms."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tools.fork import deep_merge, fork_project

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

    from churn import tracking
    from churn.data.generator import generate_customers
    from churn.prediction_store import PredictionStore
    from churn.settings import get_settings
    from serving.metrics import ServingMetrics
    from serving.predlog import PredictionLog, ScoredBatch

    settings = get_settings(project_dir=project)
    tracking.connect(settings)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    started = time.perf_counter()
    log = PredictionLog(PredictionStore.from_settings(settings), ServingMetrics())
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


def _measure_in_child(project: Path) -> dict[str, float]:
    """Run the monitoring flow in a fresh process; its wall time and peak memory (RSS)."""
    code = (
        "import json, resource, time\n"
        "from prefect import flow\n"
        "from pipelines.monitoring import monitoring_flow\n"
        "flow(lambda: None, name='warm-up')()  # start Prefect's temporary server first\n"
        "t = time.perf_counter()\n"
        f"out = monitoring_flow({str(project)!r}, retrain=False)\n"
        "print('BENCH' + json.dumps({'flow_s': time.perf_counter() - t,"
        " 'rows_checked': out.decision.window_rows, 'sampled': out.window.sampled,"
        " 'drifted_share': out.decision.drifted_share,"
        " 'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'stages': out.seconds}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH"))
    result: dict[str, Any] = json.loads(line[5:])
    result["process_s"] = time.perf_counter() - started
    return result


def false_alarms(project: Path, seeds: int, rows: int) -> dict[str, Any]:
    """Monitor ``seeds`` un-shifted windows of ``rows`` rows; how often is drift declared?"""
    import mlflow

    from churn import tracking
    from churn.data.generator import generate_customers
    from churn.params import load_params
    from churn.prediction_store import SCORE_COLUMN
    from churn.settings import get_settings
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
