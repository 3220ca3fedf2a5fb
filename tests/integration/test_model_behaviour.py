"""Behavioural tests of the champion: invariance, direction, minimum quality."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from churn.config.identity import identity
from churn.config.settings import get_settings
from churn.release import tracking

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(trained_project):
    project, _ = trained_project
    tracking.connect(get_settings(project_dir=project))
    model = mlflow.sklearn.load_model(f"models:/{identity().model_name}@champion")
    return model, pd.read_parquet(project / "data/splits/test.parquet")


def test_customer_id_does_not_change_a_score(champion):
    model, test = champion
    renamed = test.assign(customerID=[f"{i:04d}-ZZZZZ" for i in range(len(test))])
    np.testing.assert_array_equal(model.predict_proba(test), model.predict_proba(renamed))


def test_month_to_month_never_scores_lower_than_two_year(champion):
    model, test = champion
    mtm = model.predict_proba(test.assign(Contract="Month-to-month"))[:, 1]
    two = model.predict_proba(test.assign(Contract="Two year"))[:, 1]
    assert (mtm >= two).all()
    assert (mtm - two).mean() > 0.05, "contract should matter, not just be tied"


def test_minimum_quality(trained_project):
    _, summary = trained_project
    assert summary.test_roc_auc >= 0.75
    assert summary.test_roc_auc > summary.baseline_test_roc_auc
