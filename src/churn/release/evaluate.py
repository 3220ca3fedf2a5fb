"""A registered version measured again on a test split (``churn evaluate``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from churn.config.params import Params
from churn.config.settings import Settings
from churn.data.split import label_vector
from churn.release import registry, tracking
from churn.training import evaluation
from churn.training.train import score


def evaluate_registered(
    settings: Settings, params: Params, test: pd.DataFrame, alias: str = registry.CHAMPION
) -> dict[str, Any]:
    """Evaluate a registered version on ``test`` at its recorded decision threshold.

    Raises:
        LookupError: when no version carries ``alias`` (or it has no champion record).
    """
    import mlflow

    client = tracking.connect(settings)
    record = registry.aliased_record(client, settings.model_name, alias)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}@{alias}")
    metrics = evaluation.classification_metrics(
        label_vector(test, params.dataset).to_numpy(), score(model, test), record.decision_threshold
    )
    return {"version": record.version, "alias": alias, **metrics}
