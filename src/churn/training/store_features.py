"""Training rows with the feature store's features, each joined as of the row's label time.

With ``feature_store.enabled`` the training flow builds the store (``churn.feature_source``)
and every split's rows get the store's features from a point-in-time join at their label time
(``data/raw/label_times.parquet``): a row never sees an event after its label was read. The
features become numeric columns of the data set the model is fitted on (counts and days are
never negative), so the feature pipeline, the model and the record treat them like any other.
"""

from __future__ import annotations

import pandas as pd

from churn.config.errors import DataError
from churn.config.layout import DataLayout
from churn.config.params import NumericColumn, Params
from churn.config.settings import Settings
from churn.feature_source import FeatureStore

TIME_COLUMN = "event_timestamp"  # the time column of an entity row, as Feast names it


def with_store_params(params: Params) -> Params:
    """``params`` whose data set also has the store's features as numeric columns."""
    dataset = params.dataset
    clash = sorted(set(params.feature_store.feature_names()) & set(dataset.feature_columns))
    if clash:
        raise DataError(
            f"the feature store's features {clash} are also columns of the dataset block: "
            "rename those columns, or set feature_store.enabled: false"
        )
    numeric = {
        **dataset.numeric,
        **{name: NumericColumn(min=0) for name in params.feature_store.feature_names()},
    }
    return params.model_copy(update={"dataset": dataset.model_copy(update={"numeric": numeric})})


def entity_rows(settings: Settings, params: Params, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s ids with each row's label time (``TIME_COLUMN``), in ``frame``'s order.

    Raises:
        DataError: a row has no label time (the events stage ran on other customers).
    """
    id_column = params.dataset.key_column
    label_times = pd.read_parquet(DataLayout(settings.data_dir).label_times)
    times = label_times.set_index("customerID")["label_time"]
    rows = pd.DataFrame({"customerID": frame[id_column].to_numpy(object)})
    rows[TIME_COLUMN] = rows["customerID"].map(times)
    missing = int(rows[TIME_COLUMN].isna().sum())
    if missing:
        raise DataError(
            f"{missing} of {len(rows)} rows have no label time in "
            f"{DataLayout(settings.data_dir).label_times}: run the events stage on the same raw "
            "data (churn events, or dvc repro)"
        )
    return rows


def join_store_features(
    settings: Settings,
    params: Params,
    splits: dict[str, pd.DataFrame],
    store: FeatureStore,
) -> dict[str, pd.DataFrame]:
    """Each split with the store's features as of each row's label time (same rows, same order).

    One query for every split's rows: Feast's file offline store reads its whole file per query.
    """
    names = params.feature_store.feature_names()
    rows = [entity_rows(settings, params, frame) for frame in splits.values()]
    features = store.historical(settings, params, pd.concat(rows, ignore_index=True))
    joined: dict[str, pd.DataFrame] = {}
    start = 0
    for (split, frame), entity in zip(splits.items(), rows, strict=True):
        part = features.iloc[start : start + len(entity)]
        start += len(entity)
        base = frame.reset_index(drop=True)
        joined[split] = pd.concat([base, part[names].reset_index(drop=True)], axis=1)
    return joined
