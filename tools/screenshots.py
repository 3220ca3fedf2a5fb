"""``churn screenshots``: the pictures in docs/*.md, taken again from scratch.

They are shown in docs/getting-started.md ("What you see").

A throw-away fork (``tools.fork``) is trained through its own Prefect server, served, sent
traffic and labels (``tools.simulate``) and monitored five times (the later runs on drifted
traffic, so the dashboard moves); then the MLflow UI, the Evidently UI, the service's ``/docs``,
a monitoring report and the Prefect UI are opened in headless Chromium (Debian's
``/usr/bin/chromium``, driven by playwright) with every request beyond 127.0.0.1 blocked, and
each page is photographed once the content that proves it rendered is on screen. Every server
started here is stopped on the way out, also on failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from churn.config.settings import get_settings
from churn.prediction_store import PredictionStore
from churn.release.job_summary import run_page
from tools.fork import (
    CHURN,
    ROOT,
    fork_project,
    free_port,
    running_service,
    served_version,
    wait_for_log,
    wait_for_version,
)
from tools.simulate import DriftKind, make_customers, send_labels, send_traffic

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 800}
OUT_DIR = ROOT / "docs" / "screenshots"
# Seconds a page has to show the content that proves it rendered.
PAGE_TIMEOUT_S = 60.0

# The five monitoring runs: (what the traffic is, customers, shift, seed). Calm first, then a
# price rise, then everything at once (drift and decay: the job retrains), then more of it.
ROUNDS: list[tuple[str, int, DriftKind, int]] = [
    ("normal traffic", 1500, DriftKind.none, 101),
    ("normal traffic", 1000, DriftKind.none, 102),
    ("prices up 30 %", 2000, DriftKind.charges, 103),
    (
        "strong drift (prices, contracts, a new payment method, a competitor)",
        2000,
        DriftKind.strong,
        104,
    ),
    ("strong drift, after the retrain", 2000, DriftKind.strong, 105),
]

# Child processes get their own Prefect home and server, and the fork's MLflow store: nothing
# of the person's own setup (a PREFECT_API_URL, MLFLOW_TRACKING_URI, CHURN_*) leaks in.
_INHERITED_PREFIXES = ("CHURN_", "PREFECT_", "MLFLOW_")


class ScreenshotError(RuntimeError):
    """A server or page did not come up; the message names it and where its log is."""


def child_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """``base`` without the CHURN_*, PREFECT_* and MLFLOW_* variables, plus ``extra``."""
    env = {k: v for k, v in base.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(extra)
    return env


def is_loopback(url: str) -> bool:
    """Whether the browser may load ``url`` offline: this machine, or data in the page."""
    if url.startswith(("data:", "blob:", "file:", "about:")):
        return True
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


def optimise_png(path: Path) -> int:
    """Re-encode ``path`` with a 256-colour palette (screenshots of UIs lose nothing visible);
    returns the bytes it has now."""
    from PIL import Image

    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    if buffer.tell() < path.stat().st_size:
        path.write_bytes(buffer.getvalue())
    return path.stat().st_size


class Progress:
    """One line per step on the terminal, with the seconds since the start."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {text}", flush=True)


