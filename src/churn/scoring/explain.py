"""Reasons for a score: each customer field's contribution to one prediction, and their summary.

A prediction is explained in **log-odds**, additively: ``base + sum(contributions) == margin``
for every row, where ``margin`` is the log-odds the model computes *before* calibration
(calibration maps it to the served probability, monotonically, so a positive contribution always
pushes the churn probability up). How the contributions are computed depends on the model:

* **XGBoost** (``treeshap``): the booster's exact TreeSHAP, XGBoost's own ``pred_contribs=True``
  (a numpy copy of it earned 1.18-1.48x on a one-row explained request and was removed under
  the 1.25x rule, docs/architecture.md), whose contributions and bias add up to the booster's
  margin by construction;
* **logistic regression** (``linear``): coefficient x (encoded value - its mean). A scaled
  column's training mean is 0; a one-hot column's "mean" is ``1 / levels`` (the encoder does not
  keep the levels' frequencies), so a categorical field contributes its level's coefficient
  minus the average of its levels' coefficients;
* **the fallback rules** (``rules``): the points table is additive already: each kept column
  contributes ``scale x points`` of the customer's value, the base is the rules' intercept.

Which model has which explainer is declared by its kind (``churn.models``: ``explainer``, or
``no_explainer`` saying why none); this module holds the implementations
(``treeshap_contributions``, ``linear_contributions``). A model without one (a random forest, a
forker's model) and the prior-rate rule raise :class:`NotExplainable` with the reason; serving
says so in the response instead of failing.

Contributions of encoded columns are added up per **reason**: a one-hot block and a scaled
numeric column become the customer's own field (``Contract = Month-to-month``, summed over every
level column of ``Contract``); a derived feature (any kind of ``params.yaml``'s ``features``
block) stays a reason of its own that names the fields it is computed from (the columns its kind
reads, ``churn.features.kinds.Derived.reads``) and their values. The pipeline's steps are found by
name; one explanations do not know, or an encoded column that is neither a field nor a derived
feature, raises :class:`NotExplainable` naming it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from churn.config.params import DatasetConfig
from churn.features.kinds import UnknownKind
from churn.features.pipeline import UnknownStep, feature_steps, model_steps
from churn.scoring.columns import Columns, Values, numeric_column
from churn.scoring.fallback_rules import FallbackRules
from churn.scoring.reference import PipelineScorer
from churn.scoring.replay import CompiledScorer

log = logging.getLogger(__name__)

UNIT = "log-odds"
DEFAULT_TOP_K = 5
MAX_TOP_K = 50
# What the unit means, for the response's documentation and the batch output's help.
UNIT_NOTE = (
    "log-odds of the model's margin before calibration: base + the sum of every field's "
    "contribution = margin; a positive contribution raises the churn probability"
)

Method = Literal["treeshap", "linear", "rules"]
# ``X -> (contributions per encoded column, base)`` of one fitted model, in log-odds.
Contributions = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class ModelContributions(Protocol):
    """A model kind's explainer (``churn.models.Explains``): its method, and how to build the
    contributions of one fitted model from it and the encoded columns' training centres.
    ``build`` returns None when this fitted model is not one it explains (then
    ``NotExplainable``)."""

    @property
    def method(self) -> Method: ...

    @property
    def build(self) -> Callable[[Any, np.ndarray], Contributions | None]: ...


class NotExplainable(Exception):
    """The served model has no explainer; the message says why (shown to the client)."""


@dataclass(frozen=True)
class Reason:
    """One thing a contribution is credited to: a customer field, or a derived feature.

    Attributes:
        name: the field's name (``Contract``), or the derived feature's (``n_services``).
        sources: for a derived feature, the fields it is computed from; empty for a field.
    """

    name: str
    sources: tuple[str, ...] = ()


@dataclass
class Explanations:
    """The contributions of ``n`` rows to their scores: ``base + contributions.sum(1) == margin``.

    Attributes:
        method: ``treeshap``, ``linear`` or ``rules``.
        reasons: what each column of ``contributions`` is credited to.
        contributions: ``(n, len(reasons))`` log-odds.
        base: ``(n,)`` the log-odds before any field (the model's bias or intercept).
        values: per reason, the ``n`` values shown beside it (the customer's value of the field;
            for a derived feature its computed value).
        columns: the raw request columns (a derived feature's sources are shown from them).
    """

    method: Method
    reasons: list[Reason]
    contributions: np.ndarray
    base: np.ndarray
    values: list[Values]
    columns: Columns

    @property
    def margin(self) -> np.ndarray:
        """The model's log-odds of each row (before calibration)."""
        return np.asarray(self.base + self.contributions.sum(axis=1), dtype=np.float64)

    def record(self, i: int, top_k: int) -> dict[str, Any]:
        """Row ``i`` as the API returns it: the ``top_k`` reasons up and down, base and margin."""
        row = self.contributions[i]
        order = np.argsort(-row, kind="stable")
        up = [int(j) for j in order[:top_k] if row[j] > 0]
        down = [int(j) for j in order[::-1][:top_k] if row[j] < 0]
        return {
            "method": self.method,
            "unit": UNIT,
            "base": float(self.base[i]),
            "margin": float(self.base[i] + row.sum()),
            "up": [self._reason(i, j) for j in up],
            "down": [self._reason(i, j) for j in down],
        }

    def _reason(self, i: int, j: int) -> dict[str, Any]:
        reason = self.reasons[j]
        value = _plain(self.values[j][i])
        contribution = float(self.contributions[i, j])
        out: dict[str, Any] = {"field": reason.name, "value": value, "contribution": contribution}
        text = f"{reason.name} = {_shown(value)}"
        if reason.sources:
            sources = {c: _plain(self.columns[c][i]) for c in reason.sources}
            out["derived_from"] = sources
            text += " (" + ", ".join(f"{c} = {_shown(v)}" for c, v in sources.items()) + ")"
        out["text"] = f"{text}: {contribution:+.2f}"
        return out

    def texts(self, top_k: int) -> dict[str, list[str]]:
        """The batch output's reason columns: ``reason_up_1..k`` and ``reason_down_1..k``, each
        ``"Contract = Month-to-month: +0.21"`` (empty when a row has fewer reasons that way)."""
        n = len(self.base)
        out: dict[str, list[str]] = {}
        for way in ("up", "down"):
            for r in range(top_k):
                out[f"reason_{way}_{r + 1}"] = [""] * n
        for i in range(n):
            record = self.record(i, top_k)
            for way in ("up", "down"):
                for r, reason in enumerate(record[way]):
                    out[f"reason_{way}_{r + 1}"][i] = reason["text"]
        return out

    def mean_abs(self) -> dict[str, float]:
        """Mean |contribution| per reason over the rows, largest first (the global summary)."""
        means = np.abs(self.contributions).mean(axis=0)
        ranked = sorted(zip(self.reasons, means, strict=True), key=lambda x: -x[1])
        return {r.name: float(m) for r, m in ranked}


class Explainer(Protocol):
    """Turns raw feature columns into :class:`Explanations`."""

    method: Method

    def explain(self, columns: Columns, n: int, X: np.ndarray | None = None) -> Explanations:
        """The explanations of ``n`` rows (``X``: their encoded matrix, when already at hand)."""
        ...


def explainer_for(
    scorer: Any,
    dataset: DatasetConfig,
    contributions: ModelContributions | None = None,
    no_explainer: str = "",
) -> Explainer:
    """The explainer of what a service or batch run scores with: a fitted pipeline, a serving
    scorer (compiled replay or plain pipeline) or the fallback rules.

    ``contributions`` is the model kind's explainer (``churn.models.explainer_for`` looks it
    up); without it a model is not explained, and ``no_explainer`` says why.

    Raises:
        NotExplainable: the model kind has no explainer (the message names it).
    """
    if isinstance(scorer, FallbackRules):
        if scorer.kind != "rules" or not scorer.columns:
            raise NotExplainable(
                "the prior-rate rule scores every customer the base churn rate: no field "
                "moves the score, so there is nothing to explain"
            )
        return RulesExplainer(scorer)
    why = no_explainer or "its model kind declares no explainer"
    if isinstance(scorer, CompiledScorer):
        return PipelineExplainer(scorer.pipeline, dataset, scorer, contributions, why)
    if isinstance(scorer, PipelineScorer):
        return PipelineExplainer(scorer.pipeline, dataset, None, contributions, why)
    if hasattr(scorer, "steps"):
        return PipelineExplainer(scorer, dataset, None, contributions, why)
    raise NotExplainable(f"explanations are not available for a {type(scorer).__name__} scorer")


class RulesExplainer:
    """The fallback rules' points table: ``scale x points`` per kept column."""

    method: Method = "rules"

    def __init__(self, rules: FallbackRules) -> None:
        self.rules = rules
        self.reasons = [Reason(c.column) for c in rules.columns]

    def explain(self, columns: Columns, n: int, X: np.ndarray | None = None) -> Explanations:
        contributions = np.empty((n, len(self.reasons)), dtype=np.float64)
        for j, rule in enumerate(self.rules.columns):
            contributions[:, j] = self.rules.scale * rule.points(columns[rule.column], n)
        return Explanations(
            "rules",
            self.reasons,
            contributions,
            np.full(n, self.rules.intercept, dtype=np.float64),
            [columns[r.name] for r in self.reasons],
            columns,
        )


class PipelineExplainer:
    """A fitted ``Pipeline(features, model)``: the model's contributions per encoded column,
    added up per customer field (see the module's docstring)."""

    def __init__(
        self,
        pipeline: Any,
        dataset: DatasetConfig,
        compiled: CompiledScorer | None = None,
        contributions: ModelContributions | None = None,
        no_explainer: str = "its model kind declares no explainer",
    ) -> None:
        self.dataset = dataset
        self.compiled = compiled
        try:
            self._features, model = model_steps(pipeline)
            steps = feature_steps(self._features)
            derived = {d.name: d.reads for d in steps.derive.plan()}
        except (UnknownStep, UnknownKind) as e:
            raise NotExplainable(f"explanations cannot read this model: {e}") from e
        fields = set(dataset.feature_columns)
        read = [c for _, t, cols in steps.encode.transformers_ if t != "drop" for c in cols]
        unknown = [c for c in read if c not in fields | set(derived)]
        if unknown:
            raise NotExplainable(
                f"the encoder reads {unknown}, neither a field of the dataset block nor a derived "
                "feature of params.yaml's features block: explanations cannot map it back"
            )
        self.reasons, group, self._descale, self._centre = _layout(steps.encode, derived)
        self._group = group  # (encoded columns, reasons) 0/1
        self._contribs, self.method = _model_contributions(
            model, self._centre, contributions, no_explainer
        )

    def encode(self, columns: Columns, n: int) -> np.ndarray:
        """The encoded matrix the model sees (the compiled replay's, else the pipeline's)."""
        if self.compiled is not None:
            return self.compiled.encode(columns, n)
        frame = _frame(columns, self.dataset)
        return np.asarray(self._features.transform(frame), dtype=np.float32)

    def explain(self, columns: Columns, n: int, X: np.ndarray | None = None) -> Explanations:
        if X is None:
            X = self.encode(columns, n)
        encoded, base = self._contribs(X)
        values: list[Values] = []
        for reason in self.reasons:
            if reason.sources:  # a derived feature: its value, from the scaled column
                j, mean, scale = self._descale[reason.name]
                values.append(np.round(X[:, j].astype(np.float64) * scale + mean, 4))
            else:
                values.append(columns[reason.name])
        return Explanations(self.method, self.reasons, encoded @ self._group, base, values, columns)


def _layout(
    encode: Any, derived: dict[str, tuple[str, ...]]
) -> tuple[list[Reason], np.ndarray, dict[str, tuple[int, float, float]], np.ndarray]:
    """From the fitted encoder: the reasons, the encoded-column -> reason matrix, where each
    derived feature sits (column, mean, scale) and each encoded column's training centre."""
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    reasons: list[Reason] = []
    index: dict[str, int] = {}
    owner: list[int] = []
    centre: list[float] = []
    descale: dict[str, tuple[int, float, float]] = {}

    def reason_of(name: str) -> int:
        if name not in index:
            index[name] = len(reasons)
            reasons.append(Reason(name, derived.get(name, ())))
        return index[name]

    for _, transformer, cols in encode.transformers_:
        if transformer == "drop" or len(cols) == 0:
            continue
        if isinstance(transformer, StandardScaler):
            for k, c in enumerate(cols):
                mean = float(transformer.mean_[k]) if transformer.with_mean else 0.0
                scale = float(transformer.scale_[k]) if transformer.with_std else 1.0
                if c in derived:
                    descale[c] = (len(owner), mean, scale)
                owner.append(reason_of(c))
                # the scaled column's training mean (0 unless the scaler keeps the mean)
                centre.append(0.0 if transformer.with_mean else float(transformer.mean_[k]) / scale)
        elif isinstance(transformer, OneHotEncoder) and transformer.drop is None:
            for c, cats in zip(cols, transformer.categories_, strict=True):
                for _ in cats:
                    owner.append(reason_of(c))
                    centre.append(1.0 / len(cats))
        else:
            raise NotExplainable(
                f"explanations do not know the encoder {type(transformer).__name__}"
            )
    group = np.zeros((len(owner), len(reasons)), dtype=np.float64)
    group[np.arange(len(owner)), owner] = 1.0
    return reasons, group, descale, np.asarray(centre, dtype=np.float64)


def _model_contributions(
    model: Any, centre: np.ndarray, declared: ModelContributions | None, no_explainer: str
) -> tuple[Contributions, Method]:
    """``X -> (contributions per encoded column, base)`` for the final estimator, and the
    method. A ``CalibratedClassifierCV`` is explained through the model it calibrates."""
    from sklearn.calibration import CalibratedClassifierCV

    inners = [model]
    if isinstance(model, CalibratedClassifierCV):
        inners = [
            getattr(cc.estimator, "estimator", cc.estimator) for cc in model.calibrated_classifiers_
        ]
    distinct = list({id(m): m for m in inners}.values())
    kinds = " / ".join(sorted({type(m).__name__ for m in distinct}))
    if declared is None:
        raise NotExplainable(f"explanations are not available for {kinds} models: {no_explainer}")
    built = [declared.build(m, centre) for m in distinct]
    parts = [p for p in built if p is not None]
    if len(parts) != len(built):
        raise NotExplainable(
            f"explanations are not available for this {kinds} model: its {declared.method} "
            "explainer does not apply to it"
        )
    method = declared.method
    if len(parts) == 1:
        return parts[0], method

    def mean(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Several differently fitted models (calibration without a frozen estimator): the mean
        # of their margins, which is still additive.
        results = [p(X) for p in parts]
        return (
            np.mean([c for c, _ in results], axis=0),
            np.mean([b for _, b in results], axis=0),
        )

    return mean, method


def treeshap_contributions(model: Any, centre: np.ndarray) -> Contributions:
    """TreeSHAP of a fitted XGBClassifier: XGBoost's own ``pred_contribs`` (one thread)."""
    import xgboost as xgb

    booster = model.get_booster()
    try:
        iterations = (0, int(model.best_iteration) + 1)
    except AttributeError:
        iterations = (0, 0)

    def contributions(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = booster.predict(
            xgb.DMatrix(X, nthread=1), pred_contribs=True, iteration_range=iterations
        )
        out = np.asarray(out, dtype=np.float64)
        return out[:, :-1], out[:, -1]

    return contributions


def linear_contributions(model: Any, centre: np.ndarray) -> Contributions | None:
    """A binary linear model: coefficient x (encoded value - its training centre); None for a
    multi-class one."""
    if getattr(model, "coef_", np.zeros((2, 0))).shape[0] != 1:
        return None
    coef = np.asarray(model.coef_[0], dtype=np.float64)
    base = float(model.intercept_[0]) + float(coef @ centre)

    def contributions(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(X, dtype=np.float64) - centre) * coef, np.full(len(X), base)

    return contributions


# The summary's rows at most: mean |contribution| per field is settled long before this, and
# exact TreeSHAP costs about 0.6 ms a row (a 2M-row test split would take 20 minutes).
SUMMARY_ROWS = 5_000


def summary_figures(
    model: Any,
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    max_rows: int = SUMMARY_ROWS,
    *,
    contributions: ModelContributions | None = None,
    no_explainer: str = "",
) -> dict[str, Any]:
    """The training run's global summary: mean |contribution| per field on ``frame`` (the test
    split; a seeded sample of ``max_rows`` when it is larger), as
    ``{"explanations_summary.png": figure}``; empty (with an INFO line saying why) when the
    model's kind has no explainer (``contributions``; ``no_explainer`` says why)."""
    try:
        explainer = explainer_for(model, dataset, contributions, no_explainer)
    except NotExplainable as exc:
        log.info("no explanation summary for this model: %s", exc)
        return {}
    rows = f"the test split ({len(frame):,} rows)"
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=0)
        rows = f"a seeded sample of {max_rows:,} test rows"
    columns = {c: frame[c].to_numpy() for c in dataset.feature_columns}
    means = explainer.explain(columns, len(frame)).mean_abs()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.3 * len(means) + 1.2))
    ax = fig.subplots()
    names = list(means)[::-1]
    ax.barh(names, [means[n] for n in names], color="#4c72b0")
    ax.set_xlabel(f"mean |contribution| ({UNIT}, {explainer.method}) on {rows}")
    ax.set_title("What moves the score: each field's average contribution")
    fig.tight_layout()
    return {"explanations_summary.png": fig}


def _frame(columns: Columns, dataset: DatasetConfig) -> pd.DataFrame:
    data: dict[str, Any] = {c: numeric_column(columns[c]) for c in dataset.numeric}
    for c in dataset.categorical:
        data[c] = np.asarray(columns[c], dtype=object)
    return pd.DataFrame(data)


def _plain(value: Any) -> Any:
    """A JSON-ready value (numpy scalars become Python ones, NaN becomes None)."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
