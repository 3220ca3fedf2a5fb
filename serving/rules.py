"""Rule-based churn scores: the documented baseline served when no model can be loaded or run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from churn.params import DatasetConfig
from churn.scoring import Columns, level_codes, level_index, numeric_column

FALLBACK_VERSION = "fallback-rules"

# An additive log-odds score from the well-known drivers of telecom churn (month-to-month
# contracts, short tenure, fibre internet, electronic-check payment, no support services).
# Base rate ~27 %. A rule whose column is not in the dataset config is skipped, so the rules
# degrade to the base rate on another data set instead of failing.
BASE_LOG_ODDS = -1.0
LEVEL_RULES: dict[str, dict[str, float]] = {
    "Contract": {"Month-to-month": 0.9, "One year": -0.6, "Two year": -1.6},
    "InternetService": {"Fiber optic": 0.6, "No": -0.7},
    "PaymentMethod": {"Electronic check": 0.5},
    "OnlineSecurity": {"No": 0.3},
    "TechSupport": {"No": 0.3},
    "PaperlessBilling": {"Yes": 0.2},
    "SeniorCitizen": {"1": 0.2},
}
# log-odds per unit, and the value the unit is measured from; missing values add nothing.
NUMERIC_RULES: dict[str, tuple[float, float]] = {"tenure": (-0.035, 12.0)}


@dataclass
class RulesScorer:
    """The rules above, applied to the same raw columns as the model."""

    dataset: DatasetConfig
    kind: str = "rules"

    def score(self, columns: Columns, n: int) -> np.ndarray:
        logit = np.full(n, BASE_LOG_ODDS)
        for column, weights in LEVEL_RULES.items():
            levels = self.dataset.categorical.get(column)
            if levels is None:
                continue
            by_level = np.array([weights.get(str(level), 0.0) for level in levels] + [0.0])
            logit += by_level[level_codes(columns[column], level_index(levels), n)]
        for column, (slope, origin) in NUMERIC_RULES.items():
            if column in self.dataset.numeric:
                values = numeric_column(columns[column])
                logit += np.nan_to_num(slope * (values - origin))
        return np.asarray(expit(logit), dtype=np.float64)


def rules_threshold(false_negative_cost: float, false_positive_cost: float) -> float:
    """The Bayes decision threshold for the training costs: ``c_fp / (c_fp + c_fn)``."""
    return false_positive_cost / (false_positive_cost + false_negative_cost)
