"""The logistic-regression baseline: the candidate every selected model must beat at the gate."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from churn.models.kind import Explains, FitContext, ModelKind


class BaselineParams(BaseModel):
    """``train.baseline``: plain L2 logistic regression (no search)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    C: float = Field(1.0, gt=0)


def fit(X: np.ndarray, y: np.ndarray, values: dict[str, Any], context: FitContext) -> Any:
    """Plain L2 logistic regression on the encoded features (lbfgs: one thread)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**values, max_iter=2000).fit(X, y)


def raw_score(inner: Any, *, sigmoid: bool) -> Any:
    """Its linear score (``churn.scoring.replay.linear_raw_score``)."""
    from churn.scoring.replay import linear_raw_score

    return linear_raw_score(inner, sigmoid=sigmoid)


def contributions(model: Any, centre: np.ndarray) -> Any:
    """Coefficient x (encoded value - its centre) (``churn.scoring.explain``)."""
    from churn.scoring.explain import linear_contributions

    return linear_contributions(model, centre)


KIND = ModelKind(
    name="logistic",
    title="logistic regression",
    estimator="sklearn.linear_model._logistic.LogisticRegression",
    params=BaselineParams,
    block="baseline",
    fit=fit,
    param_prefix="logreg",
    trusted_types=("sklearn.linear_model._logistic.LogisticRegression",),
    libraries=("scikit-learn",),
    modules=("sklearn.linear_model",),
    raw_score=raw_score,
    explainer=Explains("linear", contributions),
    # Fitted in one process on the engine's seeded sample: a linear model on 200,000 rows is as
    # good as on all of them, and it is only the gate's reference.
    dask="sample",
)
