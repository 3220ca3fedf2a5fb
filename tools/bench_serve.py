"""``churn bench serve``: our service against ``mlflow models serve`` and the HTTP floor.

The floor (``tools/floor_server.py``) is the same stack as ours (uvicorn, uvloop, httptools,
FastAPI) with a /predict that answers a constant. All servers run one worker on loopback; the
same load generator (wrk, else an async httpx client) sends the same requests, alternating the
order over several rounds. Our service is measured twice: plain, and with ``?explain=true`` (the
reasons of each score, ``churn.scoring.explain``), under load and on one connection (a request's own
latency, no queueing behind others). Also printed: the in-process
time to score one row (the floor under the HTTP numbers) and batch scoring of a large file
against the bare booster predicting the already encoded matrix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.features.pipeline import model_steps
from tools.fork import CHURN, fork_project, free_port, register_approved_challenger

console = Console()


@dataclass
class Load:
    """One load run's figures."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @classmethod
    def median(cls, runs: list[Load]) -> Load:
        """The rounds' medians (errors: their sum)."""
        return cls(
            statistics.median(x.rps for x in runs),
            statistics.median(x.p50_ms for x in runs),
            statistics.median(x.p99_ms for x in runs),
            sum(x.errors for x in runs),
        )


def records(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """Realistic raw records from the project's generator, typed as the API expects."""
    from churn.data.generator import generate_customers

    frame = generate_customers(n, seed)
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    frame = frame.drop(columns=["Churn"], errors="ignore")
    out = json.loads(frame.to_json(orient="records"))
    return list(out)


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], url: str, timeout: float = 180.0, cwd: Path | None = None
) -> Any:
    """Start a server process (in ``cwd``), wait until ``url`` answers 200, stop it afterwards."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)  # noqa: S603
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{cmd[0]} exited:\n{log.read().decode()[-3000:]}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise TimeoutError(f"{url} not ready after {timeout} s")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wrk(url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]) -> Load:
    """Run wrk with a POST body and parse its latency distribution."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        lines = [
            'wrk.method = "POST"',
            f"wrk.body = {json.dumps(body.decode())}",
            *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
        ]
        script.write("\n".join(lines))
    try:
        out = subprocess.run(  # noqa: S603
            [
                shutil.which("wrk") or "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return Load(rps, latency("50"), latency("99"), errors)


def httpx_load(
    url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]
) -> Load:
    """The same measurement with an async httpx client (when wrk is not installed)."""

    async def run() -> Load:
        times: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=connections)
        headers_ = {"content-type": "application/json", **headers}
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            end = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    t = time.perf_counter()
                    r = await client.post(url, content=body, headers=headers_)
                    times.append(time.perf_counter() - t)
                    errors += r.status_code != 200

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - started
        p50, p99 = np.percentile(np.asarray(times) * 1e3, [50, 99]).tolist()
        return Load(len(times) / elapsed, p50, p99, errors)

    return asyncio.run(run())


def floor_one_row(project_dir: Path) -> tuple[float, float, float]:
    """Median in-process time (ms) for one row: our scorer, the sklearn pipeline, and our
    scorer's explanation of it (the reasons ``?explain=true`` returns)."""
    from churn.models import explainer_for
    from churn.scoring import PipelineScorer
    from churn.scoring.explain import DEFAULT_TOP_K
    from serving.model import load_initial

    settings = get_settings(project_dir=project_dir)
    params = load_params(settings.params_path)
    model = load_initial(settings, params)
    row = records(1)[0]
    cols = {c: [row[c]] for c in params.dataset.feature_columns}

    def median_ms(fn: Any, n: int) -> float:
        for _ in range(20):
            fn()
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1e3

    ours = median_ms(lambda: model.scorer.score(cols, 1), 2000)
    explainer = explainer_for(model.scorer, params.dataset)
    explained = median_ms(lambda: explainer.explain(cols, 1).record(0, DEFAULT_TOP_K), 500)
    pipeline = getattr(model.scorer, "pipeline", None)
    if pipeline is None:
        import mlflow

        pipeline = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    reference = PipelineScorer(pipeline, params.dataset)
    return ours, median_ms(lambda: reference.score(cols, 1), 200), explained


