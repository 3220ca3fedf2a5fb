"""Traffic simulator: realistic customers (maybe drifted) sent to the API, then their labels."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import httpx
import numpy as np
import orjson
import pandas as pd

from churn.data.generator import Drift, generate_customers
from churn.prediction_store import PredictionStore


class DriftKind(StrEnum):
    """Named shifts of the traffic: of the inputs (the generator's ``Drift``) and of the outcome."""

    none = "none"
    charges = "charges"  # prices up 30 %
    contract = "contract"  # 85 % month-to-month (and everything that follows from it)
    new_category = "new-category"  # 15 % pay with a method the model never saw
    competitor = "competitor"  # concept drift: half the DSL customers who would stay now leave
    strong = "strong"  # all of the above at once


_CHARGES = {"monthly_charges_factor": 1.3}
_CONTRACT = {"contract_mix": {"Month-to-month": 0.85, "One year": 0.1, "Two year": 0.05}}
_NEW_CATEGORY = {"new_category": {"PaymentMethod": "Crypto wallet"}, "new_category_share": 0.15}

DRIFTS: dict[DriftKind, Drift | None] = {
    DriftKind.none: None,
    DriftKind.charges: Drift(**_CHARGES),  # type: ignore[arg-type]
    DriftKind.contract: Drift(**_CONTRACT),  # type: ignore[arg-type]
    DriftKind.new_category: Drift(**_NEW_CATEGORY),  # type: ignore[arg-type]
    DriftKind.competitor: None,
    DriftKind.strong: Drift(**_CHARGES, **_CONTRACT, **_NEW_CATEGORY),  # type: ignore[arg-type]
}
# Concept drift, which the generator's story does not have: P(churn | inputs) changes. A
# competitor's DSL offer takes this share of the DSL customers who would otherwise have stayed.
COMPETITOR_SHARE = {DriftKind.competitor: 0.5, DriftKind.strong: 0.5}


def competitor_offer(customers: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """Turn ``share`` of the DSL stayers into churners: the inputs stay, the outcome moves."""
    rng = np.random.default_rng([seed, 0xC0FFEE])
    stayers = (customers["InternetService"] == "DSL") & (customers["Churn"] == "No")
    leave = stayers.to_numpy() & (rng.random(len(customers)) < share)
    out = customers.copy()
    out.loc[leave, "Churn"] = "Yes"
    return out


@dataclass
class SentTraffic:
    """Customers that were scored, with the truth the business learns later."""

    customers: pd.DataFrame  # generator rows (id and Churn included)
    requests: int
    model_versions: set[str]
    seconds: float


def make_customers(rows: int, seed: int, drift: DriftKind) -> pd.DataFrame:
    """Generator customers with the named drift; ids carry the seed so batches never collide."""
    drift = DriftKind(drift)
    customers = generate_customers(rows, seed, drift=DRIFTS[drift], id_prefix=f"S{seed}-")
    if drift in COMPETITOR_SHARE:
        customers = competitor_offer(customers, COMPETITOR_SHARE[drift], seed)
    return customers


def send_traffic(
    base_url: str,
    customers: pd.DataFrame,
    *,
    batch_size: int = 100,
    api_key: str | None = None,
    label_column: str = "Churn",
    numeric_columns: tuple[str, ...] = ("tenure", "MonthlyCharges", "TotalCharges"),
    timeout_s: float = 30.0,
) -> SentTraffic:
    """POST the customers to ``/predict`` in batches (the label is not sent).

    Numbers go as JSON numbers (the CSV's blank ``TotalCharges`` as null), as a client of a
    typed API sends them.

    Raises:
        httpx.HTTPStatusError: when the service refuses a batch.
    """
    records = customers.drop(columns=[label_column, "timestamp"], errors="ignore").astype(object)
    for name in numeric_columns:
        if name in records:
            values = pd.to_numeric(records[name].replace(" ", None), errors="coerce")
            records[name] = [None if pd.isna(v) else v for v in values.tolist()]
    payload_rows = records.to_dict(orient="records")
    headers = {"content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    versions: set[str] = set()
    started = time.perf_counter()
    requests = 0
    with httpx.Client(base_url=base_url, timeout=timeout_s, headers=headers) as client:
        for start in range(0, len(payload_rows), batch_size):
            body = orjson.dumps({"records": payload_rows[start : start + batch_size]})
            response = client.post("/predict", content=body)
            response.raise_for_status()
            versions.add(str(response.json()["model_version"]))
            requests += 1
    return SentTraffic(customers, requests, versions, time.perf_counter() - started)


def send_labels(
    store: PredictionStore,
    customers: pd.DataFrame,
    *,
    id_column: str = "customerID",
    label_column: str = "Churn",
    positive: str = "Yes",
    at: datetime | None = None,
) -> int:
    """Write the true outcome of each customer to the labels table, keyed like the log."""
    ids = [str(i) for i in customers[id_column]]
    churned = (customers[label_column] == positive).tolist()
    return store.write_labels(ids, churned, at or datetime.now(UTC))
