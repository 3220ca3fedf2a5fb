"""Train, serve and monitor through the production profile: real servers on loopback, no containers.

PostgreSQL holds the MLflow backend store, the Prefect database and the prediction log; moto's S3
server stands in for MinIO and holds MLflow's artefacts and the DVC remote. The project's own
commands run as subprocesses with production settings, as a deployment would run them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from churn.config.identity import identity
from tools.fork import CHURN, free_port

from .conftest import BIN, DATABASE_URL, REPORT, SKIP_REASON, Service, Stack, run, tail

pytestmark = [
    pytest.mark.production,
    pytest.mark.integration,  # servers and a real training run: not part of `-m "not integration"`
    pytest.mark.skipif(not DATABASE_URL, reason=SKIP_REASON),
]

MODEL = identity().model_name  # the registered model: pyproject.toml's identity block


def mlflow_client(stack: Stack) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.mlflow.url, registry_uri=stack.mlflow.url)


def query(stack: Stack, role: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows straight from one of the stack's PostgreSQL databases (not through any server)."""
    import psycopg

    with psycopg.connect(stack.libpq(role), connect_timeout=10) as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


def flow_runs(stack: Stack, flow: str) -> list[dict[str, Any]]:
    """Flow runs of one flow, from the Prefect server's REST API."""
    response = httpx.post(
        stack.prefect.url + "/api/flow_runs/filter",
        json={"flows": {"name": {"any_": [flow]}}, "limit": 50},
        timeout=30,
    )
    response.raise_for_status()
    return list(response.json())


def records(n: int, seed: int) -> list[dict[str, Any]]:
    """Generated customers as a client sends them (docs/serving.md), label dropped."""
    import pandas as pd

    from churn.data.generator import generate_customers

    frame = generate_customers(n, seed).drop(columns=["Churn"])
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    return list(json.loads(frame.to_json(orient="records")))


# --- train -----------------------------------------------------------------------------------


@dataclass
class Trained:
    version: str
    run_id: str
    model_id: str
    output: str


@pytest.fixture(scope="module")
def trained(stack: Stack) -> Trained:
    """``churn train`` against the servers (what ``make train`` runs)."""
    started = time.monotonic()
    cmd = [str(BIN / "churn"), "-C", str(stack.project), "train"]
    done = run(cmd, stack.env, stack.project, 420, "churn train", stack.server_logs, check=False)
    REPORT["churn train"] = f"{time.monotonic() - started:.0f} s"
    if done.returncode != 0:
        pytest.fail(
            f"churn train failed with {done.returncode}\nstdout:\n{done.stdout[-4000:]}\n"
            f"stderr:\n{done.stderr[-4000:]}\n{stack.server_logs()}"
        )
    client = mlflow_client(stack)
    mv = client.get_model_version_by_alias(MODEL, "champion")
    # The version's source is the logged model, ``models:/<model_id>``.
    model_id = str(mv.source).removeprefix("models:/")
    return Trained(str(mv.version), str(mv.run_id), model_id, done.stdout + done.stderr)


def test_training_registers_a_champion_in_the_servers_postgresql_store(
    stack: Stack, trained: Trained
) -> None:
    """The champion is on the tracking server, and the server keeps it in PostgreSQL."""
    client = mlflow_client(stack)
    run_ = client.get_run(trained.run_id)
    assert run_.info.status == "FINISHED"
    assert run_.data.metrics["test_roc_auc"] > 0.7
    # Artefacts go through the server (proxied), not to a path on this machine.
    assert run_.info.artifact_uri.startswith("mlflow-artifacts:"), run_.info.artifact_uri
    aliases = query(
        stack,
        "mlflow",
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        (MODEL,),
    )
    assert ("champion", int(trained.version)) in aliases, aliases
    assert f"churn v{trained.version}: PROMOTED to champion" in trained.output


def test_training_artefacts_are_objects_in_the_mlflow_bucket(
    stack: Stack, trained: Trained
) -> None:
    """Model, plots and model card are S3 objects, and the card is the one of this run."""
    keys = stack.keys("mlflow")
    run_keys = [k for k in keys if f"/{trained.run_id}/artifacts/" in k]
    assert any(k.endswith("/model_card.md") for k in run_keys), run_keys
    assert any("/plots/" in k and k.endswith(".png") for k in run_keys), run_keys
    model_files = [k for k in keys if f"/{trained.model_id}/" in k]
    assert any(k.endswith("/MLmodel") for k in model_files), (trained.model_id, keys[:50])
    card_key = next(k for k in run_keys if k.endswith("/model_card.md"))
    card = stack.s3().get_object(Bucket=stack.buckets["mlflow"], Key=card_key)["Body"].read()
    data_version = mlflow_client(stack).get_run(trained.run_id).data.tags["data_version"]
    assert data_version in card.decode()


