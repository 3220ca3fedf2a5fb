"""Business value: the net value of contacting the customers a model flags, over thresholds,
against contacting nobody and contacting everyone; the value curve and the lift/gain chart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from churn.config.params import Params

PER = 1000  # figures are per this many customers


@dataclass(frozen=True)
class Economics:
    """What one contact is worth: ``gain`` when the customer would have churned, ``-cost`` when
    they would have stayed. Net value is measured against contacting nobody (worth 0)."""

    gain: float
    cost: float
    source: str  # which params.yaml keys the figures come from

    @property
    def break_even(self) -> float:
        """The churn probability above which one contact is worth making (if calibrated)."""
        return self.cost / (self.gain + self.cost)


def economics(params: Params) -> Economics:
    """From ``value`` when set, else from ``train.costs``.

    With ``train.costs`` alone, a contacted churner saves the cost of a missed churner
    (``false_negative``) and a needless offer costs ``false_positive``: the net value is the cost
    saved against contacting nobody, so its best threshold is the cost-optimal one. With
    ``value.retained_value`` and ``value.offer_acceptance``, a contacted churner is worth
    ``offer_acceptance x retained_value`` minus the offer (``train.costs.false_positive``).
    """
    offer = params.train.costs.false_positive
    v = params.value
    if v.retained_value is not None and v.offer_acceptance is not None:
        return Economics(
            gain=v.offer_acceptance * v.retained_value - offer,
            cost=offer,
            source=(
                f"value.offer_acceptance {v.offer_acceptance:g} x value.retained_value "
                f"{v.retained_value:g} per churner reached, less the offer "
                f"(train.costs.false_positive {offer:g}) per contact"
            ),
        )
    return Economics(
        gain=params.train.costs.false_negative,
        cost=offer,
        source=(
            f"train.costs: a churner reached saves {params.train.costs.false_negative:g} "
            f"(false_negative), a needless offer costs {offer:g} (false_positive)"
        ),
    )


def value_curve(
    y_true: np.ndarray, proba: np.ndarray, econ: Economics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Net value per customer for every threshold that separates distinct scores.

    Returns:
        ``(thresholds, net value per customer, share contacted)``, highest threshold first; the
        first point (threshold above every score) contacts nobody, the last contacts everyone.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    tp = np.concatenate([[0], np.cumsum(y_sorted)])
    fp = np.concatenate([[0], np.cumsum(1 - y_sorted)])
    cut = np.concatenate([[True], p_sorted[:-1] != p_sorted[1:], [True]])
    k = np.flatnonzero(cut)
    thresholds = np.where(k == 0, np.inf, p_sorted[np.maximum(k - 1, 0)])
    n = max(len(y), 1)
    net = (econ.gain * tp[k] - econ.cost * fp[k]) / n
    return thresholds, net, k / n


def best_threshold(y_true: np.ndarray, proba: np.ndarray, econ: Economics) -> float:
    """The threshold where the value curve peaks (the first, highest, on a tie)."""
    thresholds, net, _ = value_curve(y_true, proba, econ)
    return float(thresholds[int(np.argmax(net))])


def value_summary(
    y_true: np.ndarray, proba: np.ndarray, threshold: float, econ: Economics
) -> dict[str, float]:
    """Per ``PER`` customers: contacted, churners reached and net value for the model at
    ``threshold``, for contacting everyone and for contacting nobody."""
    y = np.asarray(y_true).astype(int)
    flagged = np.asarray(proba) >= threshold
    scale = PER / max(len(y), 1)
    tp, fp = int(np.sum(flagged & (y == 1))), int(np.sum(flagged & (y == 0)))
    pos, neg = int(y.sum()), int((1 - y).sum())
    return {
        "value_model_contacted": (tp + fp) * scale,
        "value_model_reached": tp * scale,
        "value_model_net": (econ.gain * tp - econ.cost * fp) * scale,
        "value_everyone_contacted": float(len(y)) * scale,
        "value_everyone_reached": pos * scale,
        "value_everyone_net": (econ.gain * pos - econ.cost * neg) * scale,
        "value_nobody_net": 0.0,
        "value_churners": pos * scale,
    }


def value_markdown(summary: dict[str, float], threshold: float, econ: Economics) -> str:
    """The model card's table: the model at its threshold against the two simple strategies."""
    s = summary
    return (
        f"Net value per {PER:,} customers of the test split, against contacting nobody "
        f"({econ.source}; {s['value_churners']:.0f} of them churn):\n\n"
        "| strategy | contacted | churners reached | net value |\n|---|---|---|---|\n"
        f"| the model at threshold {threshold:.3f} | {s['value_model_contacted']:.0f} | "
        f"{s['value_model_reached']:.0f} | {s['value_model_net']:,.0f} |\n"
        f"| contact everyone | {s['value_everyone_contacted']:.0f} | "
        f"{s['value_everyone_reached']:.0f} | {s['value_everyone_net']:,.0f} |\n"
        "| contact nobody | 0 | 0 | 0 |\n"
    )


def value_plots(
    y_true: np.ndarray, proba: np.ndarray, threshold: float, econ: Economics
) -> dict[str, Figure]:
    """``value_curve.png`` (net value per customer over thresholds, the chosen one marked) and
    ``lift_gain.png`` (cumulative gain and lift by decile), by file name."""
    figs: dict[str, Figure] = {}
    thresholds, net, share = value_curve(y_true, proba, econ)
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(share, net * PER, label="the model")
    chosen = int(np.searchsorted(-thresholds, -threshold, side="right")) - 1
    ax.axvline(share[chosen], color="k", ls=":", lw=1, label=f"threshold {threshold:.3f}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.scatter([1.0], [net[-1] * PER], marker="s", label="contact everyone", zorder=3)
    ax.set_xlabel("share of customers contacted (highest scores first)")
    ax.set_ylabel(f"net value per {PER:,} customers")
    ax.set_title("Value curve (test)")
    ax.legend(fontsize=8)
    figs["value_curve.png"] = fig

    y = np.asarray(y_true).astype(int)
    order = np.argsort(-np.asarray(proba), kind="stable")
    gained = np.concatenate([[0], np.cumsum(y[order])]) / max(int(y.sum()), 1)
    x = np.arange(len(y) + 1) / max(len(y), 1)
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    left.plot(x, gained, label="the model")
    left.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    left.set_xlabel("share of customers contacted")
    left.set_ylabel("share of churners reached")
    left.set_title("Cumulative gain (test)")
    left.legend(fontsize=8)
    deciles = np.array_split(y[order], 10)
    rate = y.mean() if len(y) else 0.0
    lift = [d.mean() / rate if len(d) and rate else 0.0 for d in deciles]
    right.bar(np.arange(1, 11), lift)
    right.axhline(1, color="k", ls=":", lw=1)
    right.set_xlabel("decile (highest scores first)")
    right.set_ylabel("lift (churn rate / overall rate)")
    right.set_title("Lift by decile (test)")
    fig.tight_layout()
    figs["lift_gain.png"] = fig
    return figs
