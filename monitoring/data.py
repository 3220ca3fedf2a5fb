"""Reference and current data: the champion's training rows and a window of the prediction log."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from mlflow import MlflowClient

from churn.champion import ChampionInfo
from churn.config.errors import DataError
from churn.config.params import DatasetConfig, MonitorParams, label_text, label_texts
from churn.data.parts import input_parts
from churn.data.versioning import versioned_paths
from churn.prediction_store import SCORE_COLUMN, PredictionStore, PredictionWindow
from churn.release import registry
from monitoring.report import TARGET

log = logging.getLogger(__name__)

# A partitioned test split (the dask engine) is sampled to this many rows for the reference.
_PARTITIONED_TEST_ROWS = 200_000


@dataclass
class Reference:
    """What the champion was trained and tested on, with its own scores on those rows."""

    record: ChampionInfo
    train: pd.DataFrame  # features + churn_probability (sampled to the cap)
    test: pd.DataFrame  # features + churn_probability + churn_label

    @property
    def model_version(self) -> str:
        return str(self.record.version)


class NoChampion(LookupError):
    """There is no champion to monitor (run the training flow first)."""


def features_frame(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """Feature columns typed as the reference has them (numbers as floats, levels as given)."""
    out = pd.DataFrame(index=frame.index)
    for name in dataset.numeric:
        column = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    for name in dataset.categorical:
        out[name] = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
    return out


def window_files(source: str | Path) -> list[str]:
    """The Parquet parts of a window (a file, a directory of parts or a glob)."""
    files = input_parts(source)
    if files[0].suffix.lower() == ".csv":
        raise DataError(
            f"{source}: a monitoring window is Parquet (exported predictions); convert the CSV "
            "parts, or point monitor.current_path at the Parquet export"
        )
    return [str(p) for p in files]


def window_rows(files: list[str]) -> int:
    """Rows in the window, from the Parquet footers (no data read)."""
    return sum(int(pq.ParquetFile(f).metadata.num_rows) for f in files)


def read_parquet_window(source: str | Path, *, max_rows: int, seed: int = 0) -> PredictionWindow:
    """A Parquet window read in this process (the pandas engine), sampled to ``max_rows``."""
    files = window_files(source)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if SCORE_COLUMN not in frame:
        raise DataError(f"{source}: no {SCORE_COLUMN} column (exported predictions have one)")
    total = len(frame)
    sampled = total > max_rows
    if sampled:
        frame = frame.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    return PredictionWindow(frame, total, sampled, None, None)


# Columns of a prediction-log window that are not the request's features.
_LOG_COLUMNS = frozenset(
    {"id", "logged_at", "model_version", "customer_hash", SCORE_COLUMN, "churn", "role"}
)


def own_lineage(window: PredictionWindow, dataset: DatasetConfig) -> PredictionWindow:
    """The window's rows logged for this lineage's schema; the others are set aside.

    The prediction log keys rows by version number, and every lineage (registered model) counts
    its versions from 1: a row whose features hold a column this data set does not have, or
    none of its columns, was logged by another lineage's model. Those rows are left out with
    one WARNING line, never an error.
    """
    frame = window.frame
    if frame.empty:
        return window
    ours = set(dataset.feature_columns) | {dataset.id_column}
    foreign = [c for c in frame.columns if c not in _LOG_COLUMNS and c not in ours]
    present = [c for c in dataset.feature_columns if c in frame.columns]
    other = np.zeros(len(frame), dtype=bool)
    if foreign:
        other |= frame[foreign].notna().any(axis=1).to_numpy()
    if present:
        other |= ~frame[present].notna().any(axis=1).to_numpy()
    else:
        other[:] = True
    if not other.any():
        return window
    log.warning(
        "monitoring: %d of %d logged predictions belong to another data set's lineage "
        "(features %s): set aside",
        int(other.sum()),
        len(frame),
        sorted(foreign)[:5] or "without this data set's columns",
    )
    kept = frame[~other].drop(columns=foreign).reset_index(drop=True)
    total = window.total_rows - (0 if window.sampled else int(other.sum()))
    if kept.empty:
        return PredictionWindow.empty()
    return PredictionWindow(
        kept, total, window.sampled, kept["logged_at"].min(), kept["logged_at"].max()
    )


def store_window(
    store: PredictionStore,
    monitor: MonitorParams,
    now: datetime,
    version: str,
    roles: list[str] | None = None,
    dataset: DatasetConfig | None = None,
) -> PredictionWindow:
    """``version``'s recent predictions in the store (``monitor.window``, sampled to
    ``monitor.max_current_rows``), of the given ``roles`` (all by default); with ``dataset``,
    only the rows of its lineage (:func:`own_lineage`)."""
    window = store.read_window(
        monitor.window.rows,
        hours=monitor.window.hours,
        max_rows=monitor.max_current_rows,
        seed=monitor.sample_seed,
        now=now,
        model_version=version,
        roles=roles,
    )
    return window if dataset is None else own_lineage(window, dataset)


def join_labels(window: PredictionWindow, store: PredictionStore) -> pd.DataFrame:
    """The window's predictions whose true label has arrived, with ``churn_label`` (1 = churned).

    Labels are joined on the keyed hash of the customer id; the latest label per customer wins.
    A label may arrive long after its prediction: every monitoring run joins again.
    """
    if window.frame.empty:
        return window.frame.assign(**{TARGET: pd.Series(dtype="int64")})
    labels = store.read_labels(window.frame["customer_hash"].dropna())
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
    cache_dir: Path | None = None,
) -> Reference:
    """The champion's own training split (and test split), found by the hashes on its run.

    The champion record holds the DVC md5 of every data file the run used; the files are read
    from the DVC cache (or fetched from the remote) by that md5, so the reference stays the
    champion's data after the workspace's data moved on. The champion then
    scores both splits: its scores on the training rows are the reference for prediction drift,
    its scores on the test rows the reference for classification quality.

    Args:
        version: the champion version the caller already read (the window's), so that a
            promotion in between cannot pair one version's traffic with another's data; by
            default the version the champion alias points at now.
        cache_dir: keep the scored reference here, keyed by version, the splits' md5 and the
            sample, so the next run against the same champion (the hourly job) reads two
            Parquet files instead of loading and running the model.

    Raises:
        NoChampion: when no version carries the champion alias.
        ChampionRecordError: when the version has no champion record.
    """
    champion = (
        client.get_model_version(model_name, version)
        if version is not None
        else registry.current_champion(client, model_name)
    )
    if champion is None:
        raise NoChampion(f"model {model_name!r} has no champion yet; run the training flow first")
    record = ChampionInfo.from_version(champion)
    key = (
        f"v{champion.version}-{record.split_md5('train')[:12]}-"
        f"{record.split_md5('test')[:12]}-{max_rows}-{seed}"
    )
    cached = _cached_reference(cache_dir, key, record)
    if cached is not None:
        return cached
    train = read_split(project_dir, record.split_md5("train"), max_rows, seed)
    test = read_split(project_dir, record.split_md5("test"), None, seed)
    if len(train) > max_rows:
        train = train.sample(n=max_rows, random_state=seed).reset_index(drop=True)
    model = mlflow.sklearn.load_model(f"models:/{model_name}/{champion.version}")
    reference_train = features_frame(train, dataset)
    reference_train[SCORE_COLUMN] = model.predict_proba(train)[:, 1]
    reference_test = features_frame(test, dataset)
    reference_test[SCORE_COLUMN] = model.predict_proba(test)[:, 1]
    positive = label_text(dataset.positive_label)
    reference_test[TARGET] = (
        (label_texts(test[dataset.label_column]) == positive).astype("int64").to_numpy()
    )
    reference = Reference(record=record, train=reference_train, test=reference_test)
    if cache_dir is not None:
        _cache_reference(cache_dir, key, reference)
    return reference


def read_split(project_dir: Path, md5: str, max_rows: int | None, seed: int) -> pd.DataFrame:
    """A split by its DVC md5: one Parquet file, or a partitioned split's parts (the dask
    engine's ``.dir`` outputs), each sampled to its share of ``max_rows`` as it is read, so a
    split of millions of rows never sits whole in this process. ``max_rows`` None: a single
    file whole, a partitioned split to 200,000 rows (the test reference's quality figures)."""
    paths = versioned_paths(project_dir, md5)
    if len(paths) == 1:
        return pd.read_parquet(paths[0])
    cap = max_rows or _PARTITIONED_TEST_ROWS
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    share = min(1.0, cap / max(sum(sizes), 1))
    frames = []
    for i, path in enumerate(paths):
        frame = pd.read_parquet(path)
        if share < 1.0:
            frame = frame.sample(frac=share, random_state=seed + i)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _cached_reference(cache_dir: Path | None, key: str, record: ChampionInfo) -> Reference | None:
    if cache_dir is None:
        return None
    paths = [cache_dir / f"{key}-{part}.parquet" for part in ("train", "test")]
    if not all(p.is_file() for p in paths):
        return None
    try:
        train, test = (pd.read_parquet(p) for p in paths)
    except (OSError, ValueError) as exc:  # a torn or foreign file: score again
        log.warning("monitoring: cached reference %s unreadable (%s); scoring again", key, exc)
        return None
    log.info("monitoring: reference of v%s read from the cache (%s)", record.version, cache_dir)
    return Reference(record=record, train=train, test=test)


def _cache_reference(cache_dir: Path, key: str, reference: Reference) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    for part, frame in (("train", reference.train), ("test", reference.test)):
        path = cache_dir / f"{key}-{part}.parquet"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
    for old in cache_dir.glob("*.parquet"):  # one champion's reference is kept
        if not old.name.startswith(f"{key}-"):
            old.unlink(missing_ok=True)


def feedback_rows(store: PredictionStore, dataset: DatasetConfig, max_rows: int) -> pd.DataFrame:
    """Labelled traffic in the raw source's shape: the retraining data policy's new rows.

    The newest ``max_rows`` logged predictions whose label has arrived, one row per customer (the
    latest prediction), with the hashed id as the id column and the label as the source writes it.
    A data set without an id column (``dataset.id_column: null``) has no feedback: labels are
    joined to predictions by customer id.
    Rows with a level the contract does not know (an unseen category) are left out: learning a
    new level is a change to ``params.yaml`` that a person makes, not something a retrain does.
    """
    ids = [dataset.id_column] if dataset.id_column else []
    if not ids:
        return pd.DataFrame(columns=[dataset.label_column, *dataset.feature_columns])
    window = own_lineage(store.read_window(max_rows, max_rows=max_rows), dataset)
    labelled = join_labels(window, store)
    if labelled.empty:
        return pd.DataFrame(columns=[*ids, dataset.label_column, *dataset.feature_columns])
    known = np.ones(len(labelled), dtype=bool)
    for name, levels in dataset.categorical.items():
        known &= labelled[name].isin(levels).to_numpy()
    kept = labelled[known].drop_duplicates("customer_hash", keep="last")
    out = features_frame(kept, dataset)
    out.insert(0, ids[0], kept["customer_hash"].to_numpy())
    out[dataset.label_column] = np.where(
        kept[TARGET].to_numpy() == 1, dataset.positive_label, dataset.negative_label
    )
    log.info(
        "feedback: %d labelled rows (%d with unseen levels left out)", len(out), (~known).sum()
    )
    return out.reset_index(drop=True)
