"""``churn demo``: train, serve, traffic, monitor, drift, retrain (by default as a challenger
proven in the shadow of the champion, then promoted from live evidence), hot swap, stop."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx

from churn.config.redact import mask_credentials
from churn.config.settings import get_settings
from churn.prediction_store import PredictionStore
from pipelines.monitoring import monitoring_flow
from pipelines.training import training_flow
from tools.fork import (
    fork_project,
    free_port,
    running_service,
    served_version,
    wait_for_log,
    wait_for_version,
)
from tools.simulate import DriftKind, make_customers, send_labels, send_traffic

# The demo's project: the template's own params, made small enough for a laptop.
DEMO_OVERRIDES: dict[str, Any] = {
    "ingest": {"generator": {"n_rows": 4000, "seed": 11}},
    "train": {"search": {"n_trials": 1}},
    "monitor": {"window": {"rows": 2000}, "min_rows": 500, "min_labelled_rows": 200},
}


class Timeline:
    """Prints each step with the seconds since the start to ``out`` (and to the log, between the
    libraries' lines), and keeps them for the summary."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.start = time.perf_counter()
        self.steps: list[tuple[float, str]] = []
        self.out = out

    def __call__(self, text: str) -> None:
        at = time.perf_counter() - self.start
        self.steps.append((at, text))
        line = f"[{at:6.1f}s] {text}"
        print(line, flush=True)
        if self.out is not None:
            print(line, file=self.out, flush=True)


@contextmanager
def output_to(log: Path) -> Iterator[TextIO]:
    """This process's and its children's stdout and stderr (Prefect, DVC, MLflow, uvicorn) go
    to ``log`` while inside; yields a stream to the terminal for the timeline."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    with log.open("w") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()


def run_demo(
    dest: Path, normal_rows: int = 1500, drifted_rows: int = 4000, live: bool = True
) -> dict[str, Any]:
    """The whole loop, the timeline on the terminal and the libraries' output in
    ``<dest>/../demo.log``; returns what happened (the tests read it too).

    With ``live`` the retrain the drift calls for becomes a challenger first: it runs in the
    shadow of the champion on new labelled traffic, and is promoted from that live evidence
    (``_run_live``); without, the gate promotes it directly, as the monitoring flow does.
    """
    log = dest.parent / "demo.log"
    with output_to(log) as terminal:
        print(f"the libraries' logs: {log}", file=terminal, flush=True)
        if live:
            return _run_live(dest, Timeline(terminal), normal_rows, drifted_rows)
        return _run(dest, Timeline(terminal), normal_rows, drifted_rows)


def _run_live(dest: Path, say: Timeline, normal_rows: int, drifted_rows: int) -> dict[str, Any]:
    """Champion, drift, a retrained challenger in the shadow, live evidence, promotion."""
    from datetime import UTC, datetime

    import yaml

    from churn.config.params import load_params
    from churn.data import versioning
    from monitoring import job
    from monitoring import live as mlive

    project = fork_project(dest, DEMO_OVERRIDES)
    say(f"project forked to {project} (own git repo, DVC remote, MLflow store)")
    first = training_flow(str(project))
    say(f"trained v{first.version}: champion (test ROC AUC {first.test_roc_auc:.4f})")
    settings = get_settings(project_dir=project)
    store = PredictionStore.from_settings(settings)
    result: dict[str, Any] = {"project": str(project), "first": first}
    with running_service(project, free_port()) as url:
        say(f"service up at {url}, serving v{served_version(url)} (live.mode off)")
        drifted = make_customers(drifted_rows, seed=202, drift=DriftKind.strong)
        sent = send_traffic(url, drifted)
        send_labels(store, drifted)
        wait_for_log(settings, drifted_rows, first.version)
        say(
            f"drifted traffic (prices +30 %, 85 % month-to-month, 15 % 'Crypto wallet', a "
            f"competitor's DSL offer): {drifted_rows} customers ({sent.seconds:.1f} s), labels "
            "written"
        )
    alarm = monitoring_flow(str(project), retrain=False)
    say(f"monitor: action={alarm.decision.action}; {alarm.decision.reason}")
    params = load_params(settings.params_path)
    rows = job.export_feedback(settings, params, store)
    with versioning.lock_kept(project):
        second = training_flow(str(project), force_ingest=True, promote=False)
    say(
        f"retrained on {rows} labelled rows as a challenger: v{second.version} "
        f"{'approved' if second.approved else 'rejected'} by the gate: {second.reason}"
    )
    result["second"] = second
    if not second.approved:
        say("the gate refused the challenger: nothing to run live (a rare draw of the data)")
        result["seconds"] = time.perf_counter() - say.start
        result["timeline"] = say.steps
        return result
    raw = yaml.safe_load(settings.params_path.read_text())
    raw["live"] = {**raw.get("live", {}), "mode": "shadow", "min_labelled_rows": 500}
    settings.params_path.write_text(yaml.safe_dump(raw))
    params = load_params(settings.params_path)
    with running_service(project, free_port()) as url:
        described = httpx.get(f"{url}/version", timeout=5).json()
        say(
            f"service restarted with live.mode shadow: champion v{described['version']} answers,"
            f" challenger v{described['live']['challenger']['version']} scores every request "
            "off the request path"
        )
        shadowed = make_customers(normal_rows, seed=404, drift=DriftKind.strong)
        sent = send_traffic(url, shadowed)
        wait_for_log(settings, drifted_rows + normal_rows, first.version)
        wait_for_log(settings, normal_rows, second.version)  # the shadow's rows
        send_labels(store, shadowed)
        say(f"shadow traffic: {normal_rows} customers ({sent.seconds:.1f} s), labels written")
        comparison = mlive.compare_live(
            settings, params, store, datetime.now(UTC), str(first.version)
        )
        for line in comparison.format().splitlines():
            say(line)
        result["comparison"] = comparison
        try:
            previous, new = mlive.promote_from_live(settings, comparison, by="demo")
        except ValueError as exc:  # NotProven or PromotionRefused: the message says why
            say(f"not promoted: {exc}")
        else:
            say(f"promoted from live evidence: champion v{previous} -> v{new}")
            waited = wait_for_version(url, new)
            say(f"service moved to v{new} by itself after {waited:.1f} s (registry poll)")
            probe = send_traffic(url, make_customers(5, seed=303, drift=DriftKind.none))
            result["served_after"] = sorted(probe.model_versions)
            say(f"a new request is answered by v{', '.join(probe.model_versions)}")
    say("service stopped (SIGINT, prediction log drained)")
    say(
        f"MLflow: make ui with MLFLOW_TRACKING_URI={mask_credentials(settings.tracking_uri)} "
        "(the evidence is on the new champion's promotion.live.* tags)"
    )
    result["seconds"] = time.perf_counter() - say.start
    result["timeline"] = say.steps
    return result


def _run(dest: Path, say: Timeline, normal_rows: int, drifted_rows: int) -> dict[str, Any]:
    project = fork_project(dest, DEMO_OVERRIDES)
    say(f"project forked to {project} (own git repo, DVC remote, MLflow store)")
    first = training_flow(str(project))
    say(
        f"trained v{first.version}: {'champion' if first.promoted else 'not promoted'} "
        f"(test ROC AUC {first.test_roc_auc:.4f})"
    )
    settings = get_settings(project_dir=project)
    store = PredictionStore.from_settings(settings)
    result: dict[str, Any] = {"project": str(project), "first": first}
    with running_service(project, free_port()) as url:
        say(f"service up at {url}, serving v{served_version(url)}")
        normal = make_customers(normal_rows, seed=101, drift=DriftKind.none)
        sent = send_traffic(url, normal)
        send_labels(store, normal)
        wait_for_log(settings, normal_rows, first.version)
        say(
            f"normal traffic: {normal_rows} customers in {sent.requests} requests "
            f"({sent.seconds:.1f} s), labels written"
        )
        calm = monitoring_flow(str(project))
        say(f"monitor #1: action={calm.decision.action}; {calm.decision.reason}")
        drifted = make_customers(drifted_rows, seed=202, drift=DriftKind.strong)
        sent = send_traffic(url, drifted)
        send_labels(store, drifted)
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
    reports = sorted((project / "reports" / "monitoring" / settings.model_name).glob("*"))
    say("reports: " + ", ".join(str(p) for p in reports))
    say(
        f"MLflow: make ui with MLFLOW_TRACKING_URI={mask_credentials(settings.tracking_uri)} "
        "(experiments churn-training, churn-monitoring)"
    )
    result["seconds"] = time.perf_counter() - say.start
    result["timeline"] = say.steps
    return result
