"""The request contract, auth and the rules fallback, on an app whose registry has no champion."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from churn.data.generator import COLUMNS
from serving.app import create_app
from serving.model import FALLBACK_VERSION, UNKNOWN_PRIOR
from tests.serving.conftest import loaded_client

API_KEY = "unit-test-key-42"
ROOT = Path(__file__).resolve().parents[2]

GOOD: dict[str, Any] = {
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from churn.config.settings import get_settings

    project = tmp_path_factory.mktemp("contract")
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    settings = get_settings(
        project_dir=project,
        reload_interval_seconds=0,
        MLFLOW_TRACKING_URI=f"sqlite:///{project / 'empty-mlflow.db'}",
        api_key=API_KEY,
        max_records=50,
    )
    app = create_app(settings)
    with loaded_client(app, headers={"X-API-Key": API_KEY}) as c:
        yield c


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != field}


# (case, body, expected status, field named in the 422 or None)
BAD_INPUTS: list[tuple[str, Any, int, str | None]] = [
    ("tenure is text", {"records": [with_(tenure="ten")]}, 422, "tenure"),
    ("tenure is fractional", {"records": [with_(tenure=1.5)]}, 422, "tenure"),
    ("tenure is negative", {"records": [with_(tenure=-1)]}, 422, "tenure"),
    ("tenure above the max", {"records": [with_(tenure=121)]}, 422, "tenure"),
    ("charges out of range", {"records": [with_(MonthlyCharges=1e9)]}, 422, "MonthlyCharges"),
    ("a level as a number", {"records": [with_(Contract=2)]}, 422, "Contract"),
    ("SeniorCitizen as text", {"records": [with_(SeniorCitizen="yes")]}, 422, "SeniorCitizen"),
    ("SeniorCitizen as digit text", {"records": [with_(SeniorCitizen="1")]}, 422, "SeniorCitizen"),
    ("SeniorCitizen as a bool", {"records": [with_(SeniorCitizen=True)]}, 422, "SeniorCitizen"),
    ("tenure as digit text", {"records": [with_(tenure="5")]}, 422, "tenure"),
    ("blank TotalCharges (send null)", {"records": [with_(TotalCharges=" ")]}, 422, "TotalCharges"),
    (
        "charges as numeric text",
        {"records": [with_(MonthlyCharges="29.85")]},
        422,
        "MonthlyCharges",
    ),
    ("a missing feature", {"records": [without("Contract")]}, 422, "Contract"),
    ("a null non-nullable", {"records": [with_(tenure=None)]}, 422, "tenure"),
    ("a huge string", {"records": [with_(Contract="x" * 10_000)]}, 422, "Contract"),
    ("a huge customer id", {"records": [with_(customerID="x" * 1000)]}, 422, "customerID"),
    ("empty records", {"records": []}, 422, "records"),
    ("too many records", {"records": [GOOD] * 51}, 422, "records"),
    ("records not a list", {"records": GOOD}, 422, "records"),
    ("no records key", {"rows": [GOOD]}, 422, "records"),
    ("body is a list", [GOOD], 422, None),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_inputs_get_the_documented_status(
    client: TestClient, case: str, body: Any, status: int, field: str | None
) -> None:
    """Each bad input gets its status; a 422 names the field and does not echo the input."""
    r = client.post("/predict", json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if field is not None:
        assert any(field in map(str, d["loc"]) for d in detail), detail
        assert all(d["msg"] for d in detail)
    assert "x" * 100 not in r.text


ACCEPTED: list[tuple[str, dict[str, Any], list[str]]] = [
    ("an unseen level is scored and flagged", with_(Contract="Three year"), ["Contract"]),
    ("an unseen integer level", with_(SeniorCitizen=2), ["SeniorCitizen"]),
    ("null TotalCharges (new customer)", with_(TotalCharges=None), []),
    ("a whole number for a float column", with_(MonthlyCharges=30), []),
    ("an integral float for an int column", with_(tenure=3.0), []),
    ("an unknown field is ignored", with_(Churn="Yes", favourite_colour="blue"), []),
    ("no customer id", without("customerID"), []),
]


@pytest.mark.parametrize(("case", "record", "unseen"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_variants(
    client: TestClient, case: str, record: dict[str, Any], unseen: list[str]
) -> None:
    r = client.post("/predict", json={"records": [record]})
    assert r.status_code == 200, r.text
    pred = r.json()["predictions"][0]
    assert 0.0 <= pred["churn_probability"] <= 1.0
    assert pred.get("unseen_categories", []) == unseen


def test_malformed_json_is_a_422(client: TestClient) -> None:
    r = client.post(
        "/predict", content=b'{"records": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_a_body_that_is_not_utf8_is_a_422(client: TestClient) -> None:
    body = b'{"records": ["\xff\xfe"]}'
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_oversized_body_is_a_413(client: TestClient) -> None:
    """The limit (4 KiB per allowed record by default) is checked before the body is parsed."""
    body = b'{"records": [' + b" " * (50 * 4096) + b"]}"
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_oversized_chunked_body_is_a_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"records": ['
        for _ in range(60):
            yield b" " * 4096
        yield b"]}"

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_rules_are_served_without_a_champion_and_ready_says_degraded(client: TestClient) -> None:
    r = client.post("/predict", json={"records": [GOOD, GOOD]})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == FALLBACK_VERSION
    assert len(body["predictions"]) == 2
    assert r.headers["x-request-id"] == body["request_id"]
    ready = client.get("/ready").json()
    assert ready["status"] == "degraded" and ready["source"] == "rules"
    assert "no cached champion" in ready["reason"]
    assert client.get("/version").json()["version"] == FALLBACK_VERSION
    metrics = client.get("/metrics").text
    assert 'churn_fallback_total{reason="no_model"}' in metrics


def test_with_no_rules_cached_the_prior_rate_rule_scores_everyone_alike_and_says_so(
    client: TestClient,
) -> None:
    """No champion, no cache, no training split to count churners in: every record gets the
    documented unknown prior, and /ready, /version and /metrics name the prior-rate rule."""
    records = [with_(Contract="Month-to-month"), with_(Contract="Two year", tenure=70)]
    p = [
        x["churn_probability"]
        for x in client.post("/predict", json={"records": records}).json()["predictions"]
    ]
    assert p == pytest.approx([UNKNOWN_PRIOR, UNKNOWN_PRIOR])
    ready = client.get("/ready").json()
    assert "prior-rate rule: every customer scores 0.500" in ready["reason"]
    assert ready["fallback"].startswith("prior-rate rule")
    assert client.get("/version").json()["scorer"] == "prior-rate"
    metrics = client.get("/metrics").text
    assert 'churn_model_info{scorer="prior-rate",source="rules",version="fallback-rules"} 1.0' in (
        metrics
    )
    assert 'churn_fallback_rules_info{kind="prior-rate",test_roc_auc=""} 1.0' in metrics


def test_a_client_request_id_is_echoed(client: TestClient) -> None:
    r = client.post("/predict", json={"records": [GOOD]}, headers={"X-Request-ID": "abc-123"})
    assert r.json()["request_id"] == "abc-123" == r.headers["x-request-id"]


def test_a_request_id_longer_than_the_log_column_is_replaced(client: TestClient) -> None:
    """A 100-character id would fail the prediction log's insert on PostgreSQL (64 wide)."""
    r = client.post("/predict", json={"records": [GOOD]}, headers={"X-Request-ID": "x" * 100})
    assert r.status_code == 200
    assert r.json()["request_id"] != "x" * 100 and len(r.json()["request_id"]) <= 64


