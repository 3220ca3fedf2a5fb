"""Seeded synthetic customers shaped like the IBM Telco churn CSV, with optional drift for batches.

The generative story (which column depends on which, and how churn is decided) is written down for
users in ``docs/data-generator.md``; the numbers below are its single source of truth. Everything
is vectorised with numpy and depends only on the arguments: the same call gives the same frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

COLUMNS: tuple[str, ...] = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)
"""The 21 columns of the public IBM Telco churn CSV, in its order."""

TIMESTAMP_COLUMN = "timestamp"
"""Name of the extra column added when ``generate_customers`` is given a ``start``."""

CONTRACTS: tuple[str, ...] = ("Month-to-month", "One year", "Two year")
INTERNET_SERVICES: tuple[str, ...] = ("DSL", "Fiber optic", "No")
PAYMENT_METHODS: tuple[str, ...] = (
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
)
ADDONS: tuple[str, ...] = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)
"""The six internet add-ons; each is ``No internet service`` exactly when InternetService is No."""

_YES_NO: tuple[str, ...] = ("No", "Yes")
_ADDON_LEVELS: tuple[str, ...] = ("No", "Yes", "No internet service")

LEVELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "gender": ("Female", "Male"),
        "Partner": _YES_NO,
        "Dependents": _YES_NO,
        "PhoneService": _YES_NO,
        "MultipleLines": ("No", "Yes", "No phone service"),
        "InternetService": INTERNET_SERVICES,
        **dict.fromkeys(ADDONS, _ADDON_LEVELS),
        "Contract": CONTRACTS,
        "PaperlessBilling": _YES_NO,
        "PaymentMethod": PAYMENT_METHODS,
        "Churn": _YES_NO,
    }
)
"""Levels of every string categorical column (``SeniorCitizen`` is the int 0/1 quirk)."""

_NEW_CATEGORY_COLUMNS: frozenset[str] = frozenset(LEVELS) - {"Churn"}

# --- Calibration: measured on the real file (7,043 rows), rounded. See docs/data-generator.md. ---

# Contract mix, in CONTRACTS order.
_CONTRACT_MIX: tuple[float, float, float] = (0.55, 0.21, 0.24)
# P(SeniorCitizen = 1 | Contract) and P(Partner = Yes | Contract).
_SENIOR_BY_CONTRACT: tuple[float, ...] = (0.21, 0.13, 0.085)
_PARTNER_BY_CONTRACT: tuple[float, ...] = (0.355, 0.565, 0.705)
# P(Dependents = Yes | Contract, Partner): rows are contracts, columns Partner No / Yes.
_DEPENDENTS_BY_CONTRACT_PARTNER: tuple[tuple[float, float], ...] = (
    (0.083, 0.42),
    (0.13, 0.54),
    (0.14, 0.60),
)
_MALE_SHARE = 0.505
# tenure = ceil(72 * Beta(a, b)) by contract: short for month-to-month, piled up at 72 for two-year.
_MAX_TENURE = 72
_TENURE_BETA: tuple[tuple[float, float], ...] = ((0.52, 1.58), (1.45, 1.04), (1.26, 0.34))
# Share of brand-new customers (tenure 0, no bill yet) by contract; only annual contracts have any.
_NEW_CUSTOMER_SHARE: tuple[float, ...] = (0.0, 0.0035, 0.0035)
# P(InternetService | Contract, SeniorCitizen) in INTERNET_SERVICES order (DSL, Fiber optic, No).
_INTERNET_BY_CONTRACT_SENIOR: tuple[tuple[tuple[float, float, float], ...], ...] = (
    ((0.347, 0.486, 0.167), (0.197, 0.788, 0.015)),
    ((0.405, 0.324, 0.271), (0.263, 0.653, 0.084)),
    ((0.373, 0.231, 0.396), (0.345, 0.490, 0.165)),
)
# P(PhoneService = Yes | InternetService): every fiber or phone-only customer has a phone line.
_PHONE_BY_INTERNET: tuple[float, ...] = (0.72, 1.0, 1.0)
# MultipleLines logit = intercept + internet + contract + per_tenure * tenure / 72.
_LINES_INTERCEPT = -1.6
_LINES_BY_INTERNET: tuple[float, ...] = (0.0, 1.05, -0.85)
_LINES_BY_CONTRACT: tuple[float, ...] = (0.0, -0.5, -0.25)
_LINES_PER_TENURE = 2.8
# Add-on logit = intercept + fiber + contract + per_tenure * tenure / 72 + engagement (+ streaming).
# Columns: intercept, fiber, one year, two year, per tenure. Rows in ADDONS order.
_ADDON_LOGIT: tuple[tuple[float, float, float, float, float], ...] = (
    (-1.3, -0.95, 0.6, 1.15, 1.7),
    (-1.5, 0.0, 0.15, 0.2, 2.6),
    (-1.6, 0.2, 0.7, 1.25, 1.8),
    (-1.25, -0.8, 1.0, 2.0, 1.0),
    (-1.5, 0.95, 0.5, 0.9, 1.4),
    (-1.5, 0.9, 0.5, 0.9, 1.5),
)
_ENGAGEMENT_SD = 0.6  # shared by the six add-ons: engaged customers buy several
_STREAMING_SD = 1.0  # shared by StreamingTV and StreamingMovies only
# PaperlessBilling logit = internet + contract + senior.
_PAPERLESS_BY_INTERNET: tuple[float, ...] = (0.35, 1.3, -0.7)
_PAPERLESS_BY_CONTRACT: tuple[float, ...] = (0.0, -0.25, -0.4)
_PAPERLESS_SENIOR = 0.3
# P(PaymentMethod | Contract) in PAYMENT_METHODS order, then a senior shift on the log scale.
_PAYMENT_BY_CONTRACT: tuple[tuple[float, float, float, float], ...] = (
    (0.477, 0.230, 0.152, 0.141),
    (0.236, 0.229, 0.265, 0.270),
    (0.099, 0.225, 0.333, 0.343),
)
_PAYMENT_SENIOR_SHIFT: tuple[float, ...] = (0.1, -0.6, 0.0, 0.0)
# MonthlyCharges: list prices (the real file's charges are these sums to within about $1).
_PRICE_PHONE = 20.0
_PRICE_EXTRA_LINE = 5.0
_PRICE_BY_INTERNET: tuple[float, ...] = (25.0, 50.0, 0.0)
_PRICE_BY_ADDON: tuple[float, ...] = (5.0, 5.0, 5.0, 5.0, 10.0, 10.0)
_PRICE_NOISE_SD: tuple[float, ...] = (1.1, 1.1, 0.55)  # by internet service
_PRICE_NOISE_CAP = 4.5
# TotalCharges = tenure * MonthlyCharges * (1 + sd * sqrt(tenure - 1) / tenure * z), z ~ N(0, 1):
# each earlier month's bill differed from today's by about 20 %.
_PAST_BILL_SD = 0.2
_TOTAL_RATIO_BOUNDS = (0.6, 1.6)

# Churn: logit = intercept + sum of driver effects + N(0, _CHURN_NOISE_SD) unobserved reasons.
_CHURN_INTERCEPT = -0.45
_CHURN_BY_CONTRACT: tuple[float, ...] = (0.0, -0.75, -1.75)
_CHURN_PER_LOG_TENURE = -0.75  # times log(1 + tenure)
_CHURN_BY_INTERNET: tuple[float, ...] = (0.5, 0.6, 0.0)
_CHURN_BY_PAYMENT: tuple[float, ...] = (0.4, 0.0, -0.1, -0.1)
_CHURN_PAPERLESS = 0.35
_CHURN_SENIOR = 0.25
_CHURN_PARTNER = -0.1
_CHURN_DEPENDENTS = -0.3
_CHURN_ONLINE_SECURITY = -0.4
_CHURN_TECH_SUPPORT = -0.35
_CHURN_ONLINE_BACKUP = -0.15
_CHURN_PER_30_DOLLARS = 0.35  # times (MonthlyCharges - 65) / 30
_CHURN_NOISE_SD = 2.0
# Interactions, as retention teams see them; a linear model on one-hot columns cannot express them:
# fiber customers with neither online security nor tech support are the unhappiest,
# month-to-month customers are most fragile in their first six months,
# and month-to-month customers on big bills (> $90) shop around.
_CHURN_UNSUPPORTED_FIBER = 1.3
_CHURN_NEW_MONTH_TO_MONTH = 1.2
_CHURN_BIG_BILL_MONTH_TO_MONTH = 0.8


@dataclass(frozen=True)
class Drift:
    """A chosen shift for later batches (monitoring demos and tests).

    Drift changes the inputs; churn is still decided by the same story from the drifted inputs,
    so a drifted batch with labels is realistic (a price rise raises churn, and so on).

    Attributes:
        monthly_charges_factor: Multiplies MonthlyCharges, and TotalCharges consistently.
        contract_mix: Overrides the Contract probabilities, e.g.
            ``{"Month-to-month": 0.9, "One year": 0.05, "Two year": 0.05}``. Contracts left out
            get probability 0. Everything that depends on the contract (tenure, services,
            payment, churn) follows.
        new_category: Column -> unseen level, e.g. ``{"PaymentMethod": "Crypto wallet"}``.
        new_category_share: Share of rows that get the new level (in each listed column).
    """

    monthly_charges_factor: float = 1.0
    contract_mix: dict[str, float] | None = None
    new_category: dict[str, str] | None = None
    new_category_share: float = 0.2

    def __post_init__(self) -> None:
        """Reject impossible shifts at construction time."""
        _validate_drift(self)


def _validate_drift(drift: Drift) -> None:
    """Raise ``ValueError`` naming the first invalid field of ``drift``."""
    factor = drift.monthly_charges_factor
    if isinstance(factor, bool) or not isinstance(factor, Real) or not factor > 0:
        raise ValueError(f"monthly_charges_factor must be a positive number, got {factor!r}")
    if not math.isfinite(factor):
        raise ValueError(f"monthly_charges_factor must be finite, got {factor!r}")
    if drift.contract_mix is not None:
        unknown = sorted(set(drift.contract_mix) - set(CONTRACTS))
        if unknown:
            raise ValueError(
                f"contract_mix names unknown contracts {unknown}; known: {list(CONTRACTS)}"
            )
        for name, prob in drift.contract_mix.items():
            if isinstance(prob, bool) or not isinstance(prob, Real) or not 0 <= prob < math.inf:
                raise ValueError(f"contract_mix[{name!r}] must be a number >= 0, got {prob!r}")
        total = float(sum(drift.contract_mix.values()))
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"contract_mix probabilities must sum to 1, got {total:g}")
    if drift.new_category is not None:
        for column, level in drift.new_category.items():
            if column == "SeniorCitizen":
                raise ValueError(
                    "new_category cannot target SeniorCitizen: it is an int 0/1 column, "
                    "not a string category"
                )
            if column not in _NEW_CATEGORY_COLUMNS:
                raise ValueError(
                    f"new_category names unknown column {column!r}; "
                    f"allowed: {sorted(_NEW_CATEGORY_COLUMNS)}"
                )
            if not isinstance(level, str) or not level:
                raise ValueError(f"new_category[{column!r}] must be a non-empty string")
            if level in LEVELS[column]:
                raise ValueError(
                    f"new_category[{column!r}] = {level!r} is already a level of {column}; "
                    "choose an unseen one"
                )
    share = drift.new_category_share
    if isinstance(share, bool) or not isinstance(share, Real) or not 0 < share <= 1:
        raise ValueError(f"new_category_share must be in (0, 1], got {share!r}")


def generate_customers(
    n_rows: int,
    seed: int = 42,
    *,
    drift: Drift | None = None,
    start: datetime | None = None,
    period: timedelta = timedelta(hours=1),
    id_prefix: str = "",
) -> pd.DataFrame:
    """Generate synthetic Telco-like customers with a churn label.

    The frame has exactly the columns, dtypes and levels of the public IBM Telco CSV read with
    a plain ``pd.read_csv``, quirks included: ``SeniorCitizen`` is int 0/1, ``TotalCharges`` is
    text and a single space ``' '`` exactly where ``tenure == 0``, and the service columns use
    ``No phone service`` / ``No internet service``.

    Args:
        n_rows: Number of customers, at least 1.
        seed: Seed of ``np.random.default_rng``; the same arguments give an identical frame.
        drift: Optional shift of the inputs for later batches; churn follows the same story.
        start: If given, add a final ``timestamp`` column (UTC, tz-aware, sorted, spread evenly
            over ``[start, start + period)``). A naive ``start`` is taken to be UTC.
        period: Length of the time window covered by the batch; must be positive.
        id_prefix: Text put in front of every ``customerID`` (e.g. ``"B2-"``) so that batches
            drawn with different seeds can never share an id. IDs are always unique within a
            frame; across seeds they differ but may, rarely, collide without a prefix.

    Returns:
        The customers, one row each, columns ``COLUMNS`` (plus ``timestamp`` when ``start``).

    Raises:
        ValueError: If an argument is invalid (the message says which and why).
    """
    _validate_call(n_rows, seed, drift, start, period, id_prefix)
    n = int(n_rows)
    drift = drift or Drift()
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(6)]
    ids_rng, people_rng, service_rng, charge_rng, churn_rng, drift_rng = streams

    # Who the customer is, and the contract they chose.
    mix = _contract_mix(drift)
    contract = people_rng.choice(len(CONTRACTS), size=n, p=mix).astype(np.int64)
    senior = people_rng.random(n) < np.asarray(_SENIOR_BY_CONTRACT)[contract]
    partner = people_rng.random(n) < np.asarray(_PARTNER_BY_CONTRACT)[contract]
    dependents_p = np.asarray(_DEPENDENTS_BY_CONTRACT_PARTNER)[contract, partner.astype(np.int64)]
    dependents = people_rng.random(n) < dependents_p
    male = people_rng.random(n) < _MALE_SHARE
    tenure = _tenure(people_rng, contract)

    # Which services they have.
    internet_p = np.asarray(_INTERNET_BY_CONTRACT_SENIOR)[contract, senior.astype(np.int64)]
    internet = _choose(service_rng, internet_p)
    phone = service_rng.random(n) < np.asarray(_PHONE_BY_INTERNET)[internet]
    years = tenure / _MAX_TENURE
    lines_logit = (
        _LINES_INTERCEPT
        + np.asarray(_LINES_BY_INTERNET)[internet]
        + np.asarray(_LINES_BY_CONTRACT)[contract]
        + _LINES_PER_TENURE * years
    )
    lines = phone & (service_rng.random(n) < _sigmoid(lines_logit))
    addons = _addons(service_rng, internet, contract, years)
    paperless_logit = (
        np.asarray(_PAPERLESS_BY_INTERNET)[internet]
        + np.asarray(_PAPERLESS_BY_CONTRACT)[contract]
        + _PAPERLESS_SENIOR * senior
    )
    paperless = service_rng.random(n) < _sigmoid(paperless_logit)
    payment_logit = np.log(np.asarray(_PAYMENT_BY_CONTRACT)[contract]) + np.outer(
        senior, _PAYMENT_SENIOR_SHIFT
    )
    payment = _choose(service_rng, _softmax(payment_logit))

    # What they pay.
    monthly = _monthly_charges(charge_rng, internet, phone, lines, addons)
    monthly = _round_to_nickel(monthly * drift.monthly_charges_factor)
    total = _total_charges(charge_rng, tenure, monthly)

    # Whether they leave.
    churn_logit = (
        _CHURN_INTERCEPT
        + np.asarray(_CHURN_BY_CONTRACT)[contract]
        + _CHURN_PER_LOG_TENURE * np.log1p(tenure)
        + np.asarray(_CHURN_BY_INTERNET)[internet]
        + np.asarray(_CHURN_BY_PAYMENT)[payment]
        + _CHURN_PAPERLESS * paperless
        + _CHURN_SENIOR * senior
        + _CHURN_PARTNER * partner
        + _CHURN_DEPENDENTS * dependents
        + _CHURN_ONLINE_SECURITY * (addons[:, 0] == 1)
        + _CHURN_ONLINE_BACKUP * (addons[:, 1] == 1)
        + _CHURN_TECH_SUPPORT * (addons[:, 3] == 1)
        + _CHURN_PER_30_DOLLARS * (monthly - 65.0) / 30.0
        + _CHURN_UNSUPPORTED_FIBER * ((internet == 1) & (addons[:, 0] != 1) & (addons[:, 3] != 1))
        + _CHURN_NEW_MONTH_TO_MONTH * ((contract == 0) & (tenure <= 6))
        + _CHURN_BIG_BILL_MONTH_TO_MONTH * ((contract == 0) & (monthly > 90.0))
        + churn_rng.normal(0.0, _CHURN_NOISE_SD, n)
    )
    churn = (churn_rng.random(n) < _sigmoid(churn_logit)) & (tenure > 0)

    columns: dict[str, object] = {
        "customerID": _customer_ids(ids_rng, n, id_prefix),
        "gender": _labels("gender", male.astype(np.int64)),
        "SeniorCitizen": senior.astype(np.int64),
        "Partner": _labels("Partner", partner.astype(np.int64)),
        "Dependents": _labels("Dependents", dependents.astype(np.int64)),
        "tenure": tenure,
        "PhoneService": _labels("PhoneService", phone.astype(np.int64)),
        "MultipleLines": _labels("MultipleLines", np.where(phone, lines.astype(np.int64), 2)),
        "InternetService": _labels("InternetService", internet),
        **{name: _labels(name, addons[:, k]) for k, name in enumerate(ADDONS)},
        "Contract": _labels("Contract", contract),
        "PaperlessBilling": _labels("PaperlessBilling", paperless.astype(np.int64)),
        "PaymentMethod": _labels("PaymentMethod", payment),
        "MonthlyCharges": monthly,
        "TotalCharges": _format_total(total, tenure),
        "Churn": _labels("Churn", churn.astype(np.int64)),
    }
    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    if drift.new_category:
        _add_new_categories(frame, drift_rng, drift.new_category, drift.new_category_share)
    if start is not None:
        frame[TIMESTAMP_COLUMN] = _timestamps(n, start, period)
    return frame


def part_sizes(n_rows: int, partition_rows: int) -> list[int]:
    """Rows of each part when ``n_rows`` customers are generated ``partition_rows`` at a time."""
    full, rest = divmod(int(n_rows), int(partition_rows))
    return [int(partition_rows)] * full + ([rest] if rest else [])


def generate_part(n_rows: int, seed: int, index: int, partition_rows: int) -> pd.DataFrame:
    """Part ``index`` of ``n_rows`` customers generated in parts of ``partition_rows``.

    One part is exactly ``generate_customers(n_rows, seed)`` (the default data set). With several,
    part ``i`` is drawn with its own seed derived from ``(seed, i)`` and ids prefixed ``i-``
    (``003-7590-VHVEG``), so ids never collide across parts and no process ever holds more than
    one part: 10 million customers are 20 independent parts of 500,000. Both engines draw the
    same parts, so they see the same rows.
    """
    sizes = part_sizes(n_rows, partition_rows)
    if not 0 <= index < len(sizes):
        raise ValueError(f"part {index} out of range: {n_rows} rows make {len(sizes)} parts")
    if len(sizes) == 1:
        return generate_customers(n_rows, seed)
    part_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
    return generate_customers(sizes[index], part_seed, id_prefix=f"{index:03d}-")


def _validate_call(
    n_rows: object,
    seed: object,
    drift: object,
    start: object,
    period: object,
    id_prefix: object,
) -> None:
    """Raise ``ValueError`` naming the first invalid argument of ``generate_customers``."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, Integral) or int(n_rows) <= 0:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if drift is not None:
        if not isinstance(drift, Drift):
            raise ValueError(f"drift must be a Drift or None, got {type(drift).__name__}")
        _validate_drift(drift)  # again: its dicts may have been changed after construction
    if start is not None and not isinstance(start, datetime):
        raise ValueError(f"start must be a datetime or None, got {type(start).__name__}")
    if not isinstance(period, timedelta) or period <= timedelta(0):
        raise ValueError(f"period must be a positive timedelta, got {period!r}")
    if not isinstance(id_prefix, str):
        raise ValueError(f"id_prefix must be a string, got {type(id_prefix).__name__}")


