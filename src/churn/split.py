"""Seeded train / validation / test split: stratified by label, or by time when configured."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from churn.params import DatasetConfig, SplitParams, label_text, label_texts


def label_vector(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """1 for the positive (churn) label, 0 otherwise; labels compared as data (``label_text``)."""
    positive = label_text(dataset.positive_label)
    return (label_texts(frame[dataset.label_column]) == positive).astype("int8")


def split_frame(
    frame: pd.DataFrame, dataset: DatasetConfig, params: SplitParams
) -> dict[str, pd.DataFrame]:
    """Split validated rows into ``train``, ``valid`` and ``test``.

    With ``dataset.time_column`` set, the oldest rows train and the newest test (no look-ahead);
    otherwise the split is random, stratified by the label and seeded.

    Raises:
        ValueError: when a split would be empty or a class is missing from the training data.
    """
    holdout = params.valid_size + params.test_size
    if dataset.time_column:
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
        classes = label_vector(part, dataset).nunique()
        if len(part) == 0 or classes < 2:
            raise ValueError(
                f"the {name} split has {len(part)} rows and {classes} label class(es); "
                "more data (or both labels) is needed to train"
            )
    return {name: part.reset_index(drop=True) for name, part in parts.items()}
