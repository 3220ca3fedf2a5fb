"""Feature engineering as one scikit-learn pipeline, fitted once and shipped inside the model."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn.params import DatasetConfig, FeatureParams


def ratio(numerator: Any, denominator: Any) -> Any:
    """A ratio feature: ``numerator / max(denominator, 1)``, for scalars or arrays.

    A denominator below one (tenure 0: nothing billed yet) counts as one, so the ratio is finite.
    The one definition of the arithmetic, used by :class:`DerivedFeatures` and by serving's numpy
    replay of the fitted pipeline.
    """
    return numerator / np.maximum(denominator, 1.0)


def is_present(value: Any, absent: Collection[Any]) -> bool:
    """A count feature counts a column when its value is not one of ``absent`` (scalar form)."""
    return value not in absent


class FillMissing(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Fill missing numbers: a configured constant per column, else the training median."""

    def __init__(self, fill_values: dict[str, float | None]) -> None:
        self.fill_values = fill_values

    def fit(self, X: pd.DataFrame, y: Any = None) -> FillMissing:
        medians = X[list(self.fill_values)].median()
        self.values_ = {
            col: (fixed if fixed is not None else float(medians[col]))
            for col, fixed in self.fill_values.items()
        }
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.fillna(self.values_)


class DerivedFeatures(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Add ratio features (``a / max(b, 1)``) and counts of present services, vectorised."""

    def __init__(
        self,
        ratios: dict[str, tuple[str, str]],
        counts: dict[str, tuple[list[str], list[Any]]],
    ) -> None:
        self.ratios = ratios
        self.counts = counts

    def fit(self, X: pd.DataFrame, y: Any = None) -> DerivedFeatures:
        self.n_features_in_ = X.shape[1]  # marks the step as fitted for scikit-learn
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        new: dict[str, Any] = {}
        for name, (num, den) in self.ratios.items():
            new[name] = ratio(X[num].to_numpy(dtype="float64"), X[den].to_numpy(dtype="float64"))
        for name, (columns, absent) in self.counts.items():
            new[name] = (~X[columns].isin(absent)).sum(axis=1).to_numpy(dtype="float64")
        return X.assign(**new)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*(input_features or []), *self.ratios, *self.counts], dtype=object)


def build_feature_pipeline(dataset: DatasetConfig, features: FeatureParams) -> Pipeline:
    """The unfitted feature pipeline for a dataset config.

    Only the configured feature columns are used (``remainder="drop"``), so the id, the label
    and any column not in the config never reach a model. Unseen categories encode as all zeros.
    """
    numeric = list(dataset.numeric)
    derived = [*features.ratios, *features.counts]
    categorical = list(dataset.categorical)
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric + derived),
            (
                "cat",
                OneHotEncoder(
                    categories=[list(levels) for levels in dataset.categorical.values()],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                categorical,
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [
            ("fill", FillMissing({c: s.fill_value for c, s in dataset.numeric.items()})),
            (
                "derive",
                DerivedFeatures(
                    ratios=dict(features.ratios),
                    counts={n: (c.columns, list(c.absent)) for n, c in features.counts.items()},
                ),
            ),
            ("encode", encode),
        ]
    )


def encoded_feature_names(pipeline: Pipeline) -> list[str]:
    """Names of the encoded columns (``Contract_Two year``...), for importances and constraints."""
    return [str(n) for n in pipeline.named_steps["encode"].get_feature_names_out()]
