"""Feature engineering as one scikit-learn pipeline, fitted once and shipped inside the model."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn.config.params import DatasetConfig, FeatureParams

# The derived features' arithmetic: ``ratio`` and ``count_present`` (with its row rule
# ``present``), used by ``DerivedFeatures.derive`` on columns (the pipeline's ``transform`` on a
# frame's, the serving scorer, ``churn.scoring``, on request columns) and by ``derive_record``
# on one record's values, so a change here is served exactly as it was trained. A few rows go
# through plain Python (below ``_FEW`` rows numpy's per-call cost is the time).
_FEW = 8


def ratio(numerator: Any, denominator: Any, maximum: Any = np.maximum) -> Any:
    """A ratio feature: ``numerator / max(denominator, 1)``, for arrays or (with ``maximum=max``,
    which gives the same value as ``np.maximum`` for every float, NaN included) floats.

    A denominator below one (tenure 0: nothing billed yet) counts as one, so the ratio is finite.
    """
    return numerator / maximum(denominator, 1.0)


def count_present(columns: Sequence[Any], absent: Collection[Any], n: int) -> np.ndarray:
    """A count feature: per row, how many of ``columns`` hold a value that is not in ``absent``.

    A missing value (None, NaN) is not one of ``absent``, so it counts as present. ``columns``
    are 1-D sequences of ``n`` values each: lists, numpy arrays or pandas categoricals.
    """
    out = frozenset(absent)
    if n <= _FEW and columns:
        rows = zip(*columns, strict=True)
        return np.fromiter((present(row, out) for row in rows), np.float64, count=n)
    total = np.zeros(n, dtype=np.float64)
    for values in columns:
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            # One test per level, not per row; code -1 (missing) picks the trailing "present".
            by_level = [v not in out for v in values.cat.categories] + [True]
            total += np.asarray(by_level, dtype=np.float64)[values.cat.codes.to_numpy()]
        elif isinstance(values, list):  # a request's column: set lookups beat building an array
            total += ~np.fromiter(map(out.__contains__, values), dtype=bool, count=n)
        else:  # the same membership test, hashed in pandas (twice as fast on 100k values)
            total += ~pd.Series(values, copy=False).isin(out).to_numpy()
    return total


def present(row: Sequence[Any], absent: frozenset[Any]) -> int:
    """One row of :func:`count_present`: how many of its values are not in ``absent``."""
    return len(row) - sum(map(absent.__contains__, row))


def as_float(value: Any) -> float:
    """One value as ``np.asarray(values, dtype=np.float64)`` converts it (None: NaN)."""
    return math.nan if value is None else float(value)


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
    """Add ratio features (``a / max(b, 1)``) and counts of present services (``derive``)."""

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

    def derive(self, columns: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
        """The derived columns of ``n`` rows: ``{name: float64 values}``.

        Args:
            columns: the input columns by name (1-D, ``n`` values each), numbers already filled
                (this step runs after ``FillMissing``).
            n: the number of rows.
        """
        new: dict[str, np.ndarray] = {}
        for name, (num, den) in self.ratios.items():
            a = np.asarray(columns[num], dtype=np.float64)
            new[name] = ratio(a, np.asarray(columns[den], dtype=np.float64))
        for name, (cols, absent) in self.counts.items():
            new[name] = count_present([columns[c] for c in cols], absent, n)
        return new

    def derive_record(self, values: Mapping[str, Any]) -> dict[str, float]:
        """``derive`` of one record: ``{name: value}`` from its values by name (numbers filled).

        The same functions on Python floats (``ratio`` of two floats, the count's row rule
        :func:`present`), so the same value to the last bit
        (``tests/unit/scoring/test_scoring.py``),
        without building one-element arrays: for one record their cost is the time.
        """
        new: dict[str, float] = {}
        for name, (num, den) in self.ratios.items():
            new[name] = ratio(as_float(values[num]), as_float(values[den]), max)
        for name, (cols, absent) in self.counts.items():
            new[name] = float(present([values[c] for c in cols], frozenset(absent)))
        return new

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        used = {*(c for pair in self.ratios.values() for c in pair)}
        used |= {c for cols, _ in self.counts.values() for c in cols}
        return X.assign(**self.derive({c: X[c].to_numpy() for c in used}, len(X)))

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
