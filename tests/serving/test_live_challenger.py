"""A gate-approved challenger on live traffic (params.yaml ``live``), on real servers: shadow
scoring never changes or fails a response and is logged with its version and role; a canary
customer always gets the same model; /version and /metrics show both models; a promotion from
live evidence refuses while the evidence is short."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.serving.conftest import loaded_client, start_server

pytestmark = pytest.mark.integration


def _register_challenger(project: Path, shift: float) -> tuple[str, str]:
    """A new version whose calibration is shifted by ``shift`` (the same ranking, other
    probabilities), under the ``challenger`` alias, approved by the gate against the champion
    (as `churn train --no-promote` leaves one). Returns ``(champion, challenger)`` versions."""
    import mlflow

    from churn.config.settings import get_settings
    from churn.release import registry, tracking

    settings = get_settings(project_dir=project)
    client = tracking.connect(settings)
    champion = registry.current_champion(client, settings.model_name)
    assert champion is not None
    pipeline = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{champion.version}")
    for calibrated in pipeline[-1].calibrated_classifiers_:
        for calibrator in calibrated.calibrators:
            calibrator.b_ = calibrator.b_ + shift
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            pip_requirements=tracking.model_requirements(),
            skops_trusted_types=tracking.trusted_model_types(),
        )
    tags = {k: v for k, v in champion.tags.items() if not k.startswith("promotion.")}
    new = registry.register_challenger(
        client, settings.model_name, logged.model_uri, run.info.run_id, tags
    )
    decision = registry.PromotionDecision(
        True, "approved for the live test", 0.85, 0.8, str(champion.version), 0.84
    )
    registry.record_decision(
        client, settings.model_name, new.version, decision, move_champion=False
    )
    return str(champion.version), str(new.version)


@pytest.fixture(scope="module")
def live_project(
    served_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """A copy of the trained project with an approved challenger (module-wide)."""
    copy = tmp_path_factory.mktemp("live") / "project"
    shutil.copytree(
        served_project,
        copy,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    champion, challenger = _register_challenger(copy, shift=-0.7)
    return copy, champion, challenger


def _with_live(project: Path, **live: Any) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), **live}
    (project / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(project: Path, log: str) -> Any:
        env = {"CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp_path / log}"}
        started.append(start_server(project, tmp_path, env))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _store(url: str) -> Any:
    from churn.prediction_store import PredictionStore

    return PredictionStore(url, url, b"")


def _logged(url: str, rows: int, timeout: float = 30) -> Any:
    """The log's rows once ``rows`` are there (the writer is asynchronous)."""
    store = _store(url)
    deadline = time.monotonic() + timeout
    while True:
        frame = store.read_window(100_000, max_rows=100_000).frame
        if len(frame) >= rows or time.monotonic() > deadline:
            return frame
        time.sleep(0.2)


