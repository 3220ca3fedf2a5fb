"""What one model candidate declares: the row of the candidates table (``churn.models``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

from churn.config.params import SearchParams

if TYPE_CHECKING:
    from churn.scoring.explain import Contributions, Method
    from churn.scoring.replay import RawScore

# How a bound of the search space is sampled: an integer, a log-uniform float, a log-uniform
# integer, or a uniform float.
Scale = Literal["int", "log", "logint", "lin"]
SearchSpace = Mapping[str, tuple[float, float, Scale]]
# How the dask engine trains a candidate: on the cluster with ``xgboost.dask`` (an XGBoost
# booster), or in one process on the engine's seeded sample (``engine.sample_rows`` rows).
DaskMethod = Literal["xgboost.dask", "sample"]
ENGINES = ("pandas", "dask")


@dataclass(frozen=True)
class FitContext:
    """What every fit gets besides the rows and its values.

    Attributes:
        seed: ``train.seed``.
        monotone: one sign per encoded column (``train.monotone``; all 0 when none).
        n_jobs: ``train.n_jobs``, the threads one fit may use.
    """

    seed: int
    monotone: tuple[int, ...]
    n_jobs: int


Fit = Callable[[np.ndarray, np.ndarray, dict[str, Any], FitContext], Any]


@dataclass(frozen=True)
class Explains:
    """A candidate's explainer: its method (``treeshap``, ``linear``), and how to build one
    fitted model's ``X -> (contributions per encoded column, base)`` from the model and the
    encoded columns' training centres (``churn.scoring.explain`` holds the implementations);
    ``build`` returns None for a fitted model it does not apply to."""

    method: Method
    build: Callable[[Any, np.ndarray], Contributions | None]


def _all_trials(search: SearchParams) -> int:
    return search.n_trials


# eq=False: a declaration is compared (and hashed) by identity; its search space is a dict.
@dataclass(frozen=True, eq=False)
class ModelKind:
    """One candidate model: everything that varies by candidate, declared once.

    A module of ``churn.models.candidates`` exposes one as ``KIND``; the table finds it there.

    Attributes:
        name: the candidate's key in ``train.candidates`` (and the module's name).
        title: what tables, the model card and the run's child runs call it.
        estimator: the fitted estimator's type, ``module.QualName`` (how a registered model is
            recognised: the scorer, the explainer and the trusted types follow from it).
        params: the pydantic model of its block in ``params.yaml``; its defaults are the
            starting point when the block is absent.
        fit: ``(X, y, values, context) -> fitted estimator``; threads bounded by
            ``context.n_jobs`` (OpenMP-based estimators are also bounded by the trainer).
        param_prefix: how its chosen values are logged on the MLflow run (``<prefix>_<key>``).
        trusted_types: the types skops may load for it (MLflow saves scikit-learn models with
            skops, which refuses types nobody vouched for), inner types included.
        libraries: the distributions its fitted model depends on (the training fingerprint, the
            logged model's requirements); one that is not installed is left out.
        modules: what to import ahead of a command (the warm process's preload).
        block: its key under ``train`` in ``params.yaml`` (default: ``name``).
        search_space: the bounds of its seeded random search around the configured values on
            the validation split; empty: no search (the configured values).
        search_trials: how many search trials ``train.search`` gives it.
        search_seed: the search's seed offset on ``train.seed``.
        raw_score: its compiled replay (``churn.scoring.replay.RawScore``: one of the
            implementations there, imported when called so that reading the table stays
            cheap), or None: serving then scores with the model's own ``predict_proba`` and
            says so.
        no_raw_score: why it has no compiled replay (said in ``/ready``, the run's summary).
        explainer: its explainer (``Explains``), or None.
        no_explainer: why it has no explanations (said in the response instead of reasons).
        dask: how the dask engine trains it, or None.
        no_dask: why the dask engine does not train it (said when it refuses it).
        importances: ``(fitted estimator, encoded names) -> ({name: value}, what they
            measure)``; None: the estimator's ``feature_importances_`` when it has them.
    """

    name: str
    title: str
    estimator: str
    params: type[BaseModel]
    fit: Fit
    param_prefix: str
    trusted_types: tuple[str, ...]
    libraries: tuple[str, ...]
    modules: tuple[str, ...]
    block: str = ""
    search_space: SearchSpace = field(default_factory=dict)
    search_trials: Callable[[SearchParams], int] = _all_trials
    search_seed: int = 0
    raw_score: RawScore | None = None
    no_raw_score: str = ""
    explainer: Explains | None = None
    no_explainer: str = ""
    dask: DaskMethod | None = None
    no_dask: str = ""
    importances: Callable[[Any, list[str]], tuple[dict[str, float], str]] | None = None

    @property
    def key(self) -> str:
        """Its block's key under ``train``."""
        return self.block or self.name

    @property
    def engines(self) -> tuple[str, ...]:
        """The engines that train it."""
        return ("pandas", "dask") if self.dask else ("pandas",)

    def problems(self, module: str) -> list[str]:
        """What is wrong with this declaration (empty when nothing), for module ``module``."""
        found = []
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            found.append(f"name {self.name!r} is not a lower-case identifier")
        if self.name != module:
            found.append(f"name {self.name!r} is not its module's name {module!r}")
        if "." not in self.estimator:
            found.append(f"estimator {self.estimator!r} is not a 'module.QualName'")
        if self.estimator not in self.trusted_types:
            found.append(f"trusted_types does not list its estimator {self.estimator!r}")
        if not (isinstance(self.params, type) and issubclass(self.params, BaseModel)):
            found.append("params is not a pydantic model")
        else:
            unknown = set(self.search_space) - set(self.params.model_fields)
            if unknown:
                found.append(f"search_space names {sorted(unknown)}, not fields of its params")
        for attr in ("title", "param_prefix"):
            if not getattr(self, attr):
                found.append(f"{attr} is empty")
        if not callable(self.fit):
            found.append("fit is not callable")
        if self.raw_score is None and not self.no_raw_score:
            found.append("raw_score is None: say why in no_raw_score")
        if self.explainer is None and not self.no_explainer:
            found.append("explainer is None: say why in no_explainer")
        if self.dask is None and not self.no_dask:
            found.append("dask is None: say why in no_dask")
        for lo, hi, scale in self.search_space.values():
            if scale not in ("int", "log", "logint", "lin") or lo > hi:
                found.append(f"a search bound ({lo}, {hi}, {scale!r}) is not valid")
        return found
