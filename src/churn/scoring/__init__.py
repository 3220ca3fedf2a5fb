"""Scoring raw feature columns with a fitted pipeline: the fast numpy replay serving uses, checked.

Modules: ``columns`` (raw column helpers), ``reference`` (the ``Scorer`` interface and the
pipeline itself), ``replay`` (the compiled numpy replay), ``trees`` (XGBoost's trees in numpy),
``walk`` (one record's tree walk, numba-compiled), ``check`` (the replay or the pipeline, and
the training-time check; which model has which compiled score and explainer is declared in
``churn.models``), ``threshold`` (the cost-based decision threshold), ``fallback_rules`` (what
answers when no model can), and ``explain`` (the reasons for a score).
"""

from churn.scoring.check import TOLERANCE, check_serving, compile_pipeline, probe_columns
from churn.scoring.columns import (
    Columns,
    UnseenLevels,
    Values,
    level_codes,
    level_index,
    numeric_column,
)
from churn.scoring.reference import PipelineScorer, Scorer
from churn.scoring.replay import CompiledScorer, NotCompilable
from churn.scoring.trees import NotSupported, NumpyForest, NumpyTrees

__all__ = [
    "TOLERANCE",
    "Columns",
    "CompiledScorer",
    "NotCompilable",
    "NotSupported",
    "NumpyForest",
    "NumpyTrees",
    "PipelineScorer",
    "Scorer",
    "UnseenLevels",
    "Values",
    "check_serving",
    "compile_pipeline",
    "level_codes",
    "level_index",
    "numeric_column",
    "probe_columns",
]
