"""The model card: a markdown summary of one model version, written from its recorded figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from churn import models
from churn.champion import ChampionInfo
from churn.config.params import Params
from churn.training import comparison as compare
from churn.training.fairness import SegmentReport


def render_model_card(
    *,
    name: str,
    record: ChampionInfo,
    metrics: Mapping[str, float],
    params: Params,
    row_counts: Mapping[str, int],
    model_params: Mapping[str, Any],
    selected: str = "xgboost",
    comparison: pd.DataFrame | None = None,
    selection_metric: str = "valid_roc_auc",
    segments: SegmentReport | None = None,
    value_table: str = "",
) -> str:
    """Markdown for ``model_card.md``, logged with every model version.

    Everything in it comes from the run: the metrics on the held-out test split and the champion
    record (threshold, data version, commit), the candidates' comparison, the per-segment
    figures and the business value. Nothing is typed by hand, so the card cannot drift from the
    model.
    """
    ds = params.dataset
    m = dict(metrics)

    def fig(key: str) -> str:
        return f"{m[key]:.4f}" if key in m else "n/a"

    rows = " / ".join(f"{k} {v}" for k, v in row_counts.items())
    hyper = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in model_params.items()
    )
    why = (
        "\n\n## Why this model\n"
        + compare.why_this_model(
            comparison,
            selection_metric,
            params.train.select.tolerance,
            params.train.select.prefer,
        )
        + "\n\n"
        + compare.markdown(comparison)
        if comparison is not None and not comparison.empty
        else ""
    )
    if segments is not None and not segments.table.empty:
        gap = segments.max_recall_gap
        limit = params.fairness.max_recall_gap
        rule = (
            f"The gate refuses a model whose largest recall gap exceeds {limit:g} "
            "(`fairness.max_recall_gap`)."
            if limit is not None
            else "The gate does not act on these gaps (`fairness.max_recall_gap: null`)."
        )
        fair = (
            "\n## Fairness across segments\n"
            f"At threshold {record.decision_threshold:.3f} on the test split, per level of "
            f"{', '.join(f'`{c}`' for c in params.fairness.segments)}; gaps compare levels "
            f"with at least {segments.min_rows} rows. Largest recall gap: "
            f"{'n/a' if gap is None else f'{gap:.3f}'}"
            f"{f' ({segments.worst_column})' if segments.worst_column else ''}. {rule}\n\n"
            + segments.markdown()
        )
    else:
        fair = (
            "\n## Fairness across segments\nNot measured: no segment columns configured "
            "(`fairness.segments` in params.yaml).\n"
        )
    worth = f"\n## Business value\n{value_table}" if value_table else ""
    return f"""# Model card: {name}

## What it does
Estimates the probability that a customer churns
(label `{ds.label_column}` = `{ds.positive_label}`),
and flags customers whose probability is at least the decision threshold
**{record.decision_threshold:.3f}**, chosen on the validation split to minimise
{params.train.costs.false_negative:g} x missed churners + {params.train.costs.false_positive:g} x
needless retention offers.

Intended use: ranking customers for retention outreach. Not for decisions about individuals without
human review; not for pricing or credit.

## Model
{_sentence(models.title(selected))} ({hyper}) with {params.train.calibration} calibration
on the validation split, behind a scikit-learn feature pipeline (missing values, derived features,
scaling, one-hot encoding). Monotone constraints: {params.train.monotone or "none"}.{why}

## Data
- Data version `{record.data_version}` (hashes in `dvc.lock`; `dvc checkout` at commit
  `{record.git_commit}` restores it). Rows: {rows}.
- Features: {", ".join(ds.feature_columns)}.
- Never used as features: the id `{ds.id_column or "(none: rows keyed by content)"}`, the PII
  columns {ds.pii_columns} and the ignored columns {ds.ignore_columns}.

## Quality on the held-out test split
| metric | model | logistic-regression baseline |
|---|---|---|
| ROC AUC | {fig("test_roc_auc")} | {fig("baseline_test_roc_auc")} |
| PR AUC | {fig("test_pr_auc")} | {fig("baseline_test_pr_auc")} |
| Brier score | {fig("test_brier")} | {fig("baseline_test_brier")} |
| precision at threshold | {fig("test_precision")} | {fig("baseline_test_precision")} |
| recall at threshold | {fig("test_recall")} | {fig("baseline_test_recall")} |
| F1 at threshold | {fig("test_f1")} | {fig("baseline_test_f1")} |
{fair}{worth}
## Limitations
Trained on one snapshot of customers; its quality decays as customers and prices change, which the
monitoring job watches. Probabilities are calibrated on the validation split only. Trained at
{record.trained_at}.
"""


def _sentence(title: str) -> str:
    return title[:1].upper() + title[1:]