@contextlib.contextmanager
def background(
    name: str,
    command: list[str],
    env: dict[str, str],
    log: Path,
    ready_url: str,
    timeout_s: float = 180.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group, its output in ``log``; yields once ``ready_url``
    answers 200. The group gets SIGTERM on the way out (SIGKILL after 30 s), also on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own environment's commands
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise ScreenshotError(
                        f"the {name} exited early (code {process.returncode}); its log: {log}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise ScreenshotError(
                        f"the {name} did not answer {ready_url} within {timeout_s:.0f} s; "
                        f"its log: {log}"
                    )
                time.sleep(0.5)
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _bin(name: str) -> str:
    """A command of this interpreter's environment (``.venv/bin/<name>``)."""
    return str(Path(sys.executable).parent / name)


@dataclass
class Stack:
    """Where everything runs, for the pages."""

    project: Path
    logs: Path
    env: dict[str, str]
    prefect_api: str = ""
    service: str = ""
    mlflow: str = ""
    evidently: str = ""
    reports: list[Path] = field(default_factory=list)

    @classmethod
    def of(cls, project: Path, work: Path, prefect_port: int) -> Stack:
        """The stack of ``project``: its own Prefect home under ``work``, its MLflow store."""
        tracking_uri = get_settings(project_dir=project).tracking_uri
        env = child_env(
            dict(os.environ),
            PREFECT_HOME=str(work / "prefect-home"),
            PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
            MLFLOW_TRACKING_URI=tracking_uri,
            CHURN_PROJECT_DIR=str(project),
        )
        return cls(project, work / "logs", env, prefect_api=env["PREFECT_API_URL"])


def churn(stack: Stack, *args: str, log_name: str) -> None:
    """``churn -C <fork> <args>`` in a child process; its output in ``logs/<log_name>.log``."""
    log = stack.logs / f"{log_name}.log"
    with log.open("ab") as out:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [*CHURN, "-C", str(stack.project), *args],
            env=stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise ScreenshotError(
            f"churn {' '.join(args)} failed (code {done.returncode}); its log: {log}"
        )


def run(out_dir: Path = OUT_DIR, work: Path = ROOT / "reports" / "screenshots") -> dict[str, Path]:
    """Build the fork, its runs and servers, and write the PNGs to ``out_dir``; returns them.
    Every server started here is stopped on the way out, also on failure or SIGTERM."""
    from tools.demo import DEMO_OVERRIDES  # imports the flows: Prefect, MLflow

    if not CHROMIUM.exists():
        raise ScreenshotError(f"no {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    say = Progress()
    project = fork_project(work / "project", DEMO_OVERRIDES)
    say(f"project forked to {project}; the servers' and flows' logs: {work / 'logs'}")
    stack = Stack.of(project, work, free_port())
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        with contextlib.ExitStack() as servers:
            start_prefect(servers, stack)
            say(f"Prefect server up at {stack.prefect_api} (PREFECT_HOME={work / 'prefect-home'})")
            churn(stack, "train", log_name="train")
            say("trained v1 (churn train: a flow run on that server)")
            start_service(servers, stack)
            say(f"service up at {stack.service}")
            monitoring_rounds(stack, ROUNDS, say)
            shots = photograph(servers, stack, out_dir, say)
        say("every server stopped")
        return shots
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds: the servers' finally blocks stop them


def start_prefect(servers: contextlib.ExitStack, stack: Stack) -> None:
    """A Prefect server (API + UI) of its own (``stack.env``'s PREFECT_HOME and port)."""
    port = urlsplit(stack.prefect_api).port
    command = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = stack.logs / "prefect-server.log"
    servers.enter_context(
        background("Prefect server", command, stack.env, log, f"{stack.prefect_api}/health")
    )


def start_service(servers: contextlib.ExitStack, stack: Stack) -> None:
    """``churn serve`` on the fork (``tools.fork.running_service``); monitoring reads its
    latency and cost from it (CHURN_SERVICE_URL)."""
    tracking_uri = stack.env["MLFLOW_TRACKING_URI"]
    stack.service = servers.enter_context(
        running_service(stack.project, free_port(), env={"MLFLOW_TRACKING_URI": tracking_uri})
    )
    stack.env["CHURN_SERVICE_URL"] = stack.service


def photograph(
    servers: contextlib.ExitStack, stack: Stack, out_dir: Path, say: Callable[[str], None]
) -> dict[str, Path]:
    """Start the MLflow and Evidently UIs, then take each page of ``PAGES`` to ``out_dir``."""
    from playwright.sync_api import sync_playwright

    settings = get_settings(project_dir=stack.project)
    mlflow = [_bin("mlflow"), "server", "--backend-store-uri", settings.tracking_uri]
    stack.mlflow = _ready_url(
        servers, stack, "MLflow UI", [*mlflow, "--host", "127.0.0.1", "--workers", "1"], "/health"
    )
    say(f"MLflow UI up at {stack.mlflow}")
    evidently = [_bin("evidently"), "ui", "--workspace", str(settings.evidently_workspace)]
    stack.evidently = _ready_url(
        servers, stack, "Evidently UI", [*evidently, "--host", "127.0.0.1"], "/"
    )
    say(f"Evidently UI up at {stack.evidently}")
    shots: dict[str, Path] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            for name, take in PAGES.items():
                path = out_dir / f"{name}.png"
                blocked = _shoot(browser, take, stack, path)
                size = optimise_png(path)
                note = f"; blocked (offline): {', '.join(blocked)}" if blocked else ""
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                say(f"{shown} ({size / 1024:.0f} KiB){note}")
                shots[name] = path
        finally:
            browser.close()
    return shots


def _ready_url(
    servers: contextlib.ExitStack, stack: Stack, name: str, command: list[str], health: str
) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = stack.logs / f"{name.split()[0].lower()}-ui.log"
    servers.enter_context(
        background(name, [*command, "--port", str(port)], stack.env, log, url + health)
    )
    return url


def monitoring_rounds(
    stack: Stack, rounds: list[tuple[str, int, DriftKind, int]], say: Callable[[str], None]
) -> None:
    """For each round: its customers to the service, their labels to the store, then ``churn
    monitor`` (which retrains when it decides to; the service follows the champion)."""
    from churn.release import registry, tracking

    settings = get_settings(project_dir=stack.project)
    store = PredictionStore.from_settings(settings)
    client = tracking.connect(settings)
    try:
        for what, rows, drift, seed in rounds:
            customers = make_customers(rows, seed=seed, drift=drift)
            version = served_version(stack.service)
            logged = store.read_window(2**62, max_rows=1, model_version=version).total_rows
            send_traffic(stack.service, customers)
            send_labels(store, customers)
            wait_for_log(settings, logged + rows, version)
            churn(stack, "monitor", log_name=f"monitor-{len(stack.reports) + 1}")
            runs = (settings.reports_dir / "monitoring" / settings.model_name).glob("[0-9]*")
            report = max(runs)
            stack.reports.append(report)
            champion = str(registry.current_champion(client, settings.model_name).version)
            wait_for_version(stack.service, champion)
            say(
                f"monitor #{len(stack.reports)} on {rows} customers, {what}: {_decision(report)}; "
                f"serving v{champion}"
            )
    finally:
        store.close()


def _decision(report: Path) -> str:
    decision = json.loads((report / "summary.json").read_text())["decision"]
    return f"{decision['action']} ({decision['reason']})"


# -- the pages --------------------------------------------------------------------------------


def _shoot(browser: Any, take: Callable[[Any, Stack], bool], stack: Stack, path: Path) -> list[str]:
    """Open a fresh offline page, let ``take`` bring it to the content, photograph it to ``path``
    (the whole page when ``take`` says so, else the viewport); returns what the page tried to
    load beyond 127.0.0.1 (blocked). A page that does not show its content is photographed to
    ``<name>.failed.png`` for the error message."""
    blocked: list[str] = []

    def route(r: Any) -> None:
        if is_loopback(r.request.url):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.route("**/*", route)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            full_page = take(page, stack)
        except ScreenshotError as exc:
            failed = path.with_suffix(".failed.png")
            page.screenshot(path=str(failed))
            raise ScreenshotError(f"{path.stem}: {exc} (what it showed: {failed})") from None
        failed = path.with_suffix(".failed.png")
        failed.unlink(missing_ok=True)
        page.screenshot(path=str(path), full_page=full_page)
    finally:
        context.close()
    return blocked


def _appears(page: Any, locator: Any, what: str) -> Any:
    """``locator`` once visible; else a ScreenshotError naming the page and what was missing."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.filter(visible=True).first.wait_for(state="visible", timeout=PAGE_TIMEOUT_S * 1000)
    except PlaywrightTimeout:
        raise ScreenshotError(
            f"{page.url}: {what} did not appear within {PAGE_TIMEOUT_S:.0f} s"
        ) from None
    return locator.filter(visible=True).first


def docs_page(page: Any, stack: Stack) -> bool:
    """The service's /docs, offline: the /predict example sent with "Try it out", its 200."""
    page.goto(f"{stack.service}/docs")
    operation = page.locator("#operations-predict-predict_predict_post")
    _appears(page, operation, "the POST /predict operation")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    _appears(page, status, "the answer to 'Execute'")
    if status.first.inner_text().strip() != "200":
        raise ScreenshotError(f"{page.url}: 'Try it out' got {status.first.inner_text()}, not 200")
    operation.locator(
        ".responses-inner h4", has_text="Server response"
    ).first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 0)


def report_summary_page(page: Any, stack: Stack) -> bool:
    """The summary at the top of the quality report of the first monitoring run that retrained
    (else the last run)."""
    retrained = [r for r in stack.reports if _decision(r).startswith("retrain")]
    report = (retrained or stack.reports)[-1] / "classification.html"
    page.goto(report.as_uri())
    _appears(page, page.locator("#churn-monitoring-summary"), "the monitoring summary")
    return False


def dashboard_page(page: Any, stack: Stack) -> bool:
    """The Evidently workspace's dashboard over the five monitoring runs."""
    from evidently.ui.workspace import Workspace

    from monitoring import workspace

    settings = get_settings(project_dir=stack.project)
    path = settings.evidently_workspace
    name = workspace.project_name(settings.model_name)
    pid = Workspace(str(path)).search_project(name)[0].id
    page.goto(f"{stack.evidently}/projects/{pid}")
    for title in dict.fromkeys(t for t, _ in workspace.FIGURES.values()):
        _appears(page, page.get_by_text(title, exact=True), f"the dashboard panel '{title}'")
    lines = page.locator(".MuiLineElement-root")
    _appears(page, lines.nth(len(workspace.FIGURES) - 1), "a drawn line per figure")
    return True  # every panel


def mlflow_run_page(page: Any, stack: Stack) -> bool:
    """The first training run in the MLflow UI: its datasets (the splits, each with its DVC md5
    as digest) opened beside the tags that name the same files."""
    from churn.release import tracking

    settings = get_settings(project_dir=stack.project)
    client = tracking.connect(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        raise ScreenshotError(f"no MLflow experiment {settings.experiment_name!r}")
    eid = experiment.experiment_id
    run = client.search_runs([eid], order_by=["attributes.start_time ASC"])[0]
    page.goto(run_page(stack.mlflow, eid, run.info.run_id))
    inputs = [d.dataset for d in run.inputs.dataset_inputs]
    if not inputs:
        raise ScreenshotError(f"the MLflow run {run.info.run_id} has no dataset inputs")
    first = inputs[0]
    _appears(page, page.get_by_text(f"{first.name} ({first.digest})"), f"the dataset {first.name}")
    with contextlib.suppress(Exception):  # MLflow's assistant panel, when this version has one
        page.get_by_role("button", name="Close").first.click(timeout=5000)
    if len(inputs) > 1:  # the others are behind "+N"
        more = page.get_by_text(f"+{len(inputs) - 1}", exact=True)
        _appears(page, more, "the other datasets behind +N").click()
    for dataset in inputs[1:]:
        label = f"{dataset.name} ({dataset.digest})"
        _appears(page, page.get_by_text(label), f"the dataset {dataset.name}")
    return False


def prefect_run_page(page: Any, stack: Stack) -> bool:
    """The first training flow run in the Prefect UI, on its Artifacts tab: the links to its
    MLflow run and model version, and its summary."""
    found = httpx.post(
        f"{stack.prefect_api}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["churn-training"]}}, "sort": "START_TIME_ASC"},
        timeout=10,
    ).json()
    if not found:
        raise ScreenshotError(
            f"no churn-training flow run on the Prefect server {stack.prefect_api}"
        )
    ui = stack.prefect_api.removesuffix("/api")
    page.goto(f"{ui}/runs/flow-run/{found[0]['id']}")
    tab = _appears(page, page.get_by_text("Artifacts", exact=True), "the flow run's Artifacts tab")
    tab.click()
    for key in ("training-mlflow-run", "training-model-version", "training-summary"):
        _appears(page, page.get_by_text(key, exact=True), f"the artefact {key}")
    heading = _appears(page, page.get_by_text("Flow run", exact=True), "the artefacts' heading")
    heading.evaluate("e => e.scrollIntoView({block: 'start'})")
    return False


# name of the PNG -> what brings the page to the content it shows (True: photograph the whole page).
PAGES: dict[str, Callable[[Any, Stack], bool]] = {
    "docs": docs_page,
    "report-summary": report_summary_page,
    "monitoring-dashboard": dashboard_page,
    "mlflow-run-datasets": mlflow_run_page,
    "prefect-run-artifacts": prefect_run_page,
}
