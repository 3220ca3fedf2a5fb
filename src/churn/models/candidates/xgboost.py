"""XGBoost: gradient-boosted trees with a seeded search; compiled replay and exact TreeSHAP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from churn.models.kind import Explains, FitContext, ModelKind


class XGBoostParams(BaseModel):
    """``train.xgboost``: the starting point; the search explores around it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_estimators: int = Field(300, gt=0)
    max_depth: int = Field(4, gt=0)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.9, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)


def classifier(values: dict[str, Any], seed: int, n_jobs: int, monotone: Sequence[int]) -> Any:
    """The ``XGBClassifier`` both engines build (the dask engine loads its booster into it)."""
    from xgboost import XGBClassifier

    return XGBClassifier(
        **values,
        objective="binary:logistic",
        eval_metric="auc",
        tree_method="hist",
        random_state=seed,
        n_jobs=n_jobs,
        monotone_constraints=tuple(monotone) if any(monotone) else None,
    )


def fit(X: np.ndarray, y: np.ndarray, values: dict[str, Any], context: FitContext) -> Any:
    """One XGBoost fit with the given hyperparameters (``n_jobs`` threads)."""
    return classifier(values, context.seed, context.n_jobs, context.monotone).fit(X, y)


def importances(model: Any, names: list[str]) -> tuple[dict[str, float], str]:
    """Gain importances keyed by encoded feature name (features never split on are omitted)."""
    scores = model.get_booster().get_score(importance_type="gain")
    return {names[int(k[1:])]: float(v) for k, v in scores.items()}, "XGBoost gain"


def raw_score(inner: Any, *, sigmoid: bool) -> Any:
    """The compiled tree walk, else the booster (``churn.scoring.replay.xgboost_raw_score``)."""
    from churn.scoring.replay import xgboost_raw_score

    return xgboost_raw_score(inner, sigmoid=sigmoid)


def contributions(model: Any, centre: np.ndarray) -> Any:
    """Exact TreeSHAP (``churn.scoring.explain.treeshap_contributions``)."""
    from churn.scoring.explain import treeshap_contributions

    return treeshap_contributions(model, centre)


KIND = ModelKind(
    name="xgboost",
    title="XGBoost",
    estimator="xgboost.sklearn.XGBClassifier",
    params=XGBoostParams,
    fit=fit,
    param_prefix="xgb",
    trusted_types=("xgboost.sklearn.XGBClassifier", "xgboost.core.Booster"),
    # One of two distributions (``xgboost-cpu`` on Linux): whichever is installed is listed.
    libraries=("xgboost", "xgboost-cpu"),
    modules=("xgboost",),
    search_space={
        "n_estimators": (100, 600, "int"),
        "max_depth": (2, 6, "int"),
        "learning_rate": (0.01, 0.2, "log"),
        "subsample": (0.6, 1.0, "lin"),
        "colsample_bytree": (0.4, 1.0, "lin"),
        "min_child_weight": (0.5, 20.0, "log"),
        "reg_lambda": (0.1, 20.0, "log"),
    },
    raw_score=raw_score,
    explainer=Explains("treeshap", contributions),
    dask="xgboost.dask",
    importances=importances,
)
