"""Faults of the challenger beside the champion (params.yaml ``live``): a canary challenger that
scored on the event loop (a slow one held every champion customer's request behind it), and
shadow drops that were counted but never logged.

The challenger is a gate-approved copy of the session's champion; its scorer is wrapped in
process (a fault that a registered model cannot carry) to record where it runs or to be slow.
The latency this costs is measured by ``make bench-serve`` (docs/serving.md), not asserted here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving import explain
from tests.serving.conftest import example_records, loaded_client
from tools.fork import register_approved_challenger

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def challenged(
    trained_project: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """A copy of the trained project with an approved challenger (a copy of the champion)."""
    copy = tmp_path_factory.mktemp("challenged") / "project"
    shutil.copytree(
        trained_project[0],
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    return copy, register_approved_challenger(copy)


def _app(project: Path, tmp_path: Path, **live: Any) -> Any:
    from churn.config.settings import get_settings
    from serving.app import create_app

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), **live}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    settings = get_settings(
        project_dir=project,
        params_path=path,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
        prediction_journal_dir=tmp_path / "journal",
    )
    return create_app(settings)


class Recording:
    """The real scorer, recording where each call ran (and optionally slow)."""

    def __init__(self, scorer: Any, delay: float = 0.0) -> None:
        self._scorer = scorer
        self.delay = delay
        self.calls: list[tuple[str, bool]] = []  # (thread name, ran on the event loop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scorer, name)

    def score(self, columns: Any, n: int) -> Any:
        self.calls.append((threading.current_thread().name, _on_event_loop()))
        time.sleep(self.delay)
        return self._scorer.score(columns, n)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _challenger(app: Any) -> Any:
    live = app.state.serving.live
    deadline = time.monotonic() + 120
    while live.model is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live.model is not None, live.status
    return live


def test_canary_challenger_never_scores_or_explains_on_the_event_loop(
    challenged: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault 7: the canary's records were scored (and explained) by the challenger on the
    event loop, for any request size, so a slow challenger stalled every champion customer.
    Now its scores and reasons run in the canary's executor, for one record and for many; the
    champion's single-record path is the same as without a canary."""
    project, challenger = challenged
    app = _app(project, tmp_path, mode="canary", canary_share=0.5)
    explained: list[tuple[str, bool, str]] = []
    real_explain = explain.explain_rows

    def recording_explain(model: Any, *args: Any) -> Any:
        explained.append((threading.current_thread().name, _on_event_loop(), model.version))
        return real_explain(model, *args)

    monkeypatch.setattr(explain, "explain_rows", recording_explain)
    customers = example_records(300, seed=31)
    with loaded_client(app) as client:
        live = _challenger(app)
        recording = Recording(live.model.scorer)
        live.model = replace(live.model, scorer=recording)
        answer = client.post("/predict", json={"records": customers[:40]}).json()
        versions = [p["model_version"] for p in answer["predictions"]]
        assert challenger in versions and len(set(versions)) == 2, versions
        mine = versions.index(challenger)
        theirs = next(i for i, v in enumerate(versions) if v != challenger)
        for i in (mine, theirs):  # one customer of each model, alone
            one = client.post("/predict", json={"records": [customers[i]]}).json()
            assert one["predictions"][0]["model_version"] == versions[i]
        big = client.post("/predict", json={"records": customers}).json()  # > 128 rows
        assert challenger in {p["model_version"] for p in big["predictions"]}
        client.post("/predict", json={"records": customers[:40], "explain": True})
    assert len(recording.calls) == 4, recording.calls  # 40 rows, one alone, 300 rows, explain
    assert not [c for c in recording.calls if c[1]], recording.calls
    assert all(name.startswith("canary-challenger") for name, _ in recording.calls)
    of_challenger = [e for e in explained if e[2] == challenger]
    assert of_challenger and not [e for e in of_challenger if e[1]], explained


def test_shadow_drops_are_logged_at_most_once_per_interval_with_their_count(
    challenged: tuple[Path, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault 14: requests the shadow dropped (its queue full) were counted on /metrics but
    never logged, though the docs said so. Now the first drop is logged at once, the following
    ones are counted and said in one line per interval at most, and the rest at shutdown."""
    project, _ = challenged
    app = _app(project, tmp_path, mode="shadow", shadow_queue=1)
    body = {"records": example_records(3, seed=4)}
    caplog.set_level(logging.WARNING, logger="serving.live")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "shadow: dropped" in r.getMessage()]

    with loaded_client(app) as client:
        live = _challenger(app)
        live.model = replace(live.model, scorer=Recording(live.model.scorer, delay=0.5))
        live.drops.every = 3600.0
        answers = [client.post("/predict", json=body).status_code for _ in range(12)]
        assert answers == [200] * 12
        metrics = client.get("/metrics").text
        dropped = _counter(metrics, 'churn_shadow_failures_total{reason="queue_full"}')
        assert dropped >= 8, metrics  # one scoring, one waiting, the rest dropped
        assert len(lines()) == 1, lines()  # the first drop, at once; the others wait
        assert "dropped 1 request in" in lines()[0]
        assert "with the shadow queue full (live.shadow_queue)" in lines()[0]
        live.drops.every = 0.0  # the interval is over: the next drop says all since the first
        client.post("/predict", json=body)
        client.post("/predict", json=body)
        metrics = client.get("/metrics").text
        now = _counter(metrics, 'churn_shadow_failures_total{reason="queue_full"}')
    said = [_dropped(line) for line in lines()]
    assert len(said) >= 2 and sum(said) == now, (lines(), now)
    assert said[1] == dropped  # the drops held back, and the one that wrote the line


def _counter(metrics: str, name: str) -> int:
    found = re.search(re.escape(name) + r" ([\d.e+]+)", metrics)
    return int(float(found.group(1))) if found else 0


def _dropped(line: str) -> int:
    found = re.search(r"dropped (\d+) request", line)
    assert found, line
    return int(found.group(1))
