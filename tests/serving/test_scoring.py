"""The numpy replay of the champion equals the registered pipeline; per-request fallback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.config.params import load_params
from churn.config.settings import get_settings
from churn.scoring import CompiledScorer, PipelineScorer, probe_columns
from serving.app import create_app
from serving.model import ServedModel, load_initial
from tests.serving.conftest import loaded_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(served_project: Path) -> tuple[ServedModel, Any]:
    settings = get_settings(project_dir=served_project)
    return load_initial(settings, load_params(settings.params_path)), settings


# One row (all nodes at once), row-by-row encoding, the tree walk up to 32 rows, the booster
# above; dict lookups up to 4096 rows, pandas categoricals above.
@pytest.mark.parametrize("n", [1, 7, 32, 33, 300, 5000])
def test_compiled_scorer_equals_the_pipeline(
    champion: tuple[ServedModel, Any], records: Any, n: int
) -> None:
    """Same probabilities as ``pipeline.predict_proba`` for every path (row, tree walk, booster)."""
    model, settings = champion
    assert isinstance(model.scorer, CompiledScorer)
    dataset = load_params(settings.params_path).dataset
    frame = pd.DataFrame(records(n, seed=n))
    cols = {c: frame[c].tolist() for c in dataset.feature_columns}
    reference = PipelineScorer(model.scorer.pipeline, dataset).score(cols, n)
    np.testing.assert_allclose(model.scorer.score(cols, n), reference, atol=1e-6)


def test_compiled_scorer_handles_unseen_levels_and_nulls(champion: tuple[ServedModel, Any]) -> None:
    model, settings = champion
    dataset = load_params(settings.params_path).dataset
    probe = probe_columns(dataset, n=20, seed=3)
    reference = PipelineScorer(model.scorer.pipeline, dataset).score(probe, 20)
    np.testing.assert_allclose(model.scorer.score(probe, 20), reference, atol=1e-6)


class _Broken:
    kind = "broken"

    def score(self, columns: Any, n: int) -> np.ndarray:
        raise RuntimeError("simulated model failure")  # a fault we cannot cause for real

    def score_one(self, columns: Any) -> float:  # the one-record path of the compiled scorer
        return float("nan")


@pytest.mark.parametrize("n", [1, 2])
def test_a_model_error_is_answered_by_the_rules_and_counted(
    served_project: Path, tmp_path: Path, records: Any, n: int
) -> None:
    """A scorer that raises (several records) or answers NaN (one record, ``score_one``)."""
    settings = get_settings(
        project_dir=served_project,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
    )
    app = create_app(settings)
    with loaded_client(app) as client:
        state = app.state.serving
        good = client.post("/predict", json={"records": records(n)}).json()
        assert good["model_version"] == state.model.version
        state.set_model(ServedModel(**{**state.model.__dict__, "scorer": _Broken()}))
        r = client.post("/predict", json={"records": records(n)})
        assert r.status_code == 200
        assert r.json()["model_version"] == "fallback-rules"
        assert len(r.json()["predictions"]) == n
        metric = f'churn_fallback_total{{reason="model_error"}} {n}.0'
        assert metric in client.get("/metrics").text


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_batch_scoring_matches_the_pipeline_in_input_order(
    champion: tuple[ServedModel, Any], tmp_path: Path, suffix: str
) -> None:
    """A raw file (blank TotalCharges as text, an unseen level) scored in small chunks."""
    from churn.data.generator import generate_customers
    from serving.batch import score_file

    model, settings = champion
    dataset = load_params(settings.params_path).dataset
    raw = generate_customers(2500, 9)
    raw.loc[5, "Contract"] = "Three year"
    source, target = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    raw.to_csv(source, index=False) if suffix == ".csv" else raw.to_parquet(source)
    summary = score_file(settings, source, target, chunk_rows=700, model=model, progress=False)
    out = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert summary.rows == len(out) == 2500
    assert summary.unseen == {"Contract": 1}
    assert out["customerID"].tolist() == raw["customerID"].tolist()
    frame = raw.assign(TotalCharges=pd.to_numeric(raw["TotalCharges"], errors="coerce"))
    cols = {c: frame[c].tolist() for c in dataset.feature_columns}
    expected = PipelineScorer(model.scorer.pipeline, dataset).score(cols, len(frame))
    np.testing.assert_allclose(out["churn_probability"], expected, atol=1e-6)
    assert (out["churn"] == (out["churn_probability"] >= model.threshold)).all()


def test_a_champion_the_replay_cannot_serve_is_served_by_the_pipeline_and_ready_says_degraded(
    project_copy: Path, tmp_path: Path, records: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A forker's step the numpy replay does not know (a FunctionTransformer before the model):
    the service scores with the plain pipeline, warns, and says so in /ready, /version and
    /metrics; the answers are still the pipeline's."""
    import mlflow
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from churn.release import registry, tracking

    settings = get_settings(
        project_dir=project_copy,
        reload_interval_seconds=0,
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
    )
    client = tracking.connect(settings)
    champion = registry.current_champion(client, settings.model_name)
    assert champion is not None
    fitted = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{champion.version}")
    changed = Pipeline(
        [("features", fitted[0]), ("noop", FunctionTransformer()), ("model", fitted[-1])]
    )
    experiment = tracking.experiment_id(client, settings, "unsupported-step")
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = mlflow.sklearn.log_model(
            changed,
            name="model",
            skops_trusted_types=[
                *tracking.trusted_model_types(),
                "sklearn.preprocessing._function_transformer.FunctionTransformer",
            ],
        )
    version = str(
        registry.register_challenger(
            client, settings.model_name, logged.model_uri, run.info.run_id, dict(champion.tags)
        ).version
    )
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, version)

    app = create_app(settings)
    with caplog.at_level("WARNING", logger="serving.model"), loaded_client(app) as c:
        ready = c.get("/ready").json()
        assert ready["status"] == "degraded" and ready["source"] == "registry", ready
        assert ready["model_version"] == version
        assert ready["reason"].startswith("slow scorer: not compilable: unknown step 'noop'")
        assert "FunctionTransformer" in ready["reason"]
        assert c.get("/version").json()["scorer"] == "pipeline"
        info = f'churn_model_info{{scorer="pipeline",source="registry",version="{version}"}} 1.0'
        assert info in c.get("/metrics").text
        sent = records(3)
        answer = c.post("/predict", json={"records": sent})
    assert answer.status_code == 200 and answer.json()["model_version"] == version
    frame = pd.DataFrame(sent)
    expected = changed.predict_proba(frame)[:, 1]
    got = [p["churn_probability"] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert "served by the plain pipeline" in caplog.text and "FunctionTransformer" in caplog.text
