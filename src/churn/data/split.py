"""Seeded train / validation / test split: stratified by label, by time, or by a keyed hash."""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import pandas as pd

from churn.config.params import DatasetConfig, SplitParams, label_text, label_texts


def label_vector(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """1 for the positive (churn) label, 0 otherwise; labels compared as data (``label_text``)."""
    positive = label_text(dataset.positive_label)
    return (label_texts(frame[dataset.label_column]) == positive).astype("int8")


def hash_assign(frame: pd.DataFrame, dataset: DatasetConfig, params: SplitParams) -> np.ndarray:
    """Each row's split (``train``/``valid``/``test``) from a keyed hash of its id or row key.

    The key is ``dataset.key_column`` as text, hashed with a key derived from ``split.seed``:
    a row gets the same split wherever it sits (any partition, any engine, any file order), so
    no global shuffle is needed. The shares are ``split.valid_size`` / ``test_size`` up to
    sampling noise (the split is not stratified, which on large data makes no difference).
    """
    seed_key = hashlib.sha256(f"churn-split:{params.seed}".encode()).hexdigest()[:16]
    keys = frame[dataset.key_column].astype(str)
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key=seed_key, categorize=False)
    u = hashed.to_numpy(dtype=np.uint64) / float(2**64)
    train_cut = 1.0 - params.valid_size - params.test_size
    out = np.full(len(frame), "test", dtype=object)
    out[u < 1.0 - params.test_size] = "valid"
    out[u < train_cut] = "train"
    return out


def check_split_sizes(name: str, n_rows: int, n_classes: int) -> None:
    """A split must have rows and both label classes.

    Raises:
        ValueError: naming the split, when it does not.
    """
    if n_rows == 0 or n_classes < 2:
        raise ValueError(
            f"the {name} split has {n_rows} rows and {n_classes} label class(es); "
            "more data (or both labels) is needed to train"
        )


def split_frame(
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    params: SplitParams,
    method: Literal["stratified", "hash"] = "stratified",
) -> dict[str, pd.DataFrame]:
    """Split validated rows into ``train``, ``valid`` and ``test``.

    ``method="hash"`` (``split.method``; the dask engine's) assigns each row by
    :func:`hash_assign`. Otherwise, with ``dataset.time_column`` set, the oldest rows train and
    the newest test (no look-ahead); else the split is random, stratified by the label and seeded.

    Raises:
        ValueError: when a split would be empty or a class is missing from the training data.
    """
    holdout = params.valid_size + params.test_size
    if method == "hash":
        assigned = hash_assign(frame, dataset, params)
        parts = {name: frame[assigned == name] for name in ("train", "valid", "test")}
    elif dataset.time_column:
        ordered = frame.sort_values(dataset.time_column, kind="stable").reset_index(drop=True)
        n = len(ordered)
        n_train = round(n * (1 - holdout))
        n_valid = round(n * params.valid_size)
        parts = {
            "train": ordered.iloc[:n_train],
            "valid": ordered.iloc[n_train : n_train + n_valid],
            "test": ordered.iloc[n_train + n_valid :],
        }
    else:
        # scikit-learn only here: an unchanged `make train` imports this module without it
        from sklearn.model_selection import train_test_split

        y = label_vector(frame, dataset)
        train, rest = train_test_split(
            frame, test_size=holdout, stratify=y, random_state=params.seed
        )
        valid, test = train_test_split(
            rest,
            test_size=params.test_size / holdout,
            stratify=label_vector(rest, dataset),
            random_state=params.seed,
        )
        parts = {"train": train, "valid": valid, "test": test}
    for name, part in parts.items():
        check_split_sizes(name, len(part), label_vector(part, dataset).nunique())
    return {name: part.reset_index(drop=True) for name, part in parts.items()}