def _contract_mix(drift: Drift) -> FloatArray:
    """Contract probabilities in CONTRACTS order: the calibrated mix or the drift override."""
    if drift.contract_mix is None:
        return np.asarray(_CONTRACT_MIX, dtype=np.float64)
    mix = np.array([float(drift.contract_mix.get(c, 0.0)) for c in CONTRACTS])
    normalised: FloatArray = mix / mix.sum()
    return normalised


def _sigmoid(x: FloatArray) -> FloatArray:
    """Logistic function."""
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def _softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax of an (n, k) array of logits."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: FloatArray = z / z.sum(axis=1, keepdims=True)
    return result


def _choose(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """Draw one category per row from an (n, k) array of row probabilities."""
    cumulative = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cumulative[:, -1]
    codes: IntArray = (u[:, None] >= cumulative[:, :-1]).sum(axis=1).astype(np.int64)
    return codes


def _tenure(rng: np.random.Generator, contract: IntArray) -> IntArray:
    """Months with the company, 0..72, longer for longer contracts."""
    beta = np.asarray(_TENURE_BETA)[contract]
    months = np.ceil(_MAX_TENURE * rng.beta(beta[:, 0], beta[:, 1]))
    months = np.clip(months, 1, _MAX_TENURE).astype(np.int64)
    brand_new = rng.random(len(contract)) < np.asarray(_NEW_CUSTOMER_SHARE)[contract]
    return np.where(brand_new, 0, months).astype(np.int64)


def _addons(
    rng: np.random.Generator, internet: IntArray, contract: IntArray, years: FloatArray
) -> IntArray:
    """Codes (0 No, 1 Yes, 2 No internet service) of the six add-ons, as an (n, 6) array."""
    n = len(internet)
    coef = np.asarray(_ADDON_LOGIT)
    is_fiber = (internet == 1).astype(np.float64)
    one_year = (contract == 1).astype(np.float64)
    two_year = (contract == 2).astype(np.float64)
    logit = (
        coef[:, 0]
        + np.outer(is_fiber, coef[:, 1])
        + np.outer(one_year, coef[:, 2])
        + np.outer(two_year, coef[:, 3])
        + np.outer(years, coef[:, 4])
        + rng.normal(0.0, _ENGAGEMENT_SD, n)[:, None]
    )
    logit[:, 4:] += rng.normal(0.0, _STREAMING_SD, n)[:, None]
    taken = (rng.random((n, len(ADDONS))) < _sigmoid(logit)).astype(np.int64)
    return np.where((internet == 2)[:, None], 2, taken).astype(np.int64)


def _monthly_charges(
    rng: np.random.Generator,
    internet: IntArray,
    phone: BoolArray,
    lines: BoolArray,
    addons: IntArray,
) -> FloatArray:
    """List price of the services taken plus a small per-customer deviation."""
    price = (
        _PRICE_PHONE * phone
        + _PRICE_EXTRA_LINE * lines
        + np.asarray(_PRICE_BY_INTERNET)[internet]
        + ((addons == 1) * np.asarray(_PRICE_BY_ADDON)).sum(axis=1)
    )
    noise = rng.normal(0.0, 1.0, len(internet)) * np.asarray(_PRICE_NOISE_SD)[internet]
    charges: FloatArray = price + np.clip(noise, -_PRICE_NOISE_CAP, _PRICE_NOISE_CAP)
    return charges


def _round_to_nickel(values: FloatArray) -> FloatArray:
    """Round to a multiple of 0.05, as every charge in the real file is."""
    return np.rint(values * 20.0) / 20.0


def _total_charges(rng: np.random.Generator, tenure: IntArray, monthly: FloatArray) -> FloatArray:
    """Sum of past bills: about tenure x MonthlyCharges; exact for tenure 1; 0 for tenure 0."""
    safe = np.maximum(tenure, 1)
    spread = _PAST_BILL_SD * np.sqrt(safe - 1) / safe
    ratio = np.clip(1.0 + spread * rng.normal(0.0, 1.0, len(tenure)), *_TOTAL_RATIO_BOUNDS)
    return _round_to_nickel(tenure * monthly * ratio)


def _format_total(total: FloatArray, tenure: IntArray) -> npt.NDArray[np.object_]:
    """TotalCharges as the raw CSV has it: text like ``1889.5`` or ``97``; ``' '`` at tenure 0."""
    cents = np.rint(total * 100).astype(np.int64)
    whole = (cents // 100).astype(str)
    fractions = np.array([""] + [f".{k:02d}".rstrip("0") for k in range(1, 100)])
    text = np.strings.add(whole, fractions[cents % 100])
    return np.where(tenure == 0, " ", text).astype(object)


def _labels(column: str, codes: IntArray) -> npt.NDArray[np.object_]:
    """Map integer codes to the column's string levels (an object array, like ``read_csv``)."""
    return np.asarray(LEVELS[column], dtype=object)[codes]


def _customer_ids(rng: np.random.Generator, n: int, prefix: str) -> npt.NDArray[np.object_]:
    """Unique ids shaped like ``7590-VHVEG`` (4 digits, dash, 5 capitals), drawn without repeat."""
    letters_space = 26**5
    codes = rng.choice(10_000 * letters_space, size=n, replace=False)
    chars = np.empty((n, 10), dtype=np.uint8)
    digits, letters = np.divmod(codes, letters_space)
    for position in range(3, -1, -1):  # loops over the 10 characters, never over rows
        digits, digit = np.divmod(digits, 10)
        chars[:, position] = ord("0") + digit
    chars[:, 4] = ord("-")
    for position in range(9, 4, -1):
        letters, letter = np.divmod(letters, 26)
        chars[:, position] = ord("A") + letter
    ids = chars.view("S10").ravel().astype("U10")
    if prefix:
        ids = np.strings.add(prefix, ids)
    return ids.astype(object)


def _add_new_categories(
    frame: pd.DataFrame, rng: np.random.Generator, new: Mapping[str, str], share: float
) -> None:
    """Give ``share`` of the rows an unseen level in each listed column (rows drawn per column)."""
    n = len(frame)
    k = min(n, max(1, round(share * n)))
    for column, level in new.items():
        rows = rng.choice(n, size=k, replace=False)
        values = frame[column].to_numpy(dtype=object, copy=True)
        values[rows] = level
        frame[column] = values


def _timestamps(n: int, start: datetime, period: timedelta) -> pd.Series:
    """``n`` sorted UTC instants spread evenly over ``[start, start + period)``."""
    origin = pd.Timestamp(start)
    origin = origin.tz_localize(UTC) if origin.tzinfo is None else origin.tz_convert(UTC)
    span = pd.Timedelta(period).value  # nanoseconds
    step, remainder = divmod(span, n)
    i = np.arange(n, dtype=np.int64)
    offsets = i * step + (i * remainder) // n  # exact integer spacing, no int64 overflow
    stamps = pd.to_datetime(origin.value + offsets, unit="ns", utc=True)
    return pd.Series(stamps, name=TIMESTAMP_COLUMN)
