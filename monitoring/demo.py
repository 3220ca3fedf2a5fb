"""``make demo``: train, serve, traffic, monitor, drift, monitor + retrain, hot swap, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml

from monitoring.simulate import DriftKind, make_customers, send_labels, send_traffic

ROOT = Path(__file__).resolve().parents[1]

# The demo's project: the template's own params, made small enough for a laptop.
DEMO_OVERRIDES: dict[str, Any] = {
    "ingest": {"generator": {"n_rows": 4000, "seed": 11}},
    "train": {"search": {"n_trials": 1}},
    "monitor": {"window": {"rows": 2000}, "min_rows": 500, "min_labelled_rows": 200},
}


class Timeline:
    """Prints each step with the seconds since the start, and keeps them for the summary."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps: list[tuple[float, str]] = []

    def __call__(self, text: str) -> None:
        at = time.perf_counter() - self.start
        self.steps.append((at, text))
        print(f"[{at:6.1f}s] {text}", flush=True)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def fork_project(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """A throw-away copy of the template with its own git repo, DVC remote and MLflow store."""
    from dvc.repo import Repo

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_merge(params, overrides or {})))
    (dest / ".gitignore").write_text("/data/\n/mlruns/\n/.dvcstore/\n/reports/\n")
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)  # noqa: S603
    with Repo.init(str(dest)) as repo, repo.config.edit() as conf:
        conf["core"]["analytics"] = "false"
        conf["core"]["remote"] = "local"
        conf["remote"]["local"] = {"url": str(dest / ".dvcstore")}
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)  # noqa: S603
    subprocess.run([*git, "commit", "-qm", "fork"], cwd=dest, check=True)  # noqa: S603
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_service(
    project: Path, port: int, env: dict[str, str] | None = None, timeout_s: float = 120.0
) -> Iterator[str]:
    """The serving app under uvicorn on 127.0.0.1 (a real process); stopped with SIGINT."""
    environment = {
        **os.environ,
        "CHURN_PROJECT_DIR": str(project),
        "CHURN_RELOAD_INTERVAL_SECONDS": "2",
        **(env or {}),
    }
    log_path = project / "reports" / "serving.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port)],
            cwd=project,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited early; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the service was not ready in {timeout_s:.0f} s")
                time.sleep(0.3)
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_for_log(settings: Any, rows: int, version: str, timeout_s: float = 30.0) -> None:
    """Wait until the service's log writer (it flushes every 0.25 s) has ``rows`` of ``version``."""
    from churn.params import MonitorWindow
    from monitoring.data import read_window

    deadline = time.monotonic() + timeout_s
    window = MonitorWindow(rows=rows)
    while (
        read_window(
            settings.prediction_log_uri, window, max_rows=1, model_version=version
        ).total_rows
        < rows
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rows} predictions of v{version} were not logged in time")
        time.sleep(0.2)


def served_version(url: str) -> str:
    return str(httpx.get(f"{url}/version", timeout=5).json()["version"])


def wait_for_version(url: str, version: str, timeout_s: float = 60.0) -> float:
    """Seconds until the service answers with ``version`` (it polls the registry)."""
    started = time.monotonic()
    while served_version(url) != version:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"the service did not move to v{version} in {timeout_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def run_demo(dest: Path, normal_rows: int = 1500, drifted_rows: int = 4000) -> dict[str, Any]:
    """The whole loop; returns what happened (the tests read it too)."""
    from churn.settings import get_settings
    from pipelines.monitoring import monitoring_flow
    from pipelines.training import training_flow

    say = Timeline()
    project = fork_project(dest, DEMO_OVERRIDES)
    say(f"project forked to {project} (own git repo, DVC remote, MLflow store)")
    first = training_flow(str(project))
    say(
        f"trained v{first.version}: {'champion' if first.promoted else 'not promoted'} "
        f"(test ROC AUC {first.test_roc_auc:.4f})"
    )
    settings = get_settings(project_dir=project)
    result: dict[str, Any] = {"project": str(project), "first": first}
    with running_service(project, free_port()) as url:
        say(f"service up at {url}, serving v{served_version(url)}")
        normal = make_customers(normal_rows, seed=101, drift=DriftKind.none)
        sent = send_traffic(url, normal)
        send_labels(settings, normal)
        wait_for_log(settings, normal_rows, first.version)
        say(
            f"normal traffic: {normal_rows} customers in {sent.requests} requests "
            f"({sent.seconds:.1f} s), labels written"
        )
        calm = monitoring_flow(str(project))
        say(f"monitor #1: action={calm.decision.action}; {calm.decision.reason}")
        drifted = make_customers(drifted_rows, seed=202, drift=DriftKind.strong)
        sent = send_traffic(url, drifted)
        send_labels(settings, drifted)
        say(
            f"drifted traffic (prices +30 %, 85 % month-to-month, 15 % 'Crypto wallet', "
            f"a competitor's DSL offer): {drifted_rows} customers ({sent.seconds:.1f} s), "
            "labels written"
        )
        wait_for_log(settings, normal_rows + drifted_rows, first.version)
        alarm = monitoring_flow(str(project))
        say(f"monitor #2: action={alarm.decision.action}; {alarm.decision.reason}")
        if alarm.training:
            t = alarm.training
            say(
                f"retrained v{t.get('version')}: "
                f"{'PROMOTED' if t.get('promoted') else 'not promoted'}: {t.get('reason')}"
            )
        result.update(calm=calm, alarm=alarm)
        if alarm.promoted:
            new = str(alarm.training["version"])  # type: ignore[index]
            waited = wait_for_version(url, new)
            say(f"service moved to v{new} by itself after {waited:.1f} s (registry poll)")
            probe = send_traffic(url, make_customers(5, seed=303, drift=DriftKind.none))
            result["served_after"] = sorted(probe.model_versions)
            say(f"a new request is answered by v{', '.join(probe.model_versions)}")
    say("service stopped (SIGINT, prediction log drained)")
    reports = sorted((project / "reports" / "monitoring").glob("*"))
    say("reports: " + ", ".join(str(p) for p in reports))
    say(
        f"MLflow: make ui with MLFLOW_TRACKING_URI={settings.tracking_uri} "
        "(experiments churn-training, churn-monitoring)"
    )
    result["seconds"] = time.perf_counter() - say.start
    result["timeline"] = say.steps
    return result


cli = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@cli.command()
def demo(
    dest: Annotated[Path, typer.Option(help="Where the demo's own project goes (replaced).")] = (
        Path("reports/demo/project")
    ),
) -> None:
    """Run the whole monitoring loop on a throw-away copy of the project and print a timeline."""
    result = run_demo(dest.resolve())
    typer.echo(f"demo finished in {result['seconds']:.0f} s")


if __name__ == "__main__":
    cli()
