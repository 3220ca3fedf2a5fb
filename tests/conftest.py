"""Shared fixtures: throw-away copies of the project with their own MLflow store and DVC remote."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

# Before any test module imports Feast: feast.metrics exports a multiprocess folder for
# prometheus_client, which picks where metric values live when it is first imported (then every
# service built in this process would add its counters to the others'). The plug-in guards its own
# import (src/churn/feature_store/__init__.py); tests that import feast directly are covered here.
import prometheus_client  # noqa: F401
import pytest

from tools.fork import fork_project, free_port

# What test modules record for the end of the run (the production stack's servers, versions and
# timings): printed in the terminal summary, also when the modules ran in pytest-xdist workers.
RUN_REPORT: dict[str, str] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the report to the controller
        workeroutput["run_report"] = dict(RUN_REPORT)


def pytest_testnodedown(node: Any, error: Any) -> None:
    RUN_REPORT.update(getattr(node, "workeroutput", {}).get("run_report", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RUN_REPORT:
        terminalreporter.section("production profile: what the tests started")
        for key, value in RUN_REPORT.items():
            terminalreporter.write_line(f"{key:<22} {value}")


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test touches the developer's MLflow store, Prefect database or .env."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if (
            name.startswith(("MLFLOW_", "CHURN_", "PROMETHEUS_MULTIPROC"))
            or name == "PREFECT_API_URL"
        ):
            del os.environ[name]
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"
    yield
    os.environ.clear()
    os.environ.update(saved)
    # Prefect stops its temporary server at interpreter exit and logs that to a stream pytest
    # has already closed; the message is harmless, the traceback it would print is noise.
    logging.raiseExceptions = False


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server for the session, in the session's own Prefect home.

    Flows then report to it over HTTP (``PREFECT_API_URL``) instead of each process starting a
    temporary server of its own, which took 7-13 s per process and, on a cold machine, longer
    than Prefect's start-up timeout. API only: no scheduler or other services, no UI.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("prefect-server") / "server.log"
    prefect = Path(sys.executable).parent / "prefect"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--no-services", "--no-ui", "--analytics-off"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"prefect server not up after 300 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    _refresh_prefect_settings()
    yield url
    os.environ.pop("PREFECT_API_URL", None)
    _refresh_prefect_settings()
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _refresh_prefect_settings() -> None:
    """Make flows run in this process see the environment as it is now.

    Prefect reads its settings once, when it is imported (at collection, before any fixture):
    without this, in-process flows ignored ``PREFECT_API_URL`` and each test process started a
    temporary server of its own (which times out on a loaded machine).
    """
    from prefect.context import refresh_global_settings_context

    refresh_global_settings_context()


@pytest.fixture(autouse=True)
def _prefect_for_integration_tests(request: pytest.FixtureRequest) -> None:
    """Integration tests run flows: give them the session's Prefect server (the production
    profile's tests start their own, on PostgreSQL)."""
    marker = request.node.get_closest_marker
    if marker("integration") is not None and marker("production") is None:
        request.getfixturevalue("prefect_api")


@pytest.fixture
def project_factory(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(100))
    return lambda overrides=None: fork_project(tmp_path / f"project{next(counter)}", overrides)


SMALL = {"ingest": {"generator": {"n_rows": 2500, "seed": 7}}, "train": {"search": {"n_trials": 1}}}


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, Any]:
    """One real training flow run (Prefect, DVC, MLflow) on small generated data, shared."""
    from pipelines.training import training_flow

    project = fork_project(tmp_path_factory.mktemp("trained") / "project", SMALL)
    summary = training_flow(str(project), push=True)
    return project, summary


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def offline_page(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium page (Debian's ``chromium`` package, driven by playwright) that can
    reach 127.0.0.1 and nothing else: every other request is aborted and listed in
    ``page.blocked``, so a page that needs the internet shows it."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []

    def route(r: Any) -> None:
        host = r.request.url.split("/")[2] if "://" in r.request.url else ""
        if host.split(":")[0] in ("127.0.0.1", "localhost") or r.request.url.startswith(
            ("data:", "blob:", "file:")
        ):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", route)
        page.blocked = blocked
        try:
            yield page
        finally:
            browser.close()
