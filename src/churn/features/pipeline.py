"""Feature engineering as one scikit-learn pipeline, fitted once and shipped inside the model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn.config.features import FeatureParams
from churn.config.params import DatasetConfig
from churn.features.kinds import Derived, plan

# The artefact's steps by name. ``training.train.assemble`` makes ``Pipeline([(FEATURES, the
# feature pipeline), (MODEL, the model)])``; ``build_feature_pipeline`` makes the feature
# pipeline's FILL, DERIVE and ENCODE. Every reader that takes a fitted artefact apart (the serving
# replay, explanations, the Dask engine) finds them through ``model_steps`` and ``feature_steps``,
# by name: a step they do not know is an error naming it (``UnknownStep``), never skipped.
FEATURES, MODEL = "features", "model"
FILL, DERIVE, ENCODE = "fill", "derive", "encode"


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
    """Add the derived features of ``params.yaml``'s ``features`` block (``churn.features.kinds``).

    ``features`` is that block as plain data (``FeatureParams.model_dump(mode="json")``): the
    fitted step is saved with skops, which loads plain data and the types vouched for in
    ``release.tracking.trusted_model_types()`` only, so a new kind needs no new trusted type.
    """

    def __init__(self, features: dict[str, Any]) -> None:
        self.features = features

    def plan(self) -> list[Derived]:
        """The configured features with their arithmetic (``churn.features.kinds.plan``)."""
        return plan(FeatureParams.model_validate(self.features))

    def fit(self, X: pd.DataFrame, y: Any = None) -> DerivedFeatures:
        self.plan()  # an unknown kind fails at fit, naming it
        self.n_features_in_ = X.shape[1]  # marks the step as fitted for scikit-learn
        return self

    def derive(self, columns: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
        """The derived columns of ``n`` rows: ``{name: float64 values}``.

        Args:
            columns: the input columns by name (1-D, ``n`` values each), numbers already filled
                (this step runs after ``FillMissing``).
            n: the number of rows.
        """
        return {d.name: d.frame(columns, n) for d in self.plan()}

    def derive_record(self, values: Mapping[str, Any]) -> dict[str, float]:
        """``derive`` of one record: ``{name: value}`` from its values by name (numbers filled),
        the same value to the last bit (``tests/unit/features/test_kinds.py``)."""
        return {d.name: d.record(values) for d in self.plan()}

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        derived = self.plan()
        used = {c for d in derived for c in d.reads}
        columns = {c: X[c].to_numpy() for c in used}
        return X.assign(**{d.name: d.frame(columns, len(X)) for d in derived})

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = [d.name for d in self.plan()]
        return np.asarray([*(input_features or []), *names], dtype=object)


def build_feature_pipeline(dataset: DatasetConfig, features: FeatureParams) -> Pipeline:
    """The unfitted feature pipeline for a dataset config.

    Only the configured feature columns are used (``remainder="drop"``), so the id, the label
    and any column not in the config never reach a model. Unseen categories encode as all zeros.
    """
    numeric = list(dataset.numeric)
    derived = features.names()
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
            (FILL, FillMissing({c: s.fill_value for c, s in dataset.numeric.items()})),
            (DERIVE, DerivedFeatures(features.model_dump(mode="json"))),
            (ENCODE, encode),
        ]
    )


def encoded_feature_names(pipeline: Pipeline) -> list[str]:
    """Names of the encoded columns (``Contract_Two year``...), for importances and constraints."""
    return [str(n) for n in feature_steps(pipeline).encode.get_feature_names_out()]


class UnknownStep(ValueError):
    """A fitted artefact holds a step its reader does not know, or lacks one: the message names
    it. Readers fail closed on it (the replay and explanations say so, the Dask engine stops)."""


def _named(step: Any) -> str:
    return f"{step[0]!r} ({type(step[1]).__name__})"


def model_steps(pipeline: Any) -> tuple[Pipeline, Any]:
    """The artefact's feature pipeline and model, by name (``FEATURES``, ``MODEL``).

    Raises:
        UnknownStep: a step of another name, or either one missing.
    """
    steps = list(getattr(pipeline, "steps", None) or [])
    unknown = [_named(s) for s in steps if s[0] not in (FEATURES, MODEL)]
    if unknown:
        raise UnknownStep(
            f"unknown step {', '.join(unknown)} in the model pipeline: its readers know "
            f"{FEATURES!r} (the feature pipeline) and {MODEL!r} (the model) only"
        )
    named = dict(steps)
    if FEATURES not in named or MODEL not in named:
        raise UnknownStep(
            f"the model pipeline has steps {[n for n, _ in steps]}, not {FEATURES!r} and "
            f"{MODEL!r} (training.train.assemble)"
        )
    return named[FEATURES], named[MODEL]


@dataclass(frozen=True)
class FeatureSteps:
    """The feature pipeline's three steps, found by name: ``fill``, ``derive``, ``encode``."""

    fill: FillMissing
    derive: DerivedFeatures
    encode: ColumnTransformer


_FEATURE_STEPS: dict[str, type[Any]] = {
    FILL: FillMissing,
    DERIVE: DerivedFeatures,
    ENCODE: ColumnTransformer,
}


def feature_steps(features: Any) -> FeatureSteps:
    """The feature pipeline's steps by name (``build_feature_pipeline``'s), each of its type.

    Raises:
        UnknownStep: a step of another name or type, a step missing, or their order changed
            (each reader applies fill, derive, then encode).
    """
    steps = list(getattr(features, "steps", None) or [])
    known = ", ".join(f"{n!r} ({t.__name__})" for n, t in _FEATURE_STEPS.items())
    unknown = [
        _named(s)
        for s in steps
        if s[0] not in _FEATURE_STEPS or not isinstance(s[1], _FEATURE_STEPS[s[0]])
    ]
    if unknown or [n for n, _ in steps] != list(_FEATURE_STEPS):
        what = f"unknown step {', '.join(unknown)}" if unknown else "steps out of order"
        raise UnknownStep(
            f"{what} in the feature pipeline ({[n for n, _ in steps]}): its readers (the "
            f"serving replay, explanations, the Dask engine) know {known}, in that order; "
            "teach each of them a new step, or compute it in a derived-feature kind "
            "(churn/features/kinds.py)"
        )
    named = dict(steps)
    return FeatureSteps(named[FILL], named[DERIVE], named[ENCODE])
