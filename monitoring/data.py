"""Reference and current data: the champion's training rows and a window of the prediction log."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient

from churn import registry
from churn.layout import DataLayout
from churn.params import DatasetConfig, MonitorWindow
from churn.versioning import open_versioned_file
from monitoring.labels import read_labels
from monitoring.report import PREDICTION, TARGET
from serving.predlog import make_engine, predictions_table

log = logging.getLogger(__name__)

_CHUNK = 10_000  # ids per IN (...) query: below every database's bound-parameter limit


@dataclass
class Window:
    """The current data: logged predictions with one column per feature."""

    frame: pd.DataFrame
    total_rows: int  # rows in the window before sampling
    sampled: bool
    start: datetime | None
    end: datetime | None

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass
class Reference:
    """What the champion was trained and tested on, with its own scores on those rows."""

    model_version: str
    run_id: str
    data_version: str
    threshold: float
    test_roc_auc: float | None
    train: pd.DataFrame  # features + churn_probability (sampled to the cap)
    test: pd.DataFrame  # features + churn_probability + churn_label
    train_md5: str


class NoChampion(LookupError):
    """There is no champion to monitor (run the training flow first)."""


def read_window(
    url: str,
    window: MonitorWindow,
    *,
    max_rows: int,
    seed: int = 0,
    now: datetime | None = None,
    model_version: str | None = None,
) -> Window:
    """The last ``window.rows`` predictions (within ``window.hours``), sampled down to ``max_rows``.

    With ``model_version``, only that version's predictions count: the champion is judged on its
    own scores, and right after a swap the window starts empty rather than blaming the new
    champion for the old one's predictions.

    Only ids are read to find the window; when it is larger than ``max_rows``, a seeded uniform
    sample of them is drawn before any feature JSON is parsed, so memory stays bounded by
    ``max_rows`` whatever the window's size. The JSON is parsed with orjson.
    """
    engine = make_engine(url)
    table = predictions_table
    try:
        if not sa.inspect(engine).has_table(table.name):
            return Window(pd.DataFrame(), 0, False, None, None)
        since = None
        if window.hours is not None:
            since = (now or datetime.now(UTC)) - timedelta(hours=window.hours)
            if engine.dialect.name == "sqlite":  # the log stores naive UTC there
                since = since.astimezone(UTC).replace(tzinfo=None)
        conditions = []
        if since is not None:
            conditions.append(table.c.logged_at >= since)
        if model_version is not None:
            conditions.append(table.c.model_version == model_version)
        ids_query = (
            sa.select(table.c.id).where(*conditions).order_by(table.c.id.desc()).limit(window.rows)
        )
        with engine.connect() as conn:
            ids = np.fromiter(conn.execute(ids_query).scalars(), dtype=np.int64)
            total = len(ids)
            sampled = total > max_rows
            if sampled:
                rng = np.random.default_rng(seed)
                ids = np.sort(rng.choice(ids, size=max_rows, replace=False))
            columns = [
                table.c.id,
                table.c.logged_at,
                table.c.model_version,
                table.c.customer_hash,
                sa.type_coerce(table.c.features, sa.Text).label("features"),
                table.c.churn_probability,
                table.c.churn,
            ]
            rows: list[Any] = []
            if total and not sampled:  # the newest ids are contiguous: one range query
                span = table.c.id.between(int(ids.min()), int(ids.max()))
                rows = list(conn.execute(sa.select(*columns).where(span, *conditions)))
            else:
                for start in range(0, len(ids), _CHUNK):
                    chunk = [int(i) for i in ids[start : start + _CHUNK]]
                    rows.extend(conn.execute(sa.select(*columns).where(table.c.id.in_(chunk))))
    finally:
        engine.dispose()
    if not rows:
        return Window(pd.DataFrame(), 0, False, None, None)
    meta = pd.DataFrame(
        [r[:4] + r[5:] for r in rows],
        columns=["id", "logged_at", "model_version", "customer_hash", PREDICTION, "churn"],
    )
    features = pd.DataFrame.from_records(
        [orjson.loads(r[4]) if isinstance(r[4], str | bytes) else r[4] for r in rows]
    )
    frame = pd.concat([meta, features], axis=1).sort_values("id", ignore_index=True)
    return Window(frame, total, sampled, frame["logged_at"].min(), frame["logged_at"].max())


def features_frame(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Feature columns typed as the reference has them (numbers as floats, levels as given)."""
    out = pd.DataFrame(index=frame.index)
    for name in dataset.numeric:
        column = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    for name in dataset.categorical:
        out[name] = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
    return out