def test_openapi_shows_levels_ranges_and_an_example(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    record = schemas["CustomerRecord"]
    contract = record["properties"]["Contract"]["anyOf"][0]
    assert contract["enum"] == ["Month-to-month", "One year", "Two year"]
    assert record["properties"]["tenure"]["maximum"] == 120
    assert schemas["PredictRequest"]["properties"]["records"]["maxItems"] == 50
    operation = document["paths"]["/predict"]["post"]
    example = operation["requestBody"]["content"]["application/json"]["example"]["records"][0]
    # The data's column order (the generator's, as in the Telco CSV), and a valid record.
    assert list(example) == [c for c in COLUMNS if c in example]
    assert client.post("/predict", json={"records": [example]}).status_code == 200
    answer = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert answer["model_version"] == FALLBACK_VERSION


def test_docs_pages_load_their_assets_from_the_service(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        text = client.get(page).text
        assert "cdn" not in text.lower() and "https://" not in text, page
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', text):
            assert client.get(asset).status_code == 200, asset


def test_openapi_documents_the_predict_body_and_key(client: TestClient) -> None:
    """/predict reads its body itself (for speed): the document must still say what it takes."""
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/predict"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/PredictRequest"}
    items = document["components"]["schemas"]["PredictRequest"]["properties"]["records"]["items"]
    assert items == {"$ref": "#/components/schemas/CustomerRecord"}
    scheme = next(iter(operation["security"][0]))
    assert document["components"]["securitySchemes"][scheme]["name"] == "X-API-Key"
    assert {"401", "413", "422", "503"} <= set(operation["responses"])


class TestAuth:
    def test_predict_needs_the_key_when_one_is_configured(self, client: TestClient) -> None:
        assert (
            client.post("/predict", json={"records": [GOOD]}, headers={"X-API-Key": ""}).status_code
            == 401
        )
        r = client.post("/predict", json={"records": [GOOD]}, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401

    def test_health_ready_version_metrics_are_open(self, client: TestClient) -> None:
        for path in ("/health", "/ready", "/version", "/metrics"):
            assert client.get(path, headers={"X-API-Key": ""}).status_code == 200, path

    def test_admin_reload_needs_the_key(self, client: TestClient) -> None:
        assert client.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
        r = client.post("/admin/reload")
        assert r.status_code == 200
        assert r.json()["outcome"] == "failed"  # the registry still has no champion

    def test_without_a_key_predict_is_open_and_admin_is_closed(
        self, bare_settings: Callable[..., Any]
    ) -> None:
        with loaded_client(create_app(bare_settings())) as c:
            assert c.post("/predict", json={"records": [GOOD]}).status_code == 200
            assert c.post("/admin/reload").status_code == 403

    def test_outside_development_a_missing_key_refuses_to_start(
        self, bare_settings: Callable[..., Any]
    ) -> None:
        with pytest.raises(ValueError, match="CHURN_API_KEY"):
            create_app(bare_settings(environment="production", id_hash_key="k" * 32))

    def test_outside_development_a_placeholder_key_is_refused(
        self, bare_settings: Callable[..., Any]
    ) -> None:
        with pytest.raises(ValueError, match="placeholder"):
            bare_settings(environment="production", api_key="changeme", id_hash_key="k" * 32)


def _boundaries() -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """``(accepted, refused)`` (column, value) pairs: each numeric column's range ends and one
    step past them, and the 64-bit ends of the integer-coded categorical column."""
    from churn.config.params import load_params
    from serving.schemas import INT64_MAX, INT64_MIN

    dataset = load_params(ROOT / "params.yaml").dataset
    accepted: list[tuple[str, Any]] = []
    refused: list[tuple[str, Any]] = []
    for name, spec in dataset.numeric.items():
        step = 1 if spec.integer else 1e-6
        assert spec.min is not None and spec.max is not None  # the project's params.yaml
        accepted += [(name, spec.min), (name, spec.max)]
        refused += [(name, spec.min - step), (name, spec.max + step)]
    for name, levels in dataset.categorical.items():
        if all(isinstance(level, int) for level in levels):
            accepted += [(name, INT64_MIN), (name, INT64_MAX)]
            refused += [(name, INT64_MIN - 1), (name, INT64_MAX + 1), (name, 10**20)]
    return accepted, refused


ACCEPTED_ENDS, REFUSED_ENDS = _boundaries()


@pytest.mark.parametrize(
    ("column", "value"), REFUSED_ENDS, ids=[f"{c}={v}" for c, v in REFUSED_ENDS]
)
def test_a_value_past_what_the_store_or_model_accepts_is_a_422(
    client: TestClient, column: str, value: Any
) -> None:
    """Among 9 valid records, one value one step out of range refuses the whole request."""
    r = client.post("/predict", json={"records": [GOOD] * 9 + [with_(**{column: value})]})
    assert r.status_code == 422, r.text
    assert any(column in map(str, d["loc"]) for d in r.json()["detail"])


@pytest.mark.parametrize("raw", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_non_finite_number_is_a_422(client: TestClient, raw: str) -> None:
    record = json.dumps(GOOD).replace('"MonthlyCharges": 29.85', f'"MonthlyCharges": {raw}')
    body = f'{{"records": [{record}]}}'
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text


def test_every_accepted_boundary_value_is_stored(bare_settings: Callable[..., Any]) -> None:
    """The range ends and the 64-bit ends are answered 200 and reach the prediction log."""
    settings = bare_settings()
    records = [with_(customerID=f"edge-{i}", **{c: v}) for i, (c, v) in enumerate(ACCEPTED_ENDS)]
    with loaded_client(create_app(settings)) as c:
        r = c.post("/predict", json={"records": records})
        assert r.status_code == 200, r.text
    db = settings.prediction_log_url.removeprefix("sqlite:///")
    stored = [
        json.loads(f)
        for (f,) in sqlite3.connect(db).execute("SELECT features FROM predictions ORDER BY id")
    ]
    assert [s[c] for s, (c, _) in zip(stored, ACCEPTED_ENDS, strict=True)] == [
        v for _, v in ACCEPTED_ENDS
    ]


def test_metrics_export_the_cost_of_predictions_from_the_process_counters(
    client: TestClient,
) -> None:
    """CPU-seconds per 1,000 predictions = the process's CPU time over the records scored."""
    client.post("/predict", json={"records": [GOOD] * 20})
    deadline = time.monotonic() + 10
    while True:  # the log writer counts scores off the request path
        text = client.get("/metrics").text
        values = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^(churn_[a-z0-9_]+) ([0-9.e+-]+)$", text, re.M)
        }
        if values.get("churn_prediction_probability_count", 0) >= 20 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    count = values["churn_prediction_probability_count"]
    cpu = values["churn_process_cpu_seconds_total"]
    assert count >= 20 and 0 < cpu <= time.process_time()
    per_1000 = values["churn_cpu_seconds_per_1000_predictions"]
    assert per_1000 == pytest.approx(cpu / count * 1000, rel=1e-6)


def test_metrics_count_every_answered_request_at_each_scrape(client: TestClient) -> None:
    """Requests are counted in batches (``ServingMetrics.count_request``), never late: each
    scrape counts every request answered before it, and whatever status it got."""

    def counted(text: str, status: str) -> float:
        pattern = (
            rf'^churn_http_requests_total\{{endpoint="/predict",method="POST",'
            rf'status="{status}"\}} ([0-9.e+]+)$'
        )
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else 0.0

    before = client.get("/metrics").text
    for _ in range(7):
        assert client.post("/predict", json={"records": [GOOD]}).status_code == 200
    assert client.post("/predict", json={"records": []}).status_code == 422
    after = client.get("/metrics").text
    assert counted(after, "200") - counted(before, "200") == 7
    assert counted(after, "422") - counted(before, "422") == 1
    seen = re.search(
        r'^churn_http_request_duration_seconds_count\{endpoint="/predict"\} ([0-9.e+]+)$',
        after,
        re.M,
    )
    assert seen and float(seen.group(1)) >= 8


def test_requests_are_counted_every_thousand_without_a_scrape() -> None:
    from serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    for _ in range(999):
        metrics.count_request("/predict", "POST", 200, 0.002)
    text = generate_latest(metrics.registry).decode()
    assert "churn_http_requests_total{" not in text  # kept, not yet counted
    metrics.count_request("/predict", "POST", 200, 0.002)
    text = generate_latest(metrics.registry).decode()
    counted = 'churn_http_requests_total{endpoint="/predict",method="POST",status="200"} 1000.0'
    timed = 'churn_http_request_duration_seconds_bucket{endpoint="/predict",le="0.002"} 1000.0'
    assert counted in text and timed in text


def test_the_docs_example_of_another_data_set_follows_its_config() -> None:
    """A data set that is not the template's gets a valid example from its config alone."""
    from churn.config.params import DatasetConfig
    from serving.docs import example_record
    from serving.schemas import RequestParser

    dataset = DatasetConfig.model_validate(
        {
            "id_column": "id",
            "label_column": "Churn",
            "positive_label": 1,
            "negative_label": 0,
            "numeric": {"Seconds of Use": {"min": 0, "max": 20000, "integer": True}},
            "categorical": {"Tariff Plan": [1, 2], "Status": [1, 2]},
        }
    )
    record = example_record(dataset)
    assert list(record) == ["id", "Seconds of Use", "Tariff Plan", "Status"]
    parsed = RequestParser(dataset, 10).parse(orjson.dumps({"records": [record]}))
    assert parsed == [record]


def test_head_health_is_answered_like_get(client: TestClient) -> None:
    r = client.head("/health")
    assert r.status_code == 200 and r.content == b""


def test_a_non_ascii_request_id_is_replaced_not_garbled(client: TestClient) -> None:
    r = client.post(
        "/predict", json={"records": [GOOD]}, headers={"X-Request-ID": "réq-ü-1".encode()}
    )
    assert r.status_code == 200
    given = r.json()["request_id"]
    assert given == r.headers["X-Request-ID"] and given.isascii() and "q-" not in given
