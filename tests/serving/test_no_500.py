"""No 500 from ``/predict``, ever: a fault injected at each point a request passes (the feature
pipeline, the model, the rules, the explainer, the prediction log, a live challenger, anything
else) is answered by the fallback (200) or with 503 and ``Retry-After``, over real HTTP.

The service is the session's trained project, served by uvicorn in this process (so a fault can
be planted on the loaded objects); each fault is undone after its test. The table of failure
point -> status is printed (``-s``) for the record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools.fork import free_port

pytestmark = pytest.mark.integration

TABLE: list[tuple[str, str, int, str]] = []


class Served:
    """A uvicorn server in a thread on one app, and the app's state."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.state = app.state.serving
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=2).json()["status"] != "loading":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the in-process server did not load its model")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def served(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from churn.config.settings import get_settings
    from serving.app import create_app

    logs = tmp_path_factory.mktemp("no500")
    settings = get_settings(
        project_dir=served_project,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{logs / 'log.db'}",
        prediction_journal_dir=logs / "journal",
        model_cache_dir=logs / "cache",
    )
    server = Served(create_app(settings))
    server.start()
    assert server.state.model.source == "registry", server.state.model.degraded_reason
    yield server
    server.stop()
    if TABLE:
        width = max(len(row[0]) for row in TABLE)
        print("\nfailure point".ljust(width + 1), "| request | status | answered by / detail")
        for point, request, code, what in TABLE:
            print(f"{point:<{width}} | {request:<7} | {code:<6} | {what}")


class Boom(RuntimeError):
    pass


def boom(*_: Any, **__: Any) -> Any:
    raise Boom("injected fault")


def _ask(served: Served, point: str, records: list[dict[str, Any]], query: str = "") -> Any:
    r = httpx.post(served.url + "/predict" + query, json={"records": records}, timeout=30)
    assert r.status_code != 500, r.text
    body = r.json()
    what = body.get("model_version") or str(body.get("detail"))[:70]
    TABLE.append((point, f"{len(records)} rec", r.status_code, what))
    return r


def _expect_503(r: Any) -> None:
    assert r.status_code == 503, r.text
    assert r.headers.get("retry-after"), r.headers
    assert r.json()["detail"], r.text


def _broken_rules(rules_model: Any) -> Any:
    """The served rules with a points table of another schema (planted): a column the requests
    do not carry, so scoring raises ``KeyError``."""
    from churn.scoring.fallback_rules import ColumnRule

    other = ColumnRule("Call  Failure", "numeric", 0.3, bins=[{"upto": None, "points": 0.1}])
    broken = replace(rules_model.scorer, kind="rules", columns=[other])
    return replace(rules_model, scorer=broken, rules=broken)


def _broken_model(served: Served, **broken: Callable[..., Any]) -> Any:
    """The served model with its scorer's methods replaced (``encode``: the feature pipeline;
    ``_predict``: the model), as a new model object."""
    import copy

    model = served.state.model
    scorer = copy.copy(model.scorer)
    for name, fn in broken.items():
        setattr(scorer, name, fn)
    return replace(model, scorer=scorer)


@pytest.mark.parametrize("n", [1, 3])
def test_a_failing_feature_pipeline_is_answered_by_the_rules(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any, n: int
) -> None:
    model = _broken_model(served, encode=boom, _encode_one=boom)
    monkeypatch.setattr(served.state, "model", model)
    r = _ask(served, "feature pipeline", records(n))
    assert r.status_code == 200 and r.json()["model_version"] == "fallback-rules", r.text


@pytest.mark.parametrize("n", [1, 3])
def test_a_failing_model_is_answered_by_the_rules(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any, n: int
) -> None:
    model = _broken_model(served, _predict=boom, _predict_one=boom)
    monkeypatch.setattr(served.state, "model", model)
    r = _ask(served, "scorer (model)", records(n))
    assert r.status_code == 200 and r.json()["model_version"] == "fallback-rules", r.text


@pytest.mark.parametrize("n", [1, 3])
def test_the_model_and_then_the_rules_failing_is_a_503_with_retry_after(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any, n: int
) -> None:
    state = served.state
    monkeypatch.setattr(state, "model", _broken_model(served, encode=boom, _encode_one=boom))
    monkeypatch.setattr(state, "rules", _broken_rules(state.rules))
    before = _unanswered(served, "rules_error")
    r = _ask(served, "scorer + rules", records(n))
    _expect_503(r)
    assert "neither the model nor the rules" in r.json()["detail"]
    assert _unanswered(served, "rules_error") == before + 1