def test_training_data_version_is_pushed_to_the_dvc_bucket(stack: Stack, trained: Trained) -> None:
    """Every output in dvc.lock is an object of the S3 remote; `dvc status --cloud` is clean."""
    from churn.data.versioning import locked_data_files

    keys = set(stack.keys("dvc"))
    stages = yaml.safe_load((stack.project / "dvc.yaml").read_text())["stages"]
    uncached = {  # metrics such as data/validated/report.json live in git, not in the cache
        path
        for stage in stages.values()
        for out in stage.get("outs", []) + stage.get("metrics", [])
        if isinstance(out, dict)
        for path, options in out.items()
        if options.get("cache") is False
    }
    files = {p: m for p, m in locked_data_files(stack.project).items() if p not in uncached}
    assert "data/splits/train.parquet" in files and "data/raw/customers.parquet" in files
    missing = {
        path: md5
        for path, md5 in files.items()
        if f"store/files/md5/{md5[:2]}/{md5[2:]}" not in keys
    }
    assert not missing, f"not on the S3 remote: {missing}; bucket holds {sorted(keys)[:20]}"
    status = run(
        [str(BIN / "dvc"), "status", "--cloud", "--json"], stack.env, stack.project, 120, "dvc"
    )
    assert json.loads(status.stdout or "{}") == {}, status.stdout
    assert not (stack.project / ".dvcstore").exists(), "data went to a local remote"


def test_training_is_a_completed_flow_run_on_the_prefect_server(
    stack: Stack, trained: Trained
) -> None:
    """The flow reported to the Prefect server, which keeps its runs in PostgreSQL."""
    runs = flow_runs(stack, "churn-training")
    assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
    stored = query(
        stack, "prefect", "SELECT state_type FROM flow_run WHERE id = %s", (runs[0]["id"],)
    )
    assert stored == [("COMPLETED",)], stored


# --- serve -----------------------------------------------------------------------------------


@dataclass
class Served:
    ready: dict[str, Any]
    version: dict[str, Any]
    few: httpx.Response
    batch: httpx.Response
    unauthorised: int
    sent: list[dict[str, Any]]
    exit_code: int | None
    log: str


@pytest.fixture(scope="module")
def served(stack: Stack, trained: Trained) -> Served:
    """``churn serve`` (what ``make serve`` runs) on the champion, then a SIGTERM."""
    port = free_port()
    log = stack.log_dir / "serving.log"
    env = {
        **stack.env,
        "CHURN_RELOAD_INTERVAL_SECONDS": "0",
        "CHURN_REGISTRY_TIMEOUT_SECONDS": "120",
    }
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*CHURN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=stack.project,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service("serving", f"http://127.0.0.1:{port}", proc, log)
    REPORT["API (churn serve)"] = service.url
    try:
        service.wait_ready("/ready", 180, lambda r: r.status_code == 200)
        key = {"X-API-Key": stack.env["CHURN_API_KEY"]}
        few_records = records(5, seed=11)
        batch_records = records(600, seed=12)  # enough for a monitoring window (monitor.min_rows)
        with httpx.Client(base_url=service.url, timeout=60) as http:
            ready = http.get("/ready").json()
            version = http.get("/version").json()
            unauthorised = http.post("/predict", json={"records": few_records[:1]}).status_code
            few = http.post("/predict", json={"records": few_records}, headers=key)
            batch = http.post("/predict", json={"records": batch_records}, headers=key)
        # Graceful stop as a container runtime does it: the log is drained before the exit.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serving did not stop within 60 s of SIGTERM:\n{tail(log)}")
        return Served(
            ready, version, few, batch, unauthorised, few_records + batch_records,
            proc.returncode, tail(log),
        )  # fmt: skip
    finally:
        service.stop()


def test_service_answers_with_the_champion_from_the_tracking_server(
    trained: Trained, served: Served
) -> None:
    """200s scored by the registry's champion (not the cache or the rules); the key is enforced."""
    assert served.ready["status"] == "ready", served.ready
    assert served.version["version"] == trained.version and served.version["alias"] == "champion"
    assert served.version["run_id"] == trained.run_id
    assert served.unauthorised == 401
    for response, n in ((served.few, 5), (served.batch, 600)):
        assert response.status_code == 200, response.text[:500]
        body = response.json()
        assert body["model_version"] == trained.version
        assert len(body["predictions"]) == n
        assert all(0.0 <= p["churn_probability"] <= 1.0 for p in body["predictions"])


def test_prediction_log_is_in_postgresql_with_keyed_hashes_only(
    stack: Stack, trained: Trained, served: Served
) -> None:
    """Every acknowledged record is a row after SIGTERM; ids are HMACs with the production key."""
    # uvicorn re-raises SIGTERM after a graceful shutdown (-15) instead of exiting with 0.
    assert served.exit_code in (0, -signal.SIGTERM), served.log
    assert "Application shutdown complete" in served.log, served.log
    rows = query(
        stack, "app", "SELECT model_version, customer_hash, features::text FROM predictions"
    )
    assert len(rows) == len(served.sent), (len(rows), len(served.sent))
    assert {r[0] for r in rows} == {trained.version}
    key = stack.env["CHURN_ID_HASH_KEY"].encode()
    ids = [r["customerID"] for r in served.sent]
    expected = {hmac.new(key, i.encode(), hashlib.sha256).hexdigest() for i in ids}
    assert {r[1] for r in rows} == expected
    stored_text = " ".join(f"{r[1]} {r[2]}" for r in rows)
    assert not any(i in stored_text for i in ids[:50]), "a raw customer id reached the log"


