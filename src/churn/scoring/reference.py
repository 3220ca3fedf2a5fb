"""The scorer interface, and the reference scorer: the fitted scikit-learn pipeline itself."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from churn.config.params import DatasetConfig
from churn.scoring.columns import Columns, numeric_column


class Scorer(Protocol):
    """Anything that turns raw feature columns into churn probabilities."""

    @property
    def kind(self) -> str:
        """What scores: ``compiled``, ``pipeline``, ``rules`` or ``prior-rate``."""
        ...

    def score(self, columns: Columns, n: int) -> np.ndarray:
        """Churn probability of each of the ``n`` rows, as float64."""
        ...


class PipelineScorer:
    """The registered scikit-learn pipeline, called as training calls it (a pandas frame).

    Always correct, and ~270x slower than the compiled replay on one row (pandas and
    ``ColumnTransformer`` overhead). ``reason`` says why it serves instead of the replay.
    """

    kind = "pipeline"

    def __init__(self, pipeline: Pipeline, dataset: DatasetConfig, reason: str = "") -> None:
        self.pipeline = pipeline
        self.dataset = dataset
        self.reason = reason

    def frame(self, columns: Columns) -> pd.DataFrame:
        data: dict[str, Any] = {c: numeric_column(columns[c]) for c in self.dataset.numeric}
        for c in self.dataset.categorical:
            data[c] = np.asarray(columns[c], dtype=object)
        return pd.DataFrame(data)

    def score(self, columns: Columns, n: int) -> np.ndarray:
        proba = self.pipeline.predict_proba(self.frame(columns))[:, 1]
        return np.asarray(proba, dtype=np.float64)
