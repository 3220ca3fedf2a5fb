"""``/predict`` with ``explain``: on a real server with the trained champion, in process for the
fallbacks, and ``churn batch-predict --explain``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.models import explainer_for
from serving.app import create_app
from serving.model import ServedModel, load_initial
from tests.serving.conftest import loaded_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(served_project: Path, module_server: Callable[..., Any]) -> Any:
    return module_server(served_project)


@pytest.fixture(scope="module")
def champion(served_project: Path) -> tuple[ServedModel, Any]:
    settings = get_settings(project_dir=served_project)
    return load_initial(settings, load_params(settings.params_path)), settings


def test_explain_returns_the_reasons_of_each_score_over_http(server: Any, records: Any) -> None:
    """A real server with the trained XGBoost champion: each record gets at most top_k reasons
    each way, in log-odds, named by the customer's own fields with the values sent; the margins
    rank the records as their probabilities do (calibration is monotone)."""
    sent = records(6, seed=21)
    r = httpx.post(server.url + "/predict?explain=true&top_k=3", json={"records": sent}, timeout=30)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == 6
    for record, prediction in zip(sent, predictions, strict=True):
        explanation = prediction["explanation"]
        assert explanation["method"] == "treeshap" and explanation["unit"] == "log-odds"
        assert 0 < len(explanation["up"]) + len(explanation["down"]) <= 6
        assert len(explanation["up"]) <= 3 and len(explanation["down"]) <= 3
        for reason in explanation["up"] + explanation["down"]:
            if "derived_from" in reason:
                assert all(record[c] == v for c, v in reason["derived_from"].items())
            else:
                assert reason["value"] == record[reason["field"]], reason
        assert all(x["contribution"] > 0 for x in explanation["up"])
        assert all(x["contribution"] < 0 for x in explanation["down"])
    margins = [p["explanation"]["margin"] for p in predictions]
    probabilities = [p["churn_probability"] for p in predictions]
    assert np.argsort(margins).tolist() == np.argsort(probabilities).tolist()
    # The body's flags do the same; explain_top_k is honoured.
    body = {"records": sent[:1], "explain": True, "explain_top_k": 1}
    one = httpx.post(server.url + "/predict", json=body, timeout=30).json()["predictions"][0]
    assert len(one["explanation"]["up"]) <= 1 and len(one["explanation"]["down"]) <= 1
    assert one["churn_probability"] == predictions[0]["churn_probability"]


def test_without_explain_the_response_is_exactly_the_old_one(server: Any, records: Any) -> None:
    """No flag, or explain false: the same bytes' worth of keys as before the feature, and the
    same scores as with explain."""
    sent = {"records": records(4, seed=22)}
    plain = httpx.post(server.url + "/predict", json=sent, timeout=30).json()
    off = httpx.post(server.url + "/predict?explain=false", json={**sent, "explain": False}).json()
    explained = httpx.post(server.url + "/predict", json={**sent, "explain": True}).json()
    for answer in (plain, off):
        assert set(answer) == {"model_version", "request_id", "predictions"}
        for p in answer["predictions"]:
            assert set(p) == {"churn_probability", "churn"}
    stripped = [
        {k: v for k, v in p.items() if k != "explanation"} for p in explained["predictions"]
    ]
    assert stripped == plain["predictions"] == off["predictions"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("explain=maybe", "explain"),
        ("explain=", "explain"),
        ("explain=true&top_k=0", "top_k"),
        ("top_k=x", "top_k"),
    ],
)
@pytest.mark.parametrize("body_top_k", [{}, {"explain_top_k": 2}])
def test_a_bad_query_flag_is_a_422_naming_it(
    server: Any, records: Any, query: str, name: str, body_top_k: dict[str, int]
) -> None:
    """Also when the body's explain_top_k would win over ?top_k=."""
    body = {"records": records(1), **body_top_k}
    r = httpx.post(f"{server.url}/predict?{query}", json=body, timeout=30)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", name]


def test_a_bad_body_flag_is_a_422_naming_it(server: Any, records: Any) -> None:
    for body, field in (({"explain": "yes"}, "explain"), ({"explain_top_k": 99}, "explain_top_k")):
        r = httpx.post(server.url + "/predict", json={"records": records(1), **body}, timeout=30)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", field]


