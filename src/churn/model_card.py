"""The model card: a markdown summary of one model version, written from its recorded figures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churn.champion import ChampionInfo
from churn.params import Params


def render_model_card(
    *,
    name: str,
    record: ChampionInfo,
    metrics: Mapping[str, float],
    params: Params,
    row_counts: Mapping[str, int],
    xgboost_params: Mapping[str, Any],
) -> str:
    """Markdown for ``model_card.md``, logged with every model version.

    Everything in it comes from the run: the metrics on the held-out test split and the champion
    record (threshold, data version, commit). Nothing is typed by hand, so the card cannot
    drift from the model.
    """
    ds = params.dataset
    m = dict(metrics)

    def fig(key: str) -> str:
        return f"{m[key]:.4f}" if key in m else "n/a"

    rows = " / ".join(f"{k} {v}" for k, v in row_counts.items())
    hyper = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in xgboost_params.items()
    )
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
XGBoost ({hyper}) with {params.train.calibration} calibration on the validation split, behind a
scikit-learn feature pipeline (missing values, derived features, scaling, one-hot encoding).
Monotone constraints: {params.train.monotone or "none"}.

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

## Limitations
Trained on one snapshot of customers; its quality decays as customers and prices change, which the
monitoring job watches. Probabilities are calibrated on the validation split only. Trained at
{record.trained_at}.
"""
