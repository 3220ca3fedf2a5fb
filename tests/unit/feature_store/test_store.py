"""The feature store on Feast's local provider: generated repository, registry, point-in-time join.

One small generated project (400 customers) is built once for the module, with one planted event:
a support call one hour AFTER a churner's label time (a churner has no events after it, so the
planted one is the only one there).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip(
    "feast", reason="the optional feast group is not installed (uv sync --extra feast)"
)

from feast import FeatureStore

from churn.config.layout import DataLayout
from churn.config.params import Params, load_params
from churn.config.settings import Settings
from churn.data import stages
from churn.feature_source import StoreVersion, feature_store
from churn.feature_store.definitions import config_dict, definitions, view_version
from churn.feature_store.store import repo_layout
from churn.training.store_features import join_store_features, with_store_params

ROOT = Path(__file__).resolve().parents[3]
PLANTED_DELAY = pd.Timedelta(hours=1)


class Built:
    settings: Settings
    params: Params
    version: StoreVersion
    events: pd.DataFrame  # with the planted event
    label_times: pd.DataFrame
    planted_for: str
    label_time: pd.Timestamp
    train: pd.DataFrame  # the training split


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("i30-feast-store")
    raw = load_params(ROOT / "params.yaml").model_dump(by_alias=True)
    raw["ingest"]["generator"] = {"n_rows": 400, "seed": 9}
    raw["feature_store"]["enabled"] = True
    b = Built()
    b.params = Params.model_validate(raw)
    b.settings = Settings(project_dir=root, data_dir=root / "data")
    stages.ingest(b.settings, b.params)
    stages.events(b.settings, b.params)
    stages.validate(b.settings, b.params)
    stages.split(b.settings, b.params)
    layout = DataLayout(b.settings.data_dir)
    b.train = pd.read_parquet(layout.split("train"))
    b.label_times = pd.read_parquet(layout.label_times)
    churner = b.train.loc[b.train["Churn"] == "Yes", "customerID"].iloc[0]
    b.planted_for = churner
    b.label_time = b.label_times.set_index("customerID").loc[churner, "label_time"]
    events = pd.read_parquet(layout.events)
    planted = pd.DataFrame(
        {
            "customerID": [churner],
            "event_timestamp": [b.label_time + PLANTED_DELAY],
            "event": ["support_call"],
        }
    )
    b.events = pd.concat([events, planted], ignore_index=True)
    b.events.to_parquet(layout.events, index=False)
    store = feature_store(b.params)
    assert store is not None
    b.version = store.build(b.settings, b.params)
    return b


def test_feature_store_yaml_is_generated_and_feast_reads_the_registered_views(built: Built) -> None:
    layout = repo_layout(built.settings)
    written = yaml.safe_load(layout.config.read_text())
    assert written == config_dict(built.params.feature_store, layout)
    assert written["online_store"]["type"] == "sqlite"
    # The feast command line's way in: the generated yaml alone
    store = FeatureStore(repo_path=str(layout.root))
    views = {view.name: view for view in store.list_feature_views()}
    assert set(views) == set(built.version.views)
    served = {field.name for view in views.values() for field in view.features}
    assert served == set(built.params.feature_store.feature_names())
    assert [entity.name for entity in store.list_entities()] == ["customer"]


def test_view_versions_change_with_the_definition_only(built: Built) -> None:
    layout = repo_layout(built.settings)
    _, again = definitions(built.params.feature_store, layout)
    assert {v.name: view_version(v) for v in again} == built.version.views
    other = built.params.feature_store.model_copy(update={"snapshot_hours": 12})
    _, changed = definitions(other, layout)
    assert all(view_version(v) != built.version.views[v.name] for v in changed)
    assert len(built.version.data_version) == 12
    source_rows = len(pd.read_parquet(layout.source, columns=["customerID"]))
    assert built.version.rows == source_rows > 0
    assert source_rows % 400 == 0  # every customer at every snapshot


def test_historical_features_come_back_in_the_rows_order_without_gaps(built: Built) -> None:
    store = feature_store(built.params)
    assert store is not None
    rows = built.label_times.rename(columns={"label_time": "event_timestamp"}).iloc[::-1]
    got = store.historical(built.settings, built.params, rows)
    assert got["customerID"].tolist() == rows["customerID"].tolist()
    assert got[built.params.feature_store.feature_names()].notna().all().all()


def _support_calls_90d(events: pd.DataFrame, customer: str, at: pd.Timestamp) -> int:
    mine = events[(events["customerID"] == customer) & (events["event"] == "support_call")]
    window = (mine["event_timestamp"] <= at) & (
        mine["event_timestamp"] > at - pd.Timedelta(days=90)
    )
    return int(window.sum())


def test_point_in_time_join_leaves_out_an_event_after_the_label_time_a_naive_join_takes(
    built: Built,
) -> None:
    """The training split's row of the planted churner, through the training flow's join."""
    store = feature_store(built.params)
    assert store is not None
    train = join_store_features(built.settings, built.params, {"train": built.train}, store)
    rows = train["train"]
    assert rows["customerID"].tolist() == built.train["customerID"].tolist()
    as_of_label = int(
        rows.loc[rows["customerID"] == built.planted_for, "support_call_count_90d"].iloc[0]
    )

    # A naive join: the customer's features as they are now (the latest snapshot), by id alone.
    table = pd.read_parquet(repo_layout(built.settings).source)
    latest = table.sort_values("event_timestamp").groupby("customerID").tail(1)
    row = pd.DataFrame({"customerID": [built.planted_for]})
    naive_row = row.merge(latest, on="customerID").rename(
        columns={"event_timestamp": "event_timestamp_latest"}
    )
    naive = int(naive_row["support_call_count_90d"][0])

    snapshot = built.label_time.floor(f"{built.params.feature_store.snapshot_hours}h")
    without_planted = built.events.iloc[:-1]
    latest_at = naive_row["event_timestamp_latest"][0]
    naive_without = _support_calls_90d(without_planted, built.planted_for, latest_at)
    print(
        f"\n{built.planted_for}'s support_call_count_90d, a call planted {PLANTED_DELAY} after "
        f"the label time ({built.label_time}): point-in-time join {as_of_label} (without the "
        f"planted call: {_support_calls_90d(without_planted, built.planted_for, snapshot)}), "
        f"naive join {naive} (without it: {naive_without})"
    )
    # the store: exactly the events at or before the last snapshot before the label time
    assert as_of_label == _support_calls_90d(built.events, built.planted_for, snapshot)
    assert as_of_label == _support_calls_90d(without_planted, built.planted_for, snapshot)
    # the naive join holds the planted call: one more than the same join without it
    assert naive == _support_calls_90d(built.events, built.planted_for, latest_at)
    assert naive == naive_without + 1


def test_the_store_features_become_numeric_columns_of_the_data_set(built: Built) -> None:
    model_params = with_store_params(built.params)
    names = built.params.feature_store.feature_names()
    assert set(names) <= set(model_params.dataset.feature_columns)
    assert all(model_params.dataset.numeric[name].min == 0 for name in names)
    assert built.params.dataset.numeric.keys().isdisjoint(names)  # the shipped block unchanged
