"""The production profile without containers: PostgreSQL, S3, MLflow and Prefect servers.

One module-scoped stack per test module. Every database and bucket gets a random suffix and is
removed at teardown (failure included); every process is started in its own session and stopped
by its process-group id.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RUN_REPORT
from tools.fork import free_port

# Read at import, i.e. at collection: the session fixture `_isolated_environment`
# (tests/conftest.py) removes every CHURN_* variable before the tests run.
DATABASE_URL = os.environ.get("CHURN_TEST_DATABASE_URL", "")
SKIP_REASON = (
    "production-profile tests need CHURN_TEST_DATABASE_URL, a SQLAlchemy URL of a PostgreSQL admin "
    "connection (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); .ci/run sets it when "
    "a local PostgreSQL answers"
)
SMALL = {"ingest": {"generator": {"n_rows": 2000, "seed": 7}}, "train": {"search": {"n_trials": 1}}}

# What the stack started, printed at the end of the pytest run (tests/conftest.py's terminal
# summary, which also collects it from pytest-xdist's workers).
REPORT = RUN_REPORT


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


@dataclass
class Service:
    """A server process in its own session, with its output in a log file."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM to the process group (the server's workers too), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Workers that outlived their parent still carry its group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode

    def wait_ready(self, path: str, timeout: float, ok: Callable[[httpx.Response], bool]) -> None:
        """Poll ``url + path`` until ``ok``; fail with the log's tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; "
                    f"log {self.log}:\n{tail(self.log)}"
                )
            try:
                response = httpx.get(self.url + path, timeout=5)
                if ok(response):
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        pytest.fail(
            f"{self.name} not ready at {self.url}{path} after {timeout:.0f} s (last: {last}); "
            f"log {self.log}:\n{tail(self.log)}"
        )


def start_service(
    name: str, cmd: list[str], port: int, env: dict[str, str], log_dir: Path, cwd: Path
) -> Service:
    log = log_dir / f"{name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Service(name, f"http://127.0.0.1:{port}", proc, log)


def run(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; fail with its output (and ``context()``) when it fails."""
    try:
        done = subprocess.run(
            cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        extra = context() if context else ""
        pytest.fail(
            f"{what} did not finish in {timeout:.0f} s: {cmd}\n{(out or '')[-4000:]}{extra}"
        )
    if check and done.returncode != 0:
        pytest.fail(
            f"{what} failed with {done.returncode}: {cmd}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}\n"
            + (context() if context else "")
        )
    return done


@dataclass
class Stack:
    """The running production profile and the names it made."""

    suffix: str
    admin_url: str
    databases: dict[str, str]  # role -> database name
    buckets: dict[str, str]  # role -> bucket name
    s3_url: str
    mlflow: Service
    prefect: Service
    project: Path
    env: dict[str, str]  # what the project's commands run with (production settings)
    log_dir: Path

    def libpq(self, role: str | None = None) -> str:
        """A conninfo for psycopg: the admin database, or one of the stack's."""
        return pg_url(self.admin_url, self.databases[role] if role else None, None)

    def s3(self) -> Any:
        return s3_client(self.s3_url)

    def keys(self, role: str) -> list[str]:
        """Every object key in one of the stack's buckets."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.buckets[role])
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def server_logs(self) -> str:
        """The tails of the servers' logs, for failure messages."""
        return "server logs:\n" + "\n".join(
            f"--- {s.name} ({s.log}):\n{tail(s.log, 2500)}" for s in (self.mlflow, self.prefect)
        )


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",  # moto accepts any credentials
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def pg_url(admin_url: str, database: str | None, driver: str | None = "psycopg") -> str:
    """The admin URL pointed at another database and driver (``None``: a libpq conninfo)."""
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(drivername=f"postgresql+{driver}" if driver else "postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _admin_conninfo(admin_url: str) -> str:
    return pg_url(admin_url, None, None)


def _create_databases(admin_url: str, names: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_admin_conninfo(admin_url), autocommit=True, connect_timeout=10) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_databases(admin_url: str, names: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_admin_conninfo(admin_url), autocommit=True, connect_timeout=10) as conn:
        for name in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _remove_bucket(client: Any, bucket: str) -> None:
    with contextlib.suppress(client.exceptions.NoSuchBucket):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
        client.delete_bucket(Bucket=bucket)


def _cli(env: dict[str, str], *cmd: str) -> str:
    done = subprocess.run(
        [str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, env=env, timeout=120
    )
    return done.stdout


def _versions(env: dict[str, str], admin_url: str, prefect: Service) -> None:
    """Record what runs: the closing note of issue 5 quotes these."""
    import moto
    import psycopg

    with psycopg.connect(_admin_conninfo(admin_url), connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    REPORT["PostgreSQL version"] = str(row[0] if row else "?")
    REPORT["MLflow version"] = _cli(env, "mlflow", "--version").strip()
    client = dict(
        line.split(":", 1) for line in _cli(env, "prefect", "version").splitlines() if ":" in line
    )
    server = httpx.get(prefect.url + "/api/admin/version", timeout=10).json()
    REPORT["Prefect version"] = (
        f"{client.get('Version', '?').strip()} (server API answers {server}, "
        f"server type {client.get('Server type', '?').strip()})"
    )
    REPORT["moto version"] = moto.__version__


BIN = Path(sys.executable).parent  # the locked environment's console scripts


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Databases, S3 buckets, MLflow and Prefect servers, and a throw-away project using them."""
    if not DATABASE_URL:
        pytest.skip(SKIP_REASON)
    from tools.fork import fork_project

    base = tmp_path_factory.mktemp("production")
    log_dir = base / "logs"
    log_dir.mkdir()
    suffix = secrets.token_hex(4)
    databases = {r: f"churn_{r}_{suffix}" for r in ("mlflow", "prefect", "app")}
    buckets = {"mlflow": f"mlflow-{suffix}", "dvc": f"dvc-{suffix}"}
    # Only what a user's shell would carry: none of the host's MLflow, CHURN or AWS settings.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_", "AWS_"))}
    clean.pop("PREFECT_API_URL", None)

    with contextlib.ExitStack() as teardown:  # callbacks run last-in first-out, also on failure
        # 1. databases
        _create_databases(DATABASE_URL, list(databases.values()))
        teardown.callback(_drop_databases, DATABASE_URL, list(databases.values()))

        # 2. S3 (moto's server standing in for MinIO) and the buckets
        s3_port = free_port()
        moto_server = start_service(
            "moto-server",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
            s3_port,
            clean,
            log_dir,
            base,
        )
        teardown.callback(moto_server.stop)
        moto_server.wait_ready("/moto-api/", 60, lambda r: r.status_code == 200)
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto_server.url,
            "MLFLOW_S3_ENDPOINT_URL": moto_server.url,
        }
        s3 = s3_client(moto_server.url)
        for bucket in buckets.values():
            s3.create_bucket(Bucket=bucket)
            teardown.callback(_remove_bucket, s3, bucket)

        # 3. MLflow (PostgreSQL backend, artefacts proxied to S3) and Prefect (PostgreSQL)
        mlflow_port, prefect_port = free_port(), free_port()
        mlflow_server = start_service(
            "mlflow-server",
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                pg_url(DATABASE_URL, databases["mlflow"]),
                "--artifacts-destination",
                f"s3://{buckets['mlflow']}",
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            mlflow_port,
            {**clean, **aws},
            log_dir,
            base,
        )
        teardown.callback(mlflow_server.stop)
        prefect_home = base / "prefect-server-home"
        prefect_home.mkdir()
        prefect_server = start_service(
            "prefect-server",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(prefect_port),
                "--no-ui",
                "--analytics-off",
            ],
            prefect_port,
            {
                **clean,
                "PREFECT_HOME": str(prefect_home),
                "PREFECT_API_DATABASE_CONNECTION_URL": pg_url(
                    DATABASE_URL, databases["prefect"], "asyncpg"
                ),
            },
            log_dir,
            base,
        )
        teardown.callback(prefect_server.stop)

        # 4. the project (made while the servers start), its DVC remote switched to S3
        project = fork_project(base / "project", SMALL)
        s3_env = {**clean, **aws}
        dvc = str(BIN / "dvc")
        for cmd in (
            [dvc, "remote", "remove", "local"],
            [dvc, "remote", "add", "-d", "s3", f"s3://{buckets['dvc']}/store"],
            [dvc, "remote", "modify", "s3", "endpointurl", moto_server.url],
            ["git", "commit", "-qam", "DVC remote on S3"],
        ):
            run(cmd, s3_env, project, 60, " ".join(cmd[:3]))

        mlflow_server.wait_ready("/health", 180, lambda r: r.status_code == 200)
        prefect_server.wait_ready("/api/health", 180, lambda r: r.status_code == 200)

        client_home = base / "prefect-client-home"
        client_home.mkdir()
        stack = Stack(
            suffix=suffix,
            admin_url=DATABASE_URL,
            databases=databases,
            buckets=buckets,
            s3_url=moto_server.url,
            mlflow=mlflow_server,
            prefect=prefect_server,
            project=project,
            env={
                **clean,
                **aws,
                "MLFLOW_TRACKING_URI": mlflow_server.url,
                "PREFECT_API_URL": prefect_server.url + "/api",
                "PREFECT_HOME": str(client_home),
                "CHURN_ENVIRONMENT": "production",
                "CHURN_PROJECT_DIR": str(project),
                "CHURN_API_KEY": secrets.token_urlsafe(32),
                "CHURN_ID_HASH_KEY": secrets.token_urlsafe(32),
                "CHURN_PREDICTION_LOG_URL": pg_url(DATABASE_URL, databases["app"]),
            },
            log_dir=log_dir,
        )
        REPORT.update(
            {
                "PostgreSQL": f"{_admin_conninfo(DATABASE_URL)}, databases "
                + ", ".join(databases.values()),
                "S3 endpoint (moto)": f"{moto_server.url}, buckets {', '.join(buckets.values())}",
                "MLflow server": mlflow_server.url,
                "Prefect server": prefect_server.url + "/api",
            }
        )
        _versions(stack.env, DATABASE_URL, prefect_server)
        for key, value in REPORT.items():
            print(f"{key}: {value}")
        yield stack
