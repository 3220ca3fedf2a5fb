"""The model candidates, one module each (``churn.models.candidates``), and the table every
reader consults: params validation, training, the dask engine, promotion, tracking, the serving
scorer, explanations, the training fingerprint and the warm preload.

A candidate declares (``ModelKind``) its title, parameters model and search space, how it is
fitted, how its parameters are logged, the types skops may load, its compiled scorer and its
explainer (or why none), and the engines that train it. A new model is one module in
``candidates/`` plus its ``params.yaml`` entry (docs/architecture.md, "where to change what").
"""

from churn.models.choice import (
    check_serving,
    explainer_for,
    explanation_figures,
    serving_scorer,
    why_not_compiled,
)
from churn.models.kind import FitContext, ModelKind
from churn.models.table import (
    DeclarationError,
    block,
    check_params,
    kind,
    kind_of,
    kinds,
    libraries,
    modules,
    refused_on,
    title,
    trusted_types,
    values,
)

__all__ = [
    "DeclarationError",
    "FitContext",
    "ModelKind",
    "block",
    "check_params",
    "check_serving",
    "explainer_for",
    "explanation_figures",
    "kind",
    "kind_of",
    "kinds",
    "libraries",
    "modules",
    "refused_on",
    "serving_scorer",
    "title",
    "trusted_types",
    "values",
    "why_not_compiled",
]