def join_labels(window: Window, labels_url: str) -> pd.DataFrame:
    """The window's predictions whose true label has arrived, with ``churn_label`` (1 = churned).

    Labels are joined on the keyed hash of the customer id; the latest label per customer wins.
    A label may arrive long after its prediction: every monitoring run joins again.
    """
    if window.frame.empty:
        return window.frame.assign(**{TARGET: pd.Series(dtype="int64")})
    labels = read_labels(labels_url, window.frame["customer_hash"].dropna())
    if labels.empty:
        return window.frame.iloc[0:0].assign(**{TARGET: pd.Series(dtype="int64")})
    joined = window.frame.merge(
        labels[["customer_hash", "churned"]], on="customer_hash", how="inner"
    )
    return joined.assign(**{TARGET: joined.pop("churned").astype("int64")})


def load_reference(
    client: MlflowClient,
    model_name: str,
    project_dir: Path,
    dataset: DatasetConfig,
    *,
    max_rows: int,
    seed: int = 0,
    version: str | None = None,
) -> Reference:
    """The champion's own training split (and test split), found by the hashes on its run.

    The run that trained the champion records ``data_file:<path>`` = DVC md5 for every data file;
    the files are read from the DVC cache (or fetched from the remote) by that md5, so the
    reference stays the champion's data after the workspace's data moved on. The champion then
    scores both splits: its scores on the training rows are the reference for prediction drift,
    its scores on the test rows the reference for classification quality.

    Args:
        version: the champion version the caller already read (the window's), so that a
            promotion in between cannot pair one version's traffic with another's data; by
            default the version the champion alias points at now.

    Raises:
        NoChampion: when no version carries the champion alias.
        KeyError: when the champion's run did not record its data files.
    """
    champion = (
        client.get_model_version(model_name, version)
        if version is not None
        else registry.current_champion(client, model_name)
    )
    if champion is None:
        raise NoChampion(f"model {model_name!r} has no champion yet; run the training flow first")
    run_id = str(champion.run_id)
    run = client.get_run(run_id)
    layout = DataLayout(Path("data"))
    md5 = {
        name: run.data.params[f"data_file:{layout.split(name).as_posix()}"]
        for name in ("train", "test")
    }
    train = pd.read_parquet(open_versioned_file(project_dir, md5["train"]))
    test = pd.read_parquet(open_versioned_file(project_dir, md5["test"]))
    if len(train) > max_rows:
        train = train.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
    positive = dataset.positive_label
    reference_train = features_frame(train, dataset)
    reference_train[PREDICTION] = model.predict_proba(train)[:, 1]
    reference_test = features_frame(test, dataset)
    reference_test[PREDICTION] = model.predict_proba(test)[:, 1]
    reference_test[TARGET] = (test[dataset.label_column] == positive).astype("int64").to_numpy()
    tags = champion.tags
    return Reference(
        model_version=str(champion.version),
        run_id=run_id,
        data_version=tags.get("data_version", ""),
        threshold=float(tags.get("decision_threshold", "0.5")),
        test_roc_auc=float(tags["test_roc_auc"]) if "test_roc_auc" in tags else None,
        train=reference_train,
        test=reference_test,
        train_md5=md5["train"],
    )


def feedback_rows(
    url: str,
    labels_url: str,
    dataset: DatasetConfig,
    max_rows: int,
) -> pd.DataFrame:
    """Labelled traffic in the raw source's shape: the retraining data policy's new rows.

    The newest ``max_rows`` logged predictions whose label has arrived, one row per customer (the
    latest prediction), with the hashed id as the id column and the label as the source writes it.
    Rows with a level the contract does not know (an unseen category) are left out: learning a
    new level is a change to ``params.yaml`` that a person makes, not something a retrain does.
    """
    window = read_window(url, MonitorWindow(rows=max_rows), max_rows=max_rows)
    labelled = join_labels(window, labels_url)
    if labelled.empty:
        return pd.DataFrame(
            columns=[dataset.id_column, dataset.label_column, *dataset.feature_columns]
        )
    known = np.ones(len(labelled), dtype=bool)
    for name, levels in dataset.categorical.items():
        known &= labelled[name].isin(levels).to_numpy()
    kept = labelled[known].drop_duplicates("customer_hash", keep="last")
    out = features_frame(kept, dataset)
    out.insert(0, dataset.id_column, kept["customer_hash"].to_numpy())
    out[dataset.label_column] = np.where(
        kept[TARGET].to_numpy() == 1, dataset.positive_label, dataset.negative_label
    )
    log.info(
        "feedback: %d labelled rows (%d with unseen levels left out)", len(out), (~known).sum()
    )
    return out.reset_index(drop=True)