def batch_vs_booster(project_dir: Path, rows: int, workdir: Path) -> tuple[float, float]:
    """``(batch rows/s, bare booster rows/s)`` on ``rows`` generated customers."""
    from churn.scoring import CompiledScorer
    from serving.batch import score_file
    from serving.model import load_initial

    settings = get_settings(project_dir=project_dir)
    params = load_params(settings.params_path)
    model = load_initial(settings, params)
    block = pd.DataFrame(records(min(rows, 100_000), seed=5))
    frame = pd.concat([block] * -(-rows // len(block)), ignore_index=True).head(rows)
    source = workdir / "batch-in.parquet"
    frame.to_parquet(source)
    summary = score_file(settings, source, workdir / "batch-out.parquet", model=model)
    scorer = model.scorer
    if not isinstance(scorer, CompiledScorer):
        raise RuntimeError("the champion is not served by the compiled scorer; no booster to time")
    cols = {c: frame[c].to_numpy() for c in params.dataset.feature_columns}
    X = scorer.encode(cols, len(frame))
    import mlflow

    pipeline = mlflow.sklearn.load_model(f"models:/{settings.model_name}@champion")
    # The bare model on the encoded matrix: XGBoost's booster, or another candidate's own
    # predict_proba (a random forest or a logistic regression selected by train.select).
    _, model = model_steps(pipeline)  # by name: the artefact's MODEL step
    inner = model.calibrated_classifiers_[0].estimator.estimator
    t = time.perf_counter()
    if hasattr(inner, "get_booster"):
        inner.get_booster().inplace_predict(X, validate_features=False)
    else:
        inner.predict_proba(X)
    bare = len(frame) / (time.perf_counter() - t)
    return summary.rows_per_second, bare


def run(
    project_dir: Path,
    seconds: float = 8.0,
    connections: int = 8,
    rounds: int = 3,
    batch_rows: int = 1_000_000,
    peer: bool = True,
) -> None:
    """Benchmark the service against MLflow's own server and print the ratios."""
    project_dir = project_dir.resolve()
    settings = get_settings(project_dir=project_dir)
    load = wrk if shutil.which("wrk") else httpx_load
    console.print(f"load generator: {'wrk' if load is wrk else 'httpx (wrk not found)'}")
    one = records(1)
    thousand = records(1000, seed=3)
    ours_body = {1: json.dumps({"records": one}).encode()}
    ours_body[1000] = json.dumps({"records": thousand}).encode()
    peer_body = {1: json.dumps({"dataframe_records": one}).encode()}
    peer_body[1000] = json.dumps({"dataframe_records": thousand}).encode()
    headers = {"Content-Type": "application/json"}

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHURN_PROJECT_DIR": str(project_dir),
            "CHURN_RELOAD_INTERVAL_SECONDS": "0",
            "CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp}/bench-predictions.db",
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
        }
        env.pop("CHURN_API_KEY", None)
        p_ours, p_peer, p_floor, p_fastapi = free_port(), free_port(), free_port(), free_port()
        # -C: the project benchmarked, whatever CHURN_PROJECT_DIR or the working directory say.
        ours_cmd = [*CHURN, "-C", str(project_dir), "serve", "--port", str(p_ours)]
        ours_cmd += ["--log-level", "warning"]
        # The same service with the idiomatic FastAPI route (the library path of the direct
        # route, docs/architecture.md), its own prediction log.
        fastapi_cmd = [*ours_cmd[:-4], "--port", str(p_fastapi), "--log-level", "warning"]
        fastapi_env = {
            **env,
            "CHURN_PREDICT_ROUTE": "fastapi",
            "CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp}/bench-predictions-fastapi.db",
        }
        peer_cmd = [
            sys.executable, "-m", "mlflow", "models", "serve",
            "-m", f"models:/{settings.model_name}@champion",
            "--env-manager", "local", "-w", "1", "-p", str(p_peer), "-h", "127.0.0.1",
        ]  # fmt: skip
        floor_cmd = [
            sys.executable, "-m", "uvicorn", "tools.floor_server:app", "--port", str(p_floor),
            "--workers", "1", "--loop", "uvloop", "--http", "httptools",
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        targets = {
            "ours": f"http://127.0.0.1:{p_ours}/predict",
            "explain": f"http://127.0.0.1:{p_ours}/predict?explain=true",
            "floor": f"http://127.0.0.1:{p_floor}/predict",
            "ours, fastapi route": f"http://127.0.0.1:{p_fastapi}/predict",
        }
        bodies = dict.fromkeys(targets, ours_body)
        # The one-row request measured alone (one connection): its own latency, with and
        # without explain; under load the p50 is mostly the wait behind the other connections.
        alone = ("ours", "explain")
        results: dict[tuple[str, int], list[Load]] = {}
        with (
            server(ours_cmd, env, f"http://127.0.0.1:{p_ours}/ready"),
            server(floor_cmd, env, f"http://127.0.0.1:{p_floor}/ready"),
            server(fastapi_cmd, fastapi_env, f"http://127.0.0.1:{p_fastapi}/ready"),
        ):
            ctx = server(peer_cmd, env, f"http://127.0.0.1:{p_peer}/ping") if peer else None
            with ctx if ctx is not None else _nothing():
                if peer:
                    targets["mlflow"] = f"http://127.0.0.1:{p_peer}/invocations"
                    bodies["mlflow"] = peer_body
                _check_same_scores(targets, bodies, headers)
                for name, url in targets.items():  # warm-up, not measured
                    load(url, bodies[name][1], connections, 2, headers)
                for r in range(rounds):
                    order = list(targets) if r % 2 == 0 else list(reversed(targets))
                    for name in order:
                        res = load(targets[name], bodies[name][1], connections, seconds, headers)
                        results.setdefault((name, 1), []).append(res)
                        if name in alone:
                            res = load(targets[name], bodies[name][1], 1, seconds / 2, headers)
                            results.setdefault((f"{name}, 1 connection", 1), []).append(res)
                        if name in ("floor", "explain"):  # one-row figures only
                            continue
                        res = load(targets[name], bodies[name][1000], 1, seconds / 2, headers)
                        results.setdefault((name, 1000), []).append(res)
        floor, pipeline_ms, explain_ms = floor_one_row(project_dir)
        batch_rps, bare_rps = batch_vs_booster(project_dir, batch_rows, Path(tmp))

    table = Table(
        title=f"POST /predict, {connections} connections (1-row) / 1 connection (1000-row); "
        "explain: ?explain=true"
    )
    for col in ("server", "rows/request", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    best: dict[tuple[str, int], Load] = {}
    for (name, rows), runs in results.items():
        agg = Load.median(runs)
        best[(name, rows)] = agg
        table.add_row(
            name,
            str(rows),
            f"{agg.rps:,.0f}",
            f"{agg.p50_ms:.2f}",
            f"{agg.p99_ms:.2f}",
            str(agg.errors),
        )
    console.print(table)
    ours = best[("ours", 1)]
    ratios = Table(title="req/s ratios (medians of the rounds, measured in this run)")
    for col in ("ratio", "value", "target"):
        ratios.add_column(col, justify="right" if col != "ratio" else "left")
    floor_ratio = ours.rps / best[("floor", 1)].rps
    ratios.add_row(
        "single-row, ours / HTTP floor (same stack, fixed answer)",
        f"[bold]{floor_ratio:.2f}x[/]",
        ">= 0.5x",
    )
    if ("mlflow", 1) in best:
        ratios.add_row(
            "single-row, ours / mlflow models serve",
            f"[bold]{ours.rps / best[('mlflow', 1)].rps:.1f}x[/]",
            ">= 50x",
        )
        ratios.add_row(
            "1000-row, ours / mlflow models serve",
            f"{best[('ours', 1000)].rps / best[('mlflow', 1000)].rps:.1f}x",
            "",
        )
    fastapi = best[("ours, fastapi route", 1)]
    ratios.add_row(
        "single-row, direct route / FastAPI route (keep the direct one at >= 1.25x)",
        f"{ours.rps / fastapi.rps:.2f}x",
        ">= 1.25x",
    )
    ratios.add_row(
        "1000-row p50, FastAPI route / direct route",
        f"{best[('ours, fastapi route', 1000)].p50_ms / best[('ours', 1000)].p50_ms:.2f}x",
        ">= 1.25x",
    )
    console.print(ratios)
    console.print(
        f"single-row p99: {ours.p99_ms:.2f} ms (target <= 10); "
        f"1000-row p50: {best[('ours', 1000)].p50_ms:.2f} ms (target <= 25)"
    )
    plain, explained = best[("ours, 1 connection", 1)], best[("explain, 1 connection", 1)]
    console.print(
        f"single-row with explain, 1 connection: p50 {explained.p50_ms:.2f} ms, p99 "
        f"{explained.p99_ms:.2f} ms (target p50 < 5); without: p50 {plain.p50_ms:.2f} ms, p99 "
        f"{plain.p99_ms:.2f} ms; p50 ratio {explained.p50_ms / plain.p50_ms:.2f}x"
    )
    loaded = best[("explain", 1)]
    console.print(
        f"single-row with explain, {connections} connections: p50 {loaded.p50_ms:.2f} ms, p99 "
        f"{loaded.p99_ms:.2f} ms, {loaded.rps:,.0f} req/s "
        f"({loaded.rps / best[('ours', 1)].rps:.2f}x the plain req/s)"
    )
    console.print(
        f"in-process one-row floor: {floor:.3f} ms (the sklearn pipeline: {pipeline_ms:.2f} ms); "
        f"its explanation: {explain_ms:.3f} ms"
    )
    console.print(
        f"batch scoring {batch_rows:,} rows: {batch_rps:,.0f} rows/s; bare booster on the encoded "
        f"matrix: {bare_rps:,.0f} rows/s; ratio {batch_rps / bare_rps:.2f} (target >= 0.5)"
    )


def run_shadow(
    dest: Path, seconds: float = 8.0, connections: int = 8, rounds: int = 3
) -> dict[str, Load]:
    """The service with a shadow challenger running against the same service without one.

    In a throw-away fork (trained here; the challenger is a copy of the champion, so the shadow
    scorer costs what the champion costs), two servers on the same registry: one with
    ``live.mode: off``, one with ``shadow`` (its own params file through CHURN_PARAMS_PATH).
    The same load alternates between them over ``rounds``; the medians are printed, with the
    shadow rows each server logged and the shadow failures it counted.
    """
    from pipelines.training import training_flow

    # The load generator runs in this process: a log line per request would be measured too.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    project = fork_project(dest, {"train": {"search": {"n_trials": 1}}})
    training_flow(str(project))
    challenger = register_approved_challenger(project)
    load = wrk if shutil.which("wrk") else httpx_load
    console.print(f"load generator: {'wrk' if load is wrk else 'httpx (wrk not found)'}")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), "mode": "shadow"}
    (project / "params-shadow.yaml").write_text(yaml.safe_dump(params))
    one = json.dumps({"records": records(1)}).encode()
    thousand = json.dumps({"records": records(1000, seed=3)}).encode()
    headers = {"Content-Type": "application/json"}
    ports = {"off": free_port(), "shadow": free_port()}
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
        "CHURN_RELOAD_INTERVAL_SECONDS": "0",
    }
    envs = {
        name: {
            **base,
            "CHURN_PREDICTION_LOG_URL": f"sqlite:///{project / f'bench-{name}.db'}",
            "CHURN_PARAMS_PATH": str(
                project / ("params-shadow.yaml" if name == "shadow" else "params.yaml")
            ),
        }
        for name in ports
    }
    results: dict[tuple[str, int], list[Load]] = {}
    with contextlib.ExitStack() as stack:
        for name, port in ports.items():
            cmd = [
                *CHURN,
                "-C",
                str(project),
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
            stack.enter_context(server(cmd, envs[name], f"http://127.0.0.1:{port}/ready"))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        live = httpx.get(urls["shadow"] + "/version", timeout=10).json()["live"]
        if (live.get("challenger") or {}).get("version") != challenger:
            raise RuntimeError(f"the shadow server runs no challenger: {live}")
        for url in urls.values():  # warm-up, not measured
            load(url + "/predict", one, connections, 2, headers)
        for r in range(rounds):
            for name in list(urls) if r % 2 == 0 else list(reversed(urls)):
                res = load(urls[name] + "/predict", one, connections, seconds, headers)
                results.setdefault((name, 1), []).append(res)
                res = load(urls[name] + "/predict", thousand, 1, seconds / 2, headers)
                results.setdefault((name, 1000), []).append(res)
        time.sleep(1.0)  # the shadow queue drains
        metrics = {name: httpx.get(url + "/metrics", timeout=10).text for name, url in urls.items()}

    table = Table(title=f"POST /predict with a shadow challenger (v{challenger}) and without")
    for col in ("live.mode", "rows/request", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    medians: dict[str, Load] = {}
    for (name, rows), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        agg = Load.median(runs)
        medians[f"{name}/{rows}"] = agg
        table.add_row(
            name, str(rows), f"{agg.rps:,.0f}", f"{agg.p50_ms:.2f}", f"{agg.p99_ms:.2f}",
            str(agg.errors),
        )  # fmt: skip
    console.print(table)

    def counted(text: str, pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern + r"[^\n]*\} ([\d.e+]+)", text))

    shadow_rows = counted(metrics["shadow"], r'churn_role_predictions_total\{[^}]*role="shadow"')
    served_rows = counted(metrics["shadow"], r'churn_role_predictions_total\{[^}]*role="champion"')
    failures = counted(metrics["shadow"], r"churn_shadow_failures_total\{")
    console.print(
        f"shadow server: {served_rows:,.0f} rows answered by the champion, {shadow_rows:,.0f} "
        f"scored in the shadow, {failures:,.0f} shadow failures (queue full or errors)"
    )
    for rows in (1, 1000):
        off, on = medians[f"off/{rows}"], medians[f"shadow/{rows}"]
        console.print(
            f"{rows}-row: p50 {off.p50_ms:.2f} -> {on.p50_ms:.2f} ms, p99 {off.p99_ms:.2f} -> "
            f"{on.p99_ms:.2f} ms, req/s ratio shadow/off {on.rps / off.rps:.2f}"
        )
    return medians


def run_canary(
    project_dir: Path, seconds: float = 8.0, connections: int = 8, rounds: int = 3
) -> dict[str, Load]:
    """The champion's single-record figures with a canary challenger beside it and without.

    On a copy of the project (its own MLflow store: the copy's registry gets a gate-approved
    copy of the champion under the ``challenger`` alias, so the project's own registry is not
    touched), two servers: ``live.mode: off`` and ``canary`` (``live.canary_share`` as
    params.yaml says). Measured on both: one champion customer's single-record requests
    (``connections`` connections; a customer the canary leaves to the champion), alone and
    beside 1000-record requests of mixed customers on one more connection (the canary's share
    of them answered by the challenger). Rounds alternate the servers; medians are printed, with
    the canary / off ratio of the p99 (target <= 1.5x: the challenger scores off the event
    loop, serving/live.py).

    Raises:
        RuntimeError: the project's registry is not its own SQLite store (the copy would then
            register its challenger in the shared registry), or it has no champion.
    """
    project_dir = project_dir.resolve()
    settings = get_settings(project_dir=project_dir)
    if not settings.tracking_is_local:
        raise RuntimeError(
            "the canary benchmark copies the project's own MLflow store (mlruns/); this project "
            f"uses {settings.tracking_uri}: run it on a local project"
        )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    load = wrk if shutil.which("wrk") else httpx_load
    headers = {"Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(
            project_dir,
            copy,
            ignore=shutil.ignore_patterns(
                ".serving-cache", "prediction*", ".git", ".dvc*", "reports", ".prefect"
            ),
        )
        challenger = register_approved_challenger(copy)
        params = yaml.safe_load((copy / "params.yaml").read_text())
        params["live"] = {**params.get("live", {}), "mode": "canary"}
        share = float(params["live"].get("canary_share", 0.1))
        (copy / "params-canary.yaml").write_text(yaml.safe_dump(params))
        base = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
            "CHURN_RELOAD_INTERVAL_SECONDS": "0",
            # A busy machine can take longer than the default to load from the registry; the
            # rules would then answer, and a canary never runs beside the rules.
            "CHURN_REGISTRY_TIMEOUT_SECONDS": "120",
        }
        ports = {"off": free_port(), "canary": free_port()}
        results: dict[tuple[str, str], list[Load]] = {}
        with contextlib.ExitStack() as stack:
            for name, port in ports.items():
                env = {
                    **base,
                    "CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp}/bench-{name}.db",
                    "CHURN_PARAMS_PATH": str(
                        copy / ("params-canary.yaml" if name == "canary" else "params.yaml")
                    ),
                }
                cmd = [*CHURN, "-C", str(copy), "serve", "--port", str(port)]
                cmd += ["--log-level", "warning"]
                # A busy machine has taken more than the default 180 s to start both.
                ready = f"http://127.0.0.1:{port}/ready"
                stack.enter_context(server(cmd, env, ready, timeout=600))
            urls = {name: f"http://127.0.0.1:{port}/predict" for name, port in ports.items()}
            served = {
                name: httpx.get(url[: -len("/predict")] + "/version", timeout=10).json()
                for name, url in urls.items()
            }
            for name, described in served.items():
                if described["source"] != "registry":
                    raise RuntimeError(
                        f"the {name} server serves {described['source']} "
                        f"({described['degraded_reason']}), not the registry's champion"
                    )
            live = served["canary"]
            champion = live["version"]
            if (live["live"].get("challenger") or {}).get("version") != challenger:
                raise RuntimeError(f"the canary server runs no challenger: {live['live']}")
            candidates = records(200, seed=17)
            answer = httpx.post(
                urls["canary"], json={"records": candidates}, headers=headers, timeout=30
            ).json()
            versions = [p["model_version"] for p in answer["predictions"]]
            one = json.dumps({"records": [candidates[versions.index(champion)]]}).encode()
            mixed = json.dumps({"records": records(1000, seed=3)}).encode()
            for url in urls.values():  # warm-up, not measured
                load(url, one, connections, 2, headers)
                load(url, mixed, 1, 1, headers)
            for r in range(rounds):
                for name in list(urls) if r % 2 == 0 else list(reversed(urls)):
                    url = urls[name]
                    res = load(url, one, connections, seconds, headers)
                    results.setdefault((name, "alone"), []).append(res)
                    big: list[Load] = []

                    def alongside(url: str = url, big: list[Load] = big) -> None:
                        big.append(load(url, mixed, 1, seconds + 2, headers))

                    beside = threading.Thread(target=alongside, daemon=True)
                    beside.start()
                    time.sleep(0.5)
                    res = load(url, one, connections, seconds, headers)
                    beside.join()
                    results.setdefault((name, "beside 1000-row requests"), []).append(res)
                    results.setdefault((name, "the 1000-row requests"), []).extend(big)
    table = Table(
        title=f"POST /predict, one champion customer's record, {connections} connections: "
        f"live.mode off against canary (share {share:g}, challenger v{challenger} = a copy of "
        f"champion v{champion}); {rounds} alternating rounds, medians; last rows: the "
        "1000-record requests of mixed customers sent beside them on one connection"
    )
    for col in ("live.mode", "requests", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    medians: dict[str, Load] = {}
    for (name, traffic), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        agg = Load.median(runs)
        medians[f"{name}/{traffic}"] = agg
        table.add_row(
            name, traffic, f"{agg.rps:,.0f}", f"{agg.p50_ms:.2f}", f"{agg.p99_ms:.2f}",
            str(agg.errors),
        )  # fmt: skip
    console.print(table)
    for traffic in ("alone", "beside 1000-row requests"):
        off, on = medians[f"off/{traffic}"], medians[f"canary/{traffic}"]
        console.print(
            f"champion single-record, {traffic}: p99 canary/off {on.p99_ms / off.p99_ms:.2f}x "
            f"(target <= 1.5x), p50 {off.p50_ms:.2f} -> {on.p50_ms:.2f} ms, req/s "
            f"{off.rps:,.0f} -> {on.rps:,.0f}"
        )
    return medians


def run_against(
    project_dir: Path, other: Path, seconds: float = 5.0, connections: int = 8, rounds: int = 5
) -> dict[str, Load]:
    """This checkout's service against another checkout's (``other``: a worktree of main, say)
    on the same project, with the HTTP floor up too, one-row requests alternating over
    ``rounds``. Prints each server's median req/s, p50, p99 and the CPU per request of its
    event loop thread (read from ``/proc``: what bounds one worker's req/s), and each one's
    ratio to the floor, per round and as the median.
    """
    project_dir, other = project_dir.resolve(), other.resolve()
    if not (other / "serving" / "app.py").is_file():
        raise FileNotFoundError(f"{other} is not a checkout of this project (no serving/app.py)")
    load = wrk if shutil.which("wrk") else httpx_load
    body = json.dumps({"records": records(1)}).encode()
    headers = {"Content-Type": "application/json"}
    here = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        base = {**os.environ, "CHURN_RELOAD_INTERVAL_SECONDS": "0"}
        base.pop("CHURN_API_KEY", None)
        # Each server runs in its own checkout: ``python -m`` puts the working directory first on
        # sys.path, ahead of PYTHONPATH, so run from here the other checkout's server would
        # import this one's ``serving`` and ``pipelines`` beside the other's ``churn``.
        servers: dict[str, tuple[str, dict[str, str], list[str], Path]] = {}
        for name, tree in (("this", here), ("other", other)):
            env = {
                **base,
                "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'src'}",
                "CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp}/{name}.db",
            }
            cmd = [sys.executable, "-m", "pipelines.cli", "-C", str(project_dir), "serve"]
            servers[name] = ("/ready", env, [*cmd, "--log-level", "warning", "--port"], tree)
        floor_cmd = [
            sys.executable, "-m", "uvicorn", "tools.floor_server:app", "--workers", "1",
            "--loop", "uvloop", "--http", "httptools", "--log-level", "warning",
            "--no-access-log", "--port",
        ]  # fmt: skip
        servers["floor"] = ("/ready", {**base, "PYTHONPATH": str(here)}, floor_cmd, here)
        results: dict[str, list[tuple[Load, float]]] = {name: [] for name in servers}
        with contextlib.ExitStack() as stack:
            targets = {}
            for name, (ready, env, cmd, tree) in servers.items():
                port = free_port()
                proc = stack.enter_context(
                    server([*cmd, str(port)], env, f"http://127.0.0.1:{port}{ready}", cwd=tree)
                )
                targets[name] = (f"http://127.0.0.1:{port}/predict", proc.pid)
            for url, _ in targets.values():  # warm-up, not measured
                load(url, body, connections, 2, headers)
            for r in range(rounds):
                for name in list(targets) if r % 2 == 0 else list(reversed(targets)):
                    url, pid = targets[name]
                    before = _loop_cpu(pid)
                    res = load(url, body, connections, seconds, headers)
                    cpu = (_loop_cpu(pid) - before) / max(res.rps * seconds, 1) * 1e6
                    results[name].append((res, cpu))
    table = Table(
        title=f"POST /predict, one row, {connections} connections: this checkout against "
        f"{other} ({rounds} alternating rounds, medians)"
    )
    for col in ("server", "req/s", "p50 ms", "p99 ms", "event loop CPU µs/request", "/ floor"):
        table.add_column(col, justify="right")
    medians: dict[str, Load] = {}
    floor_rps = [res.rps for res, _ in results["floor"]]
    for name, runs in results.items():
        medians[name] = Load.median([res for res, _ in runs])
        per_round = [res.rps / f for (res, _), f in zip(runs, floor_rps, strict=True)]
        ratio = "" if name == "floor" else (
            f"{medians[name].rps / statistics.median(floor_rps):.2f}x "
            f"({', '.join(f'{x:.2f}' for x in per_round)})"
        )  # fmt: skip
        table.add_row(
            name, f"{medians[name].rps:,.0f}", f"{medians[name].p50_ms:.2f}",
            f"{medians[name].p99_ms:.2f}", f"{statistics.median(c for _, c in runs):.1f}", ratio,
        )  # fmt: skip
    console.print(table)
    return medians


def _loop_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process's main thread, which runs the event loop."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _nothing() -> Any:
    yield None


def _check_same_scores(
    targets: dict[str, str], bodies: dict[str, dict[int, bytes]], headers: dict[str, str]
) -> None:
    """Both servers must give the same probability, or the comparison means nothing."""
    scores = {}
    for name, url in targets.items():
        if name in ("floor", "explain"):
            continue
        answer = httpx.post(url, content=bodies[name][1], headers=headers, timeout=30).json()
        if name.startswith("ours"):
            scores[name] = answer["predictions"][0]["churn_probability"]
        else:
            pred = answer["predictions"][0]
            scores[name] = pred[1] if isinstance(pred, list) else pred
    if max(scores.values()) - min(scores.values()) > 1e-6:
        raise RuntimeError(f"the servers disagree: {scores}")
    console.print(f"same score from every server: {scores}")