def test_rules_that_are_the_model_and_fail_are_a_503(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    state = served.state
    rules = _broken_rules(state.rules)
    monkeypatch.setattr(state, "rules", rules)
    monkeypatch.setattr(state, "model", rules)
    _expect_503(_ask(served, "rules (served as the model)", records(2)))


def test_a_failing_explainer_leaves_the_score_and_notes_why(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    from serving import explain

    monkeypatch.setattr(explain, "explainer_for", boom)
    monkeypatch.setattr(explain, "EXPLAINERS", explain.Explainers())
    r = _ask(served, "explainer (build)", records(2), "?explain=true")
    assert r.status_code == 200, r.text
    notes = {p["explanation"]["note"] for p in r.json()["predictions"]}
    assert notes == {"the explanation failed (Boom); the score is unaffected"}, notes


def test_an_explainer_failing_on_the_rows_leaves_the_score(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    from serving import explain

    class Failing:
        def explain(self, *_: Any) -> Any:
            raise Boom("injected")

    monkeypatch.setattr(explain, "explainer_for", lambda *_: Failing())
    monkeypatch.setattr(explain, "EXPLAINERS", explain.Explainers())
    r = _ask(served, "explainer (rows)", records(1), "?explain=true")
    assert r.status_code == 200, r.text
    assert "explanation failed" in r.json()["predictions"][0]["explanation"]["note"]


def test_a_prediction_log_that_cannot_take_the_rows_is_a_503(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    """The journal write (``submit``) raising: nothing is acknowledged."""
    monkeypatch.setattr(served.state.predlog, "submit", boom)
    before = _unanswered(served, "log_error")
    r = _ask(served, "prediction log (submit)", records(2))
    _expect_503(r)
    assert "prediction log cannot keep the rows" in r.json()["detail"]
    assert _unanswered(served, "log_error") == before + 1


def test_a_full_prediction_log_is_a_503(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    monkeypatch.setattr(served.state.predlog, "submit", lambda *_: False)
    _expect_503(_ask(served, "prediction log (full)", records(1)))


def _live(served: Served, mode: str, monkeypatch: pytest.MonkeyPatch, **broken: Any) -> Any:
    """A live challenger (``mode``) beside the champion: the champion's own model, renamed,
    with ``broken`` methods on its scorer."""
    from serving.live import LiveChallenger

    state = served.state
    params = state.params.model_copy(
        update={"live": state.params.live.model_copy(update={"mode": mode, "canary_share": 1.0})}
    )
    live = LiveChallenger(state.settings, params, state.metrics, state.predlog)
    live.model = replace(_broken_model(served, **broken), version="challenger-99")
    monkeypatch.setattr(state, "live", live)
    return live


@pytest.mark.parametrize("n", [1, 3])
def test_a_failing_canary_challenger_leaves_its_records_to_the_champion(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any, n: int
) -> None:
    _live(served, "canary", monkeypatch, _predict=boom, _predict_one=boom, encode=boom)
    r = _ask(served, "canary challenger", records(n))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == served.state.model.version


def test_a_canary_split_that_fails_is_a_503_not_a_500(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    live = _live(served, "canary", monkeypatch)
    monkeypatch.setattr(live, "canary_rows", boom)
    _expect_503(_ask(served, "canary split (a bug)", records(2)))


def test_a_failing_shadow_challenger_never_touches_the_answer(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    live = _live(served, "shadow", monkeypatch, _predict=boom, _predict_one=boom, encode=boom)
    monkeypatch.setattr(live, "shadow", boom)  # even the hand-over raising
    r = _ask(served, "shadow challenger", records(2))
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == served.state.model.version


@pytest.mark.parametrize("route", ["direct", "fastapi"])
def test_any_other_exception_is_a_503_with_the_traceback_logged(
    served: Served,
    monkeypatch: pytest.MonkeyPatch,
    records: Any,
    route: str,
    served_project: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last-resort handler: a bug anywhere in the request's path (here: the unseen-level
    check) is a 503 with ``Retry-After``, counted and logged with its traceback."""
    target = served
    if route == "fastapi":
        from churn.config.settings import get_settings
        from serving.app import create_app

        settings = get_settings(
            project_dir=served_project, reload_interval_seconds=0, predict_route="fastapi"
        )
        target = Served(create_app(settings))
        target.start()
    try:
        monkeypatch.setattr(target.state.unseen, "per_row", boom)
        before = _unanswered(target, "unexpected")
        with caplog.at_level("ERROR"):
            r = _ask(target, f"anything else ({route} route)", records(2))
        _expect_503(r)
        assert "Boom" in r.json()["detail"]
        assert _unanswered(target, "unexpected") == before + 1
        # The traceback, as the record carries it: its exc_info, or the text the CLI's
        # credential-masking filter leaves in its place (it may sit on this process's handlers).
        assert any(
            (rec.exc_info and rec.exc_info[0] is Boom) or "Boom" in (rec.exc_text or "")
            for rec in caplog.records
            if rec.name == "serving.routers.predict"
        )
    finally:
        if target is not served:
            target.stop()


def test_nothing_servable_is_a_503_with_the_reason(
    served: Served, monkeypatch: pytest.MonkeyPatch, records: Any
) -> None:
    from serving.model import unservable_model

    model = unservable_model(served.state.settings, "the champion v9 is of another lineage", None)
    monkeypatch.setattr(served.state, "model", model)
    r = _ask(served, "no runnable model (start)", records(1))
    _expect_503(r)
    assert "another lineage" in r.json()["detail"]
    ready = httpx.get(served.url + "/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "unservable", ready.text


def test_a_record_of_another_schema_is_a_422_naming_the_fields(
    served: Served, records: Any
) -> None:
    other = {"Call  Failure": 8, "Complains": 0, "Subscription  Length": 38}
    r = httpx.post(served.url + "/predict", json={"records": [other]}, timeout=30)
    TABLE.append(("record of another schema", "1 rec", r.status_code, "field names in detail"))
    assert r.status_code == 422, r.text
    missing = {e["loc"][-1] for e in r.json()["detail"] if e["type"] == "missing"}
    assert {"tenure", "Contract"} <= missing, r.text


def _unanswered(served: Served, reason: str) -> float:
    value = served.state.metrics.registry.get_sample_value(
        "churn_predict_unanswered_total", {"reason": reason}
    )
    return value or 0.0
