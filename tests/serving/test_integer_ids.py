"""Ids as the file has them: a data set whose id column holds integers (``dataset.id_type:
integer``, written by ``churn init-dataset``) takes the id as a JSON integer or a string of
its digits, and logs both as the same hash; anything else is a 422 naming the id field."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from churn.prediction_store import PredictionStore, predictions_table


def test_an_integer_id_is_taken_as_a_number_or_digits_and_hashed_alike(
    bare_project: Path, live_server: Callable[..., Any], records: Callable[..., Any], tmp_path: Path
) -> None:
    doc = yaml.safe_load((bare_project / "params.yaml").read_text())
    doc["dataset"]["id_type"] = "integer"
    (bare_project / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    server = live_server(
        bare_project,
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{bare_project / 'empty.db'}",
            "CHURN_PREDICTION_LOG_URL": log_url,
        },
        ready=240,
    )
    record = records(1)[0]
    id_column = doc["dataset"]["id_column"]
    sent = []
    for value in (15634602, "15634602", " 15634602", 15634603):
        r = httpx.post(server.url + "/predict", json={"records": [{**record, id_column: value}]})
        assert r.status_code == 200, r.text
        sent.append(r.json()["request_id"])
    for value in ("7590-VHVEG", True, 1.5, "", 2**63):
        r = httpx.post(server.url + "/predict", json={"records": [{**record, id_column: value}]})
        assert r.status_code == 422, (value, r.text)
        assert [id_column] == [e["loc"][-1] for e in r.json()["detail"]][:1], r.text
    schema = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]
    id_schema = schema["CustomerRecord"]["properties"][id_column]
    assert {"integer", "null"} <= {s.get("type") for s in id_schema["anyOf"]}, id_schema

    store = PredictionStore(log_url, log_url, b"")
    query = sa.select(predictions_table.c.request_id, predictions_table.c.customer_hash)
    deadline = time.monotonic() + 30
    while True:  # the writer is asynchronous
        with store.engine(log_url).connect() as conn:
            hashes = dict(conn.execute(query).all())
        if len(hashes) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    first, digits, padded, other = (hashes[i] for i in sent)
    assert first == digits == padded != other
