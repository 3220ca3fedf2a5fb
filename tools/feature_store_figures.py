"""The feature store's figures (docs/feature-store.md): its cost, and test ROC AUC three ways.

``uv run python -m tools.feature_store_figures [DIR] [N_ROWS]`` draws N_ROWS generated customers
(7,043 by default) and their events in DIR (a temporary folder by default), builds the store,
joins the splits as of each row's label time, and trains the same candidates (logistic,
XGBoost, no search) on the customer table alone, with the store's point-in-time features, and
with a naive join (each customer's latest features, by id alone: the events after the label leak
in). Needs the ``feast`` group.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from churn.config.params import Params, load_params
from churn.config.settings import Settings
from churn.data import stages
from churn.feature_source import feature_store
from churn.training import stages as model_stages
from churn.training.store_features import join_store_features, with_store_params

ROOT = Path(__file__).resolve().parents[1]


def main(folder: Path, n_rows: int) -> None:
    raw = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    raw["ingest"]["generator"]["n_rows"] = n_rows
    raw["feature_store"]["enabled"] = True
    raw["train"]["search"]["n_trials"] = 0
    raw["train"]["candidates"] = ["logistic", "xgboost"]
    params = Params.model_validate(raw)
    settings = Settings(project_dir=folder, data_dir=folder / "data")
    stages.ingest(settings, params)
    events = stages.events(settings, params)
    stages.validate(settings, params)
    stages.split(settings, params)
    splits = stages.load_splits(settings)
    store = feature_store(params)
    assert store is not None
    started = time.perf_counter()
    version = store.build(settings, params)
    seconds = time.perf_counter() - started
    print(f"build: {events} events -> {version.rows} snapshot rows in {seconds:.1f} s")
    started = time.perf_counter()
    joined = join_store_features(settings, params, splits, store)
    rows = sum(len(f) for f in splits.values())
    print(f"point-in-time join of {rows} rows: {time.perf_counter() - started:.1f} s")
    table = pd.read_parquet(settings.data_dir / "feature_store" / "customer_activity.parquet")
    latest = table.sort_values("event_timestamp").groupby("customerID").tail(1)
    latest = latest.drop(columns="event_timestamp")
    naive = {k: f.merge(latest, on="customerID", how="left") for k, f in splits.items()}
    model_params = with_store_params(params)
    for name, frames, used in (
        ("customer table only", splits, params),
        ("with the store, point-in-time", joined, model_params),
        ("with a naive join (leaks)", naive, model_params),
    ):
        features = model_stages.featurize(frames, used)
        trained = model_stages.train(features, used)
        result = model_stages.evaluate_models(features, trained, used)
        print(f"{name}: test ROC AUC {result.metrics['test_roc_auc']:.3f} ({result.selected})")


if __name__ == "__main__":
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 7043
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]), rows)
    else:
        with tempfile.TemporaryDirectory(prefix="feature-store-") as tmp:
            main(Path(tmp), rows)