def test_shadow_scores_every_request_off_the_path_and_is_never_returned(
    live_project: tuple[Path, str, str],
    server: Callable[..., Any],
    records: Callable[..., list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, champion, challenger = live_project
    _with_live(project, mode="shadow")
    live = server(project, "shadow.db")
    _with_live(project, mode="off")
    off = server(project, "off.db")
    body = {"records": records(40, seed=5)}
    answers = [httpx.post(s.url + "/predict", json=body, timeout=30).json() for s in (live, off)]
    # the response is the champion's, exactly as without a challenger
    assert answers[0]["model_version"] == answers[1]["model_version"] == champion
    assert [p["churn_probability"] for p in answers[0]["predictions"]] == [
        p["churn_probability"] for p in answers[1]["predictions"]
    ]
    assert all("model_version" not in p for p in answers[0]["predictions"])
    # the log holds both: the champion's answer and the challenger's shadow score, per customer
    frame = _logged(f"sqlite:///{tmp_path / 'shadow.db'}", 80)
    roles = frame.groupby("role")["model_version"].agg(set).to_dict()
    assert roles == {"champion": {champion}, "shadow": {challenger}}
    served = frame[frame.role == "champion"].set_index("customer_hash")["churn_probability"]
    shadow = frame[frame.role == "shadow"].set_index("customer_hash")["churn_probability"]
    assert len(shadow) == 40 and set(shadow.index) == set(served.index)
    assert not np.allclose(shadow.sort_index(), served.sort_index())  # another model's scores
    off_roles = _logged(f"sqlite:///{tmp_path / 'off.db'}", 40)["role"].unique().tolist()
    assert off_roles == ["champion"]
    # /version and /metrics name both models
    version = httpx.get(live.url + "/version", timeout=10).json()
    assert version["version"] == champion and version["live"]["mode"] == "shadow"
    assert version["live"]["challenger"]["version"] == challenger
    assert version["live"]["challenger"]["alias"] == "challenger"
    assert httpx.get(off.url + "/version", timeout=10).json()["live"] is None
    metrics = httpx.get(live.url + "/metrics", timeout=10).text
    assert f'churn_challenger_info{{mode="shadow",version="{challenger}"}} 1.0' in metrics
    assert f'churn_role_predictions_total{{model_version="{challenger}",role="shadow"}} 40.0' in (
        metrics
    )
    assert f'churn_role_predictions_total{{model_version="{champion}",role="champion"}} 40.0' in (
        metrics
    )

    # promotion from live evidence refuses while the evidence is short: no labels yet
    from pipelines.cli.commands import app

    env = {"CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp_path / 'shadow.db'}"}
    _with_live(project, mode="shadow")
    result = CliRunner().invoke(app, ["-C", str(project), "promote", "--from-live"], env=env)
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"v{challenger} is not promoted from live evidence" in text
    assert "has 0 labelled predictions in the window" in text
    assert "live.min_labelled_rows needs 200" in text
    assert httpx.get(live.url + "/version", timeout=10).json()["version"] == champion
    from churn.config.settings import get_settings
    from churn.release import registry, tracking

    settings = get_settings(project_dir=project)
    now = registry.current_champion(tracking.connect(settings), settings.model_name)
    assert now is not None and str(now.version) == champion

    # 40 labels arrive: the monitoring flow compares the two on them, and its promotion option
    # refuses as the CLI does (40 of 200 labelled rows), leaving the champion where it is
    from churn.prediction_store import PredictionStore
    from pipelines.monitoring import monitoring_flow

    monkeypatch.setenv("CHURN_PREDICTION_LOG_URL", env["CHURN_PREDICTION_LOG_URL"])
    labelled = PredictionStore.from_settings(get_settings(project_dir=project))
    ids = [r["customerID"] for r in body["records"]]
    labelled.write_labels(ids, [i % 3 == 0 for i in range(len(ids))])
    outcome = monitoring_flow(str(project), retrain=False, promote_from_live=True)
    assert outcome.live is not None and outcome.live["promoted"] is False
    compared = outcome.live["comparison"]
    assert compared["champion"]["labelled_rows"] == compared["challenger"]["labelled_rows"] == 40
    assert compared["paired"] is True
    assert "live.min_labelled_rows needs 200" in outcome.live["text"]
    assert "not promoted" in outcome.format()
    now = registry.current_champion(tracking.connect(settings), settings.model_name)
    assert now is not None and str(now.version) == champion


def test_shadow_challenger_failing_never_fails_a_response(
    live_project: tuple[Path, str, str], records: Callable[..., list[dict[str, Any]]]
) -> None:
    """A challenger that raises on every request: each answer is the champion's 200, and the
    failures are counted in /metrics (a fault injected in process: a loaded model that fails
    cannot be registered)."""
    from churn.config.settings import get_settings
    from serving.app import create_app

    project, champion, _ = live_project
    _with_live(project, mode="shadow")
    settings = get_settings(
        project_dir=project,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{project / 'inprocess.db'}",
    )
    app = create_app(settings)

    class Broken:
        kind = "broken"

        def score(self, columns: Any, n: int) -> Any:
            raise RuntimeError("the challenger broke")

    with loaded_client(app) as client:
        live = app.state.serving.live
        deadline = time.monotonic() + 120
        while live.model is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert live.model is not None, live.status
        live.model = replace(live.model, scorer=Broken())
        body = {"records": records(3, seed=8)}
        answers = [client.post("/predict", json=body) for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert {a.json()["model_version"] for a in answers} == {champion}
        deadline = time.monotonic() + 10
        metric = 'churn_shadow_failures_total{reason="model_error"} 5.0'
        while metric not in client.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert metric in client.get("/metrics").text


def test_canary_answers_a_stable_share_of_customers_with_the_challenger(
    live_project: tuple[Path, str, str],
    server: Callable[..., Any],
    records: Callable[..., list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    project, champion, challenger = live_project
    _with_live(project, mode="canary", canary_share=0.3)
    live = server(project, "canary.db")
    customers = records(400, seed=21)
    first = httpx.post(live.url + "/predict", json={"records": customers}, timeout=30).json()
    versions = [p["model_version"] for p in first["predictions"]]
    assert set(versions) == {champion, challenger}
    share = versions.count(challenger) / len(versions)
    assert abs(share - 0.3) < 0.07, share  # 3 standard deviations of a binomial(400, 0.3)
    # the same customers again, one at a time and shuffled: each gets the same model
    order = np.random.default_rng(0).permutation(60)
    for i in order:
        one = httpx.post(live.url + "/predict", json={"records": [customers[i]]}, timeout=30)
        answer = one.json()
        assert answer["predictions"][0]["model_version"] == versions[i]
        assert answer["model_version"] == versions[i]  # a request answered by one model
    # a record without an id always goes to the champion
    anonymous = [{k: v for k, v in r.items() if k != "customerID"} for r in customers[:50]]
    answer = httpx.post(live.url + "/predict", json={"records": anonymous}, timeout=30).json()
    assert {p["model_version"] for p in answer["predictions"]} == {champion}
    # the log says which model answered, with its role
    frame = _logged(f"sqlite:///{tmp_path / 'canary.db'}", 510)
    by_role = frame.groupby("role")["model_version"].agg(set).to_dict()
    assert by_role == {"champion": {champion}, "challenger": {challenger}}
    assert (frame["role"] == "challenger").sum() == versions.count(challenger) + sum(
        versions[i] == challenger for i in order
    )
    version = httpx.get(live.url + "/version", timeout=10).json()["live"]
    assert version["mode"] == "canary" and version["canary_share"] == 0.3
