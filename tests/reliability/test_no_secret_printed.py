"""Every ``churn`` command that reaches a store or a server prints its URLs with the password
masked, its error messages included (issue #26).

The commands are enumerated from the Typer app: each is run, or skipped with its reason, so a new
command needs a decision here. They run in one process of their own (the imports paid once), with
secrets planted in the environment and ``params.yaml`` and every server on a closed port, so
they fail fast, and what they print (stdout, stderr, logs, tracebacks) holds no secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from churn.config.redact import mask_credentials, without_credentials

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3tPW"
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
ENV = {
    "MLFLOW_TRACKING_URI": f"http://mlflowuser:{SECRET}-mlflow@{CLOSED}",
    "MLFLOW_TRACKING_PASSWORD": f"{SECRET}-mlflow-password",
    "MLFLOW_S3_ENDPOINT_URL": f"http://minio:{SECRET}-s3@{CLOSED}",
    "AWS_SECRET_ACCESS_KEY": f"{SECRET}-aws",
    "CHURN_PREDICTION_LOG_URL": f"postgresql+psycopg://app:{SECRET}-db@{CLOSED}/app",
    "CHURN_LABELS_URL": f"postgresql+psycopg://crm:{SECRET}-labels@{CLOSED}/crm",
    "CHURN_API_KEY": f"Api-{SECRET}-1b2c3d4e5f6a7b8c9d0e1f",
    "CHURN_ID_HASH_KEY": f"Hmac-{SECRET}-9f8e7d6c5b4a3f2e1d0c",
    "CHURN_DVC_REMOTE_URL": f"https://dvc:{SECRET}-dvc@{CLOSED}/store",
    "PREFECT_API_URL": f"http://prefect:{SECRET}-prefect@{CLOSED}/api",
    "PREFECT_API_KEY": f"{SECRET}-prefect-key",
    # Fail fast: no retries against the closed ports.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "PREFECT_CLIENT_MAX_RETRIES": "0",
    "CHURN_REGISTRY_TIMEOUT_SECONDS": "2",
    "COLUMNS": "400",
}
CUSTOMER = "7590-VHVEG"
# Read at import, as tests/production does (the suite's fixtures clear CHURN_* variables).
ADMIN_DATABASE_URL = os.environ.get("CHURN_TEST_DATABASE_URL", "")

# What each command is run with (after ``churn``); the files are made in the project.
RUN: dict[str, list[str]] = {
    "ingest": ["ingest"],  # params.yaml: ingest.kind sql, its URL with a password
    "train": ["train"],
    "evaluate": ["evaluate"],
    "model-info": ["model-info"],
    "history": ["history"],
    "rollback": ["rollback"],
    "tag-data": ["tag-data"],
    "pull-data": ["pull-data"],
    "check-challenger": ["check-challenger"],
    "promote": ["promote"],
    "record-image": ["record-image", "--digest", "sha256:" + "0" * 64],
    "job-summary": ["job-summary"],
    "batch-predict": ["batch-predict", "customers.csv", "scored.csv"],
    "monitor": ["monitor"],
    "forget": ["forget", "--customer-id", CUSTOMER],
    "retention": ["retention"],
    "dead-letters list": ["dead-letters", "list"],
    "dead-letters replay": ["dead-letters", "replay"],
    "simulate": ["simulate", "--url", f"http://api:{SECRET}-api@{CLOSED}", "--rows", "5"],
}
SKIP = {
    "init-dataset": "profiles a local file: no URL",
    "validate": "local files only",
    "events": "local files only (the generated customers' activity events)",
    "split": "local files only",
    "warm": "prints its socket's path (tests/reliability/test_warm_trust.py)",
    "serve": "runs until stopped: test_simulate_and_the_service_print_no_secret below",
    "deployments": "serves deployments until stopped",
    "demo": "a whole stack of its own on local stores",
    "screenshots": "a whole stack of its own on local stores",
    "bench serve": "a benchmark on a throw-away project of its own",
    "bench train": "a benchmark on a throw-away project of its own",
    "bench monitor": "a benchmark on a throw-away project of its own",
    "bench scale": "a benchmark on a throw-away project of its own",
    "bench real-data": "a benchmark on a throw-away project of its own",
}

# Runs each command in this one process, each between markers, each bounded by an alarm.
DRIVER = textwrap.dedent(
    """
    import json, signal, sys, traceback
    from pipelines.cli import run_app

    class Late(Exception):
        pass

    def late(*_):
        raise Late("still running after 60 s")

    signal.signal(signal.SIGALRM, late)
    for name, argv in json.loads(sys.argv[1]).items():
        print(f"=== {name}", flush=True)
        print(f"=== {name}", file=sys.stderr, flush=True)
        signal.alarm(60)
        try:
            run_app(argv)  # what `churn` runs: a traceback, if any, is its own
        except SystemExit:
            pass
        except BaseException:  # Late
            traceback.print_exc()
        finally:
            signal.alarm(0)
        sys.stdout.flush()
        sys.stderr.flush()
    """
)


def _commands() -> set[str]:
    import typer.main

    from pipelines.cli.commands import app

    def walk(command: object, prefix: list[str]) -> set[str]:
        subs = getattr(command, "commands", None)
        if subs is None:
            return {" ".join(prefix)}
        return set().union(*(walk(sub, [*prefix, name]) for name, sub in subs.items()))

    return walk(typer.main.get_command(app), [])


def test_every_command_is_run_or_skipped_with_a_reason() -> None:
    assert _commands() == set(RUN) | set(SKIP)
    assert not set(RUN) & set(SKIP)


def test_the_masking_keeps_what_says_which_server_and_hides_the_password() -> None:
    assert (
        mask_credentials("postgresql+psycopg://app:pw@db:5432/app?password=pw2&sslmode=require")
        == "postgresql+psycopg://app:***@db:5432/app?password=***&sslmode=require"
    )
    said = mask_credentials("API request to http://u:p@ss:w@host:1/api failed (http://h/ ok)")
    assert said == "API request to http://u:***@host:1/api failed (http://h/ ok)"
    assert without_credentials("https://user:pw@mlflow.example:8443/") == (
        "https://mlflow.example:8443/"
    )
    assert mask_credentials("sqlite:////srv/log/predictions.db") == (
        "sqlite:////srv/log/predictions.db"
    )


def test_no_command_prints_a_planted_secret(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["kind"] = "sql"
    params["ingest"]["sql"] = {
        "url": f"postgresql+psycopg://reader:{SECRET}-source@{CLOSED}/crm",
        "query": "SELECT * FROM customers",
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "customers.csv").write_text(f"customerID,tenure\n{CUSTOMER},3\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
        **ENV,
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(RUN)],
        cwd=project,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    said = done.stdout + done.stderr
    ran = {line.removeprefix("=== ") for line in done.stderr.splitlines() if line[:4] == "=== "}
    assert ran == set(RUN), said[-3000:]
    leaks = [line for line in said.splitlines() if SECRET in line]
    assert not leaks, "\n".join(leaks[:20])
    # The masked URLs are there: the messages still say which server failed.
    assert f"tracking URI http://mlflowuser:***@{CLOSED}" in said, said[-3000:]
    assert f"no prediction service answers at http://api:***@{CLOSED}" in said, said[-3000:]


@pytest.fixture
def labels_database() -> Iterator[str]:
    """A PostgreSQL database of its own (trust auth: the planted password is never checked)."""
    admin = ADMIN_DATABASE_URL
    if not admin:
        pytest.skip("needs CHURN_TEST_DATABASE_URL (a PostgreSQL admin URL)")
    import sqlalchemy as sa

    name = f"churn_secrets_{os.getpid()}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(admin).set(password=f"{SECRET}-labels", database=name)
    yield url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    engine.dispose()


def test_simulate_and_the_service_print_no_secret(tmp_path: Path, labels_database: str) -> None:
    """`churn simulate` against a real `churn serve`: the labels go to a PostgreSQL URL with a
    password, and neither the simulator's output nor the service's log shows it."""
    from tests.serving.conftest import start_server

    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = {
        **{k: v for k, v in ENV.items() if not k.startswith("PREFECT_")},
        "CHURN_PREDICTION_LOG_URL": f"sqlite:///{project / 'log' / 'predictions.db'}",
        "CHURN_LABELS_URL": labels_database,
    }
    server = start_server(project, tmp_path, env, ready=300)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "simulate", "--url", server.url, "--rows", "5"],
            cwd=project,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))},
                **env,
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.stop()
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, said[-3000:]
    masked = labels_database.replace(f"{SECRET}-labels", "***")
    assert f"labels: wrote 5 true outcomes to {masked}" in said, said[-3000:]
    assert SECRET not in said
    assert SECRET not in server.log.read_text(errors="replace")
