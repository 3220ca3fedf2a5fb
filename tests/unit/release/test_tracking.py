"""What the logged model says it needs: every package it loads with, at the installed version."""

from __future__ import annotations

import importlib.metadata
import os

import xgboost

from churn.release.tracking import model_requirements


def test_requirements_pin_the_installed_xgboost_whichever_distribution_it_is() -> None:
    """``xgboost-cpu`` on Linux, ``xgboost`` elsewhere: a model without it would not load."""
    pinned = dict(r.split("==") for r in model_requirements())
    (dist,) = {"xgboost", "xgboost-cpu"} & pinned.keys()
    assert pinned[dist] == importlib.metadata.version(dist) == xgboost.__version__
    for package in ("scikit-learn", "pandas", "numpy", "skops"):
        assert pinned[package] == importlib.metadata.version(package)


def test_connecting_a_local_store_leaves_no_mlflow_uri_in_the_environment(tmp_path, monkeypatch):
    """A project-local store stays this process's: MLflow's setters export MLFLOW_TRACKING_URI
    and MLFLOW_REGISTRY_URI, which a child process (another project's `churn train`) would take
    as its own and register its models in this project's store."""
    import mlflow

    from churn.config.settings import get_settings
    from churn.release import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    settings = get_settings(project_dir=tmp_path)
    tracking.connect(settings)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    # ... while this process still tracks and registers in the project's store.
    assert mlflow.get_tracking_uri() == settings.tracking_uri
    assert mlflow.get_registry_uri() == settings.tracking_uri
