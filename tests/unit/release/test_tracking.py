"""What the logged model says it needs: every package it loads with, at the installed version."""

from __future__ import annotations

import importlib.metadata

import xgboost

from churn.release.tracking import model_requirements


def test_requirements_pin_the_installed_xgboost_whichever_distribution_it_is() -> None:
    """``xgboost-cpu`` on Linux, ``xgboost`` elsewhere: a model without it would not load."""
    pinned = dict(r.split("==") for r in model_requirements())
    (dist,) = {"xgboost", "xgboost-cpu"} & pinned.keys()
    assert pinned[dist] == importlib.metadata.version(dist) == xgboost.__version__
    for package in ("scikit-learn", "pandas", "numpy", "skops"):
        assert pinned[package] == importlib.metadata.version(package)
