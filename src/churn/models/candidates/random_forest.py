"""The random forest: scikit-learn's forest with its own small seeded search."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from churn.config.params import SearchParams
from churn.models.kind import FitContext, ModelKind


class RandomForestParams(BaseModel):
    """``train.random_forest``: the forest's starting point; its search explores around it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(120, gt=0, le=2000)
    max_depth: int | None = Field(8, gt=0)
    min_samples_leaf: int = Field(5, ge=1)
    max_features: float = Field(0.5, gt=0, le=1)
    # The rows each tree draws (bootstrap), at most: a forest's fit grows faster than its rows,
    # so at a million rows this bounds its cost; on fewer rows every tree draws all of them.
    # null: always all rows. Not searched: every trial uses the configured value.
    max_samples: int | None = Field(50_000, gt=0)


def fit(X: np.ndarray, y: np.ndarray, values: dict[str, Any], context: FitContext) -> Any:
    """One random-forest fit (with the same monotone constraints as XGBoost, when any).

    ``values["max_samples"]`` bounds the rows each tree draws; it applies only when the training
    split has more rows than that.
    """
    from sklearn.ensemble import RandomForestClassifier

    values = dict(values)
    cap = values.pop("max_samples", None)
    model = RandomForestClassifier(
        **values,
        max_samples=cap if cap is not None and cap < len(X) else None,
        random_state=context.seed,
        n_jobs=context.n_jobs,
        monotonic_cst=list(context.monotone) if any(context.monotone) else None,
    )
    return model.fit(X, y)


def _trials(search: SearchParams) -> int:
    # Its own trial count (search.random_forest_trials; null: n_trials): a forest costs more.
    n = search.random_forest_trials
    return search.n_trials if n is None else n


def raw_score(inner: Any, *, sigmoid: bool) -> Any:
    """The numpy walk of its trees (``churn.scoring.replay.forest_raw_score``)."""
    from churn.scoring.replay import forest_raw_score

    return forest_raw_score(inner, sigmoid=sigmoid)


def _importances(model: Any, names: list[str]) -> tuple[dict[str, float], str]:
    values = dict(zip(names, map(float, model.feature_importances_), strict=True))
    return values, "random-forest mean decrease in impurity"


KIND = ModelKind(
    name="random_forest",
    title="random forest",
    estimator="sklearn.ensemble._forest.RandomForestClassifier",
    params=RandomForestParams,
    fit=fit,
    param_prefix="rf",
    trusted_types=(
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    ),
    libraries=("scikit-learn",),
    modules=("sklearn.ensemble",),
    search_space={
        "n_estimators": (60, 160, "int"),
        "max_depth": (4, 10, "int"),
        "min_samples_leaf": (3, 40, "logint"),
        "max_features": (0.2, 0.8, "lin"),
    },
    search_trials=_trials,
    search_seed=1,
    raw_score=raw_score,
    no_explainer=(
        "the random forest has no exact explainer here (TreeSHAP is implemented for XGBoost's "
        "boosters only)"
    ),
    no_dask=(
        "scikit-learn's forest has no distributed fit (the dask engine trains XGBoost on the "
        "cluster and the baseline on a sample)"
    ),
    importances=_importances,
)
