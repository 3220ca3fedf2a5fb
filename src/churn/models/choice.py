"""Which fast scorer and which explainer serve a fitted model: its kind's, from the table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from churn.models.table import kind_of, undeclared

# The scoring implementations are imported when first asked for: reading the table (params
# validation, the training fingerprint) must not import scikit-learn.
if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from churn.champion import ServingCheck
    from churn.config.params import DatasetConfig
    from churn.scoring.explain import Explainer
    from churn.scoring.reference import Scorer


def _pipeline_of(scorer: Any) -> Any:
    """The fitted pipeline behind a scorer (or the pipeline itself); None for the rules."""
    from churn.scoring.fallback_rules import FallbackRules

    if isinstance(scorer, FallbackRules):
        return None
    return getattr(scorer, "pipeline", scorer)


def why_not_compiled(model: Any) -> str:
    """Why ``model`` has no compiled replay (empty when its kind declares one)."""
    declared = kind_of(model)
    if declared is None:
        return f"{undeclared(model)}: the model's own predict_proba scores"
    if declared.raw_score is None:
        return (
            f"{declared.name} declares no compiled replay ({declared.no_raw_score}): the "
            "model's own predict_proba scores"
        )
    return ""


def serving_scorer(pipeline: Pipeline, dataset: DatasetConfig) -> Scorer:
    """What serves ``pipeline``: the numpy replay with its kind's compiled scorer (``compiled``),
    or with the model's own ``predict_proba`` when its kind declares none (``predict_proba``,
    threads bounded), else the pipeline itself (``pipeline``, with its ``reason``)."""
    from churn.scoring.check import compile_pipeline

    declared = kind_of(pipeline)
    raw = declared.raw_score if declared is not None else None
    scorer = compile_pipeline(pipeline, dataset, raw)
    if scorer.kind == "predict_proba":
        scorer.reason = why_not_compiled(pipeline)  # type: ignore[attr-defined]
    return scorer


def check_serving(
    pipeline: Pipeline, dataset: DatasetConfig, test_frame: pd.DataFrame
) -> ServingCheck:
    """``churn.scoring.check_serving`` with the model kind's compiled scorer (or none, said)."""
    from churn.scoring.check import check_serving as check

    declared = kind_of(pipeline)
    raw = declared.raw_score if declared is not None else None
    return check(pipeline, dataset, test_frame, raw, why_not_compiled(pipeline))


def explainer_for(scorer: Any, dataset: DatasetConfig) -> Explainer:
    """The explainer of what serves (a pipeline, a serving scorer, the fallback rules), by the
    model kind's declared explainer.

    Raises:
        churn.scoring.explain.NotExplainable: saying why there are no reasons (the kind
            declares none and says why, or no module declares the model's type).
    """
    from churn.scoring.explain import explainer_for as _explainer_for

    pipeline = _pipeline_of(scorer)
    if pipeline is None:
        return _explainer_for(scorer, dataset)
    declared = kind_of(pipeline)
    if declared is None:
        return _explainer_for(scorer, dataset, None, undeclared(pipeline))
    return _explainer_for(scorer, dataset, declared.explainer, declared.no_explainer)


def explanation_figures(
    model: Pipeline, frame: pd.DataFrame, dataset: DatasetConfig, max_rows: int | None = None
) -> dict[str, Any]:
    """The training run's explanations summary (``churn.scoring.explain.summary_figures``) by
    the model kind's explainer; empty, saying why at INFO, when it has none."""
    from churn.scoring.explain import SUMMARY_ROWS, summary_figures

    rows = SUMMARY_ROWS if max_rows is None else max_rows

    declared = kind_of(model)
    if declared is None:
        return summary_figures(model, frame, dataset, rows, no_explainer=undeclared(model))
    return summary_figures(
        model,
        frame,
        dataset,
        rows,
        contributions=declared.explainer,
        no_explainer=declared.no_explainer,
    )