def test_openapi_documents_the_flags_and_the_unit(server: Any) -> None:
    document = httpx.get(server.url + "/openapi.json", timeout=30).json()
    operation = document["paths"]["/predict"]["post"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["explain"]["schema"]["type"] == "boolean"
    assert params["top_k"]["schema"]["default"] == 5
    assert "log-odds" in params["explain"]["description"]
    request = document["components"]["schemas"]["PredictRequest"]["properties"]
    assert {"explain", "explain_top_k"} <= set(request)
    # /docs shows the served model's explanation of the example customer
    (example,) = document["components"]["schemas"]["Explanation"]["examples"]
    assert example["method"] == "treeshap" and example["up"] + example["down"]


class _Broken:
    kind = "broken"

    def score(self, columns: Any, n: int) -> np.ndarray:
        raise RuntimeError("simulated model failure")  # a fault we cannot cause for real


def test_when_the_rules_answer_they_give_the_reasons(
    served_project: Path, tmp_path: Path, records: Any
) -> None:
    """The model fails on a request: the fallback rules answer, and explain their own score
    (their points); a model kind with no explainer gets a note, and the request still
    succeeds."""
    settings = get_settings(
        project_dir=served_project,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
    )
    app = create_app(settings)
    with loaded_client(app) as client:
        state = app.state.serving
        state.set_model(ServedModel(**{**state.model.__dict__, "scorer": _Broken()}))
        r = client.post("/predict?explain=true", json={"records": records(2)})
        assert r.status_code == 200
        answer = r.json()
        assert answer["model_version"] == "fallback-rules"
        explanation = answer["predictions"][0]["explanation"]
        assert explanation["method"] == "rules"
        rules = {c.column for c in state.rules.rules.columns}
        fields = {x["field"] for x in explanation["up"] + explanation["down"]}
        assert fields and fields <= rules
        p = answer["predictions"][0]["churn_probability"]
        assert 1 / (1 + np.exp(-explanation["margin"])) == pytest.approx(p, abs=1e-9)
    # The prior-rate rule (no model, no rules): a note, not a failure.
    bare = get_settings(
        project_dir=tmp_path / "bare",
        reload_interval_seconds=0,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'empty.db'}",
    )
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "params.yaml").write_text(settings.params_path.read_text())
    with loaded_client(create_app(bare)) as client:
        r = client.post("/predict", json={"records": records(2), "explain": True})
        assert r.status_code == 200
        for prediction in r.json()["predictions"]:
            assert prediction["explanation"]["method"] is None
            assert "prior-rate rule" in prediction["explanation"]["note"]


def test_batch_predict_explain_adds_the_reason_columns(
    champion: tuple[ServedModel, Any], served_project: Path, tmp_path: Path, records: Any
) -> None:
    """``churn batch-predict --explain --top-k 2`` (the real command): reason_up_1..2 and
    reason_down_1..2, each the text the API gives for the same row."""
    model, settings = champion
    dataset = load_params(settings.params_path).dataset
    sent = records(40, seed=23)
    frame = pd.DataFrame(sent)
    source, target = tmp_path / "in.csv", tmp_path / "out.parquet"
    frame.to_csv(source, index=False)
    command = [sys.executable, "-m", "pipelines.cli", "-C", str(served_project), "batch-predict"]
    done = subprocess.run(
        [*command, str(source), str(target), "--explain", "--top-k", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = pd.read_parquet(target)
    reasons = ["reason_up_1", "reason_up_2", "reason_down_1", "reason_down_2"]
    assert [c for c in out.columns if c.startswith("reason_")] == reasons
    explainer = explainer_for(model.scorer, dataset)
    for i in (0, 17, 39):
        row = {c: [sent[i][c]] for c in dataset.feature_columns}
        expected = explainer.explain(row, 1).record(0, 2)
        assert out.loc[i, "reason_up_1"] == (expected["up"][0]["text"] if expected["up"] else "")
        assert out.loc[i, "reason_down_1"] == (
            expected["down"][0]["text"] if expected["down"] else ""
        )
    assert out["reason_up_1"].str.match(r"^\w+ = .+: \+\d+\.\d\d$").all()