# --- monitor ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitored(stack: Stack, served: Served) -> subprocess.CompletedProcess[str]:
    """``churn monitor --no-retrain`` (``make monitor RETRAIN=0``) in the project.

    The DVC cache is deleted first, so the champion's training split (the reference) has to come
    back from the S3 remote. ``--no-retrain`` keeps a false alarm from starting a second training.
    """
    shutil.rmtree(stack.project / ".dvc" / "cache", ignore_errors=True)
    started = time.monotonic()
    done = run(
        [*CHURN, "monitor", "--no-retrain"],
        stack.env,
        stack.project,
        420,
        "churn monitor",
        stack.server_logs,
    )
    REPORT["churn monitor"] = f"{time.monotonic() - started:.0f} s"
    return done


def test_monitoring_logs_a_run_on_the_tracking_server(
    stack: Stack, trained: Trained, served: Served, monitored: subprocess.CompletedProcess[str]
) -> None:
    """Evidently compared the PostgreSQL log with the reference fetched from S3; MLflow has it."""
    from churn.data.versioning import cached_file_path, locked_data_files

    client = mlflow_client(stack)
    experiment = client.get_experiment_by_name("churn-monitoring")
    assert experiment is not None, monitored.stdout[-3000:]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    result = runs[0].data
    assert result.tags["action"] in {"none", "retrain-disabled"}, result.tags
    assert result.metrics["window_rows"] == len(served.sent)
    assert any(name.startswith("drift.") for name in result.metrics), sorted(result.metrics)
    keys = stack.keys("mlflow")
    assert any(f"/{runs[0].info.run_id}/artifacts/" in k for k in keys)
    # The reference came back from the S3 remote into the (deleted) cache.
    train_md5 = locked_data_files(stack.project)["data/splits/train.parquet"]
    assert cached_file_path(stack.project / ".dvc" / "cache", train_md5).is_file()
    assert [r["state_type"] for r in flow_runs(stack, "churn-monitoring")] == ["COMPLETED"]


# --- deployments -------------------------------------------------------------------------------


def test_deployments_are_served_and_run_on_the_prefect_server(
    stack: Stack, served: Served, monitored: subprocess.CompletedProcess[str]
) -> None:
    """``make deployments`` (``churn deployments``) registers the weekly training
    and hourly monitoring deployments and runs their flow runs: one is started by hand, as
    ``prefect deployment run`` does, and completes on the server."""
    log = stack.log_dir / "deployments.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*CHURN, "deployments"],
            env=stack.env,
            cwd=stack.project,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service("deployments", stack.prefect.url, proc, log)
    try:
        deadline = time.monotonic() + 180
        deployments: dict[str, Any] = {}
        while len(deployments) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, f"make deployments exited:\n{tail(log)}"
            found = httpx.post(stack.prefect.url + "/api/deployments/filter", json={}, timeout=30)
            found.raise_for_status()
            deployments = {d["name"] + "@" + d["flow_id"]: d for d in found.json()}
            time.sleep(1)
        assert len(deployments) == 2, f"deployments: {list(deployments)}\n{tail(log)}"
        crons = sorted(s["schedule"]["cron"] for d in deployments.values() for s in d["schedules"])
        assert crons == sorted([stack_settings(stack).monitoring_schedule,
                                stack_settings(stack).training_schedule])  # fmt: skip
        done = run(
            [
                str(BIN / "prefect"), "deployment", "run", "churn-monitoring/scheduled",
                "--param", "retrain=false", "--watch", "--watch-timeout", "420",
            ],
            stack.env, stack.project, 480, "prefect deployment run", lambda: tail(log),
        )  # fmt: skip
        assert "Completed" in done.stdout, done.stdout[-3000:]
    finally:
        service.stop()
    # `make monitor`'s run and this one; the server's scheduler may have added future runs.
    states = [r["state_type"] for r in flow_runs(stack, "churn-monitoring")]
    assert states.count("COMPLETED") >= 2 and not {"FAILED", "CRASHED"} & set(states), states


def stack_settings(stack: Stack) -> Any:
    from churn.config.settings import get_settings

    return get_settings(project_dir=stack.project)


# --- refusals ----------------------------------------------------------------------------------


def test_service_refuses_a_placeholder_api_key_in_production(stack: Stack) -> None:
    """`CHURN_API_KEY=change-me` with CHURN_ENVIRONMENT=production: no start, the variable named."""
    env = {**stack.env, "CHURN_API_KEY": "change-me", "CHURN_REGISTRY_TIMEOUT_SECONDS": "5"}
    port = free_port()
    try:
        done = subprocess.run(
            [*CHURN, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=stack.project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the service started (or hung) with a placeholder CHURN_API_KEY")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "CHURN_API_KEY" in output, output[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
