"""One response shape: what ``/predict`` sends on every path (one row, many, explain, an unseen
level, a canary split, the fallback rules; both routes), the ``/docs`` example and batch
scoring's columns are what ``serving/schemas.py`` declares. The models are closed
(``extra="forbid"``), so a field sent but not declared fails here, and a declared required field
left out fails too."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from tests.serving.conftest import example_records, loaded_client
from tools.fork import register_approved_challenger


def _validated(body: dict[str, Any]) -> Any:
    """``body`` as the declared ``PredictResponse``, and the fields the body really carried (a
    model fills an omitted optional field with its default: the body must not miss a required
    one nor carry an undeclared one, which ``model_validate`` checks)."""
    from serving.schemas import PredictResponse

    return PredictResponse.model_validate(body, strict=True)


def _client(project: Path, tmp_path: Path, route: str) -> Any:
    from churn.config.settings import get_settings
    from serving.app import create_app

    settings = get_settings(
        project_dir=project,
        predict_route=route,
        reload_interval_seconds=0,
        registry_timeout_seconds=30,
        prediction_log_url=f"sqlite:///{tmp_path / f'{route}.db'}",
    )
    return loaded_client(create_app(settings))


def _bodies(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/predict", {"records": records[:1]}),  # one row: the float path
        ("/predict", {"records": records[:20]}),  # a few rows
        ("/predict", {"records": records}),  # above the thread-pool threshold
        ("/predict?explain=true", {"records": records[:3]}),
        ("/predict", {"records": records[:2], "explain": True, "explain_top_k": 1}),
        ("/predict", {"records": [{**records[0], "Contract": "Weekly"}]}),
    ]


@pytest.mark.integration
@pytest.mark.parametrize("route", ["direct", "fastapi"])
def test_every_predict_path_sends_the_declared_shape(
    served_project: Path, bare_project: Path, tmp_path: Path, route: str
) -> None:
    records = example_records(200, seed=4)
    canary = tmp_path / "canary"
    shutil.copytree(
        served_project,
        canary,
        ignore=shutil.ignore_patterns(".serving-cache", "predictions", ".git", ".dvc*"),
    )
    register_approved_challenger(canary)
    params = yaml.safe_load((canary / "params.yaml").read_text())
    params["live"] = {**params.get("live", {}), "mode": "canary", "canary_share": 0.5}
    (canary / "params.yaml").write_text(yaml.safe_dump(params))
    seen: dict[str, set[str]] = {"prediction": set(), "explanation": set()}
    sources = set()
    for project in (served_project, canary, bare_project):  # champion, canary, the rules
        with _client(project, tmp_path / project.name, route) as client:
            sources.add(client.get("/version").json()["source"])
            for path, body in _bodies(records):
                response = client.post(path, json=body)
                assert response.status_code == 200, response.text
                answer = response.json()
                parsed = _validated(answer)
                assert len(parsed.predictions) == len(body["records"])
                for prediction in answer["predictions"]:
                    seen["prediction"] |= set(prediction)
                    if "explanation" in prediction:
                        seen["explanation"] |= set(prediction["explanation"])
    assert "rules" in sources and len(sources) >= 2
    from serving.schemas import Explanation, Prediction

    # Every declared field of a prediction is sent on some path: none is declared in vain.
    assert seen["prediction"] == set(Prediction.model_fields)
    assert seen["explanation"] >= set(Explanation.model_fields) - {"note"}


@pytest.mark.integration
def test_the_docs_example_is_the_declared_response(served_project: Path, tmp_path: Path) -> None:
    from serving.schemas import Explanation

    with _client(served_project, tmp_path, "direct") as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/predict"]["post"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    _validated(example)
    Explanation.model_validate(document["components"]["schemas"]["Explanation"]["examples"][0])


@pytest.mark.integration
def test_batch_scoring_columns_are_the_declared_prediction_fields(
    served_project: Path, tmp_path: Path
) -> None:
    from churn.config.settings import get_settings
    from serving.batch import score_file
    from serving.schemas import BATCH_COLUMNS, Prediction

    frame = pd.DataFrame(example_records(50, seed=2))
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(source, index=False)
    score_file(get_settings(project_dir=served_project), source, out, progress=False)
    scored = pd.read_csv(out, dtype={"customerID": str})
    assert list(scored.columns) == ["customerID", *BATCH_COLUMNS]
    for row in scored[list(BATCH_COLUMNS)].to_dict(orient="records"):
        Prediction.model_validate({**row, "model_version": str(row["model_version"])})


def test_a_field_declared_but_not_built_fails_at_import_naming_it() -> None:
    from serving.schemas import _declared

    class Shape(BaseModel):
        churn_probability: float
        churn: bool
        segment: str

    with pytest.raises(TypeError, match="segment"):
        _declared(Shape, "churn_probability", "churn")
    with pytest.raises(TypeError, match="extra"):
        _declared(Shape, "churn_probability", "churn", "segment", "extra")


def test_an_undeclared_or_missing_field_fails_validation() -> None:
    from serving.schemas import predict_response, predictions

    good = predict_response("3", "r1", predictions([0.4], [False], [["Contract"]]))
    _validated(good)
    undeclared = predict_response("3", "r1", [{**good["predictions"][0], "segment": "a"}])
    with pytest.raises(ValidationError, match="segment"):
        _validated(undeclared)
    missing = predict_response("3", "r1", [{"churn_probability": 0.4}])
    with pytest.raises(ValidationError, match="churn"):
        _validated(missing)
