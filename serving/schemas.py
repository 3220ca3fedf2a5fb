"""Request and response models of the API, built from the dataset config that training uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from churn.config.params import DatasetConfig
from churn.scoring.explain import DEFAULT_TOP_K, MAX_TOP_K, UNIT_NOTE

UNIT_DOC = (
    f"per record, the fields pushing the score up and down with their contributions in "
    f"{UNIT_NOTE} (XGBoost: exact TreeSHAP; logistic regression: coefficient x (value - mean); "
    f"fallback rules: their points)."
)

# A categorical value that is not one of the configured levels is accepted (and flagged), but it
# must still look like a level: a short string, or an int for integer-coded columns.
MAX_LEVEL_LENGTH = 64
MAX_ID_LENGTH = 64
# No control characters (U+0000-U+001F, U+007F): PostgreSQL's text cannot hold U+0000, and a row
# the store refuses would be set aside in the dead letters, never logged (issue #26); a level
# never needs one.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
UnseenText = Annotated[str, StringConstraints(max_length=MAX_LEVEL_LENGTH, pattern=NO_CONTROL)]
# What the prediction store can hold (a JSON integer is a 64-bit one in SQLite, PostgreSQL and
# orjson): a bigger one could be scored but not logged, so the contract refuses it (422).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Lax, like an integer numeric column: a JSON number with no fractional part (3.0) is an integer
# in JSON Schema too; text and booleans are refused before it (``_no_text``).
StoredInt = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


def _numeric_type(spec: Any) -> Any:
    # Strict: a number is a JSON number (an int column also takes 3.0), never text such as
    # "29.85" or the Telco export's blank " "; send null for a missing nullable value.
    base: Any = int if spec.integer else float
    constraints: dict[str, Any] = {"ge": spec.min, "le": spec.max, "strict": not spec.integer}
    if spec.integer:  # an unbounded side still has to fit the store
        constraints["ge"] = INT64_MIN if spec.min is None else spec.min
        constraints["le"] = INT64_MAX if spec.max is None else spec.max
    else:  # finite: NaN and infinities (1e999 parses as one) are refused
        constraints["allow_inf_nan"] = False
    annotated: Any = Annotated[base, Field(**constraints)]
    if spec.integer:
        annotated = Annotated[annotated, BeforeValidator(_no_text)]
    if spec.nullable:
        return annotated | None
    return annotated


def _no_text(value: Any) -> Any:
    """Lax int parsing would accept "5" and True; the contract wants a JSON number."""
    if isinstance(value, str | bool):
        raise ValueError("Input should be a valid integer, not text or a boolean")
    return value


def _categorical_type(levels: list[Any]) -> Any:
    known: Any = Literal[tuple(levels)]
    if all(isinstance(level, bool | int) for level in levels):
        return Annotated[known | StoredInt, BeforeValidator(_no_text)]
    return known | UnseenText


# The response of ``/predict``, declared once. The models document the route (its
# ``response_model``: the OpenAPI document and ``/docs``), the FastAPI route validates what it
# returns against them, and the builders below are the only code that names their fields: every
# path of both routes (one row, many, explain, canary, the fallback rules), the docs' example and
# batch scoring's columns are built by them. ``extra="forbid"``: a field sent but not declared
# fails the FastAPI route and tests/serving/test_response_shape.py.
_CLOSED = ConfigDict(extra="forbid")


class Reason(BaseModel):
    """One field's contribution to a score (``explain``)."""

    model_config = _CLOSED

    field: str = Field(description="The customer's field, or a derived feature's name.")
    value: Any = Field(description="The customer's value of the field (null when missing).")
    contribution: float = Field(description=f"In log-odds: {UNIT_NOTE}.")
    text: str = Field(examples=["Contract = Month-to-month: +0.21"])
    derived_from: dict[str, Any] | None = Field(
        default=None,
        description="For a derived feature (any kind of params.yaml's features block): the "
        "customer's fields it is computed from, with their values.",
    )


class Explanation(BaseModel):
    """Why this score (``explain``): the fields pushing it up and down, largest first."""

    model_config = _CLOSED

    method: Literal["treeshap", "linear", "rules"] | None = Field(
        description="XGBoost's exact TreeSHAP, coefficient x (value - mean) for a logistic "
        "regression, or the fallback rules' points; null when the model cannot be explained."
    )
    unit: Literal["log-odds"] | None = Field(description=UNIT_NOTE)
    base: float | None = Field(description="The log-odds before any field (bias, intercept).")
    margin: float | None = Field(description="base + every field's contribution (log-odds).")
    up: list[Reason] = Field(description="Up to top_k fields raising the churn probability.")
    down: list[Reason] = Field(description="Up to top_k fields lowering it.")
    note: str | None = Field(
        default=None, description="Why there is no explanation (e.g. the model kind)."
    )


class Prediction(BaseModel):
    """The score of one record."""

    model_config = _CLOSED

    churn_probability: float = Field(ge=0.0, le=1.0, description="Probability of churn.")
    churn: bool = Field(description="Decision at the model's cost-based threshold.")
    unseen_categories: list[str] = Field(
        default_factory=list,
        description="Columns whose value is not a known level (encoded as 'none of the levels').",
    )
    explanation: Explanation | None = Field(
        default=None, description="Only with explain (body or query): why this score."
    )
    model_version: str | None = Field(
        None,
        description="The version that scored this record, in canary mode and in batch scoring's "
        "output (params.yaml live.mode: canary, where the champion and the challenger share the "
        "traffic).",
    )


class PredictResponse(BaseModel):
    """Scores in input order, the model version that produced them and the request id."""

    model_config = _CLOSED

    model_version: str = Field(description="Registry version, or 'fallback-rules'.")
    request_id: str
    predictions: list[Prediction]


def _declared(model: type[BaseModel], *names: str) -> tuple[str, ...]:
    """``names``, checked to be exactly ``model``'s fields: a field declared but not built, or
    built but not declared, fails at import, naming it."""
    declared = set(model.model_fields)
    if set(names) != declared or len(names) != len(declared):
        raise TypeError(
            f"{model.__name__}: the response builders in serving/schemas.py name "
            f"{sorted(names)} but the model declares {sorted(declared)}: add the field to both"
        )
    return names


PROBABILITY, DECISION, UNSEEN, EXPLANATION, VERSION = _declared(
    Prediction, "churn_probability", "churn", "unseen_categories", "explanation", "model_version"
)
RESPONSE_VERSION, REQUEST_ID, PREDICTIONS = _declared(
    PredictResponse, "model_version", "request_id", "predictions"
)
# Batch scoring's output columns beside the id (and the reasons with --explain): a prediction's
# scalar fields, the version on every row (a file may be scored by several in future).
BATCH_COLUMNS = (PROBABILITY, DECISION, VERSION)


def predictions(
    proba: Sequence[float],
    churn: Sequence[bool],
    unseen: Sequence[list[str]] | None = None,
    explanations: Sequence[dict[str, Any]] | None = None,
    versions: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Each record's ``Prediction`` as a plain dict (the hot path: no model instance per
    request), in input order; an optional field only when its list is given."""
    if unseen is None and explanations is None and versions is None:
        return [{PROBABILITY: p, DECISION: d} for p, d in zip(proba, churn, strict=True)]
    out = []
    for i, (p, d) in enumerate(zip(proba, churn, strict=True)):
        row: dict[str, Any] = {PROBABILITY: p, DECISION: d}
        if unseen is not None:
            row[UNSEEN] = unseen[i]
        if explanations is not None:
            row[EXPLANATION] = explanations[i]
        if versions is not None:
            row[VERSION] = versions[i]
        out.append(row)
    return out


def predict_response(
    model_version: str, request_id: str, scored: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``PredictResponse`` of a request as a plain dict (``scored``: :func:`predictions`)."""
    return {RESPONSE_VERSION: model_version, REQUEST_ID: request_id, PREDICTIONS: scored}


def batch_columns(proba: Any, churn: Any, model_version: str) -> dict[str, Any]:
    """Batch scoring's output columns (:data:`BATCH_COLUMNS`), named as ``Prediction``'s
    fields: the same names a client of ``/predict`` reads."""
    return dict(zip(BATCH_COLUMNS, (proba, churn, model_version), strict=True))


class ExplainQuery(BaseModel):
    """``/predict``'s query parameters (the body's ``explain``/``explain_top_k`` do the same;
    the body's ``explain_top_k`` wins when both are sent). Both routes validate the query with
    this model, so a bad value gets the same 422."""

    explain: bool = Field(
        False,
        description=f"Return each record's top reasons (as the body's `explain`): {UNIT_DOC}",
    )
    top_k: int = Field(
        DEFAULT_TOP_K,
        ge=1,
        le=MAX_TOP_K,
        description=f"Reasons per direction with explain (default {DEFAULT_TOP_K}; as the "
        "body's `explain_top_k`, which wins when both are sent).",
    )


def _id_type(dataset: DatasetConfig) -> Any:
    """The id field as the file has it (``dataset.id_type``): text, or an integer that also
    arrives as a string of digits (``"15634602"``): both are logged as the same hash."""
    about = "Customer id: hashed before logging, never a feature."
    if dataset.id_type == "integer":
        return Annotated[
            Annotated[StoredInt, BeforeValidator(_digits)] | None,
            Field(
                title=dataset.id_column,
                description=about + " An integer, or a string of its digits.",
            ),
        ]
    return Annotated[
        str | None,
        StringConstraints(max_length=MAX_ID_LENGTH),
        Field(title=dataset.id_column, description=about),
    ]


def _digits(value: Any) -> Any:
    """An integer id sent as text (``"15634602"``, ``"-7"``) is that integer; other text, a
    boolean or a fractional number is refused (422 naming the id field)."""
    if isinstance(value, bool):
        raise ValueError("Input should be an integer id (a number or a string of digits)")
    if isinstance(value, str):
        text = value.strip()
        if not (text.lstrip("-").isdigit() and text.isascii() and len(text) <= 20):
            raise ValueError("Input should be an integer id (a number or a string of digits)")
        return int(text)
    return value


def build_request_models(dataset: DatasetConfig, max_records: int) -> tuple[Any, Any]:
    """``(CustomerRecord, PredictRequest)`` typed dicts for one dataset config.

    Numeric columns get their type and ``ge``/``le`` range; categorical columns list their levels
    (visible in the OpenAPI schema) but also accept an unseen value, which is scored as 'none of
    the levels' exactly as the training pipeline's encoder does, and flagged in the response,
    the prediction log and ``/metrics``. Every feature column is required; unknown fields are
    ignored (a client may send a whole CRM row, label included): they are never used as features
    and never stored.

    They are typed dicts rather than models: pydantic validates a 1000-record body into dicts
    about twice as fast as into model instances.
    """
    fields: dict[str, Any] = {}
    if dataset.id_column:  # a data set without ids (id_column: null) logs predictions without one
        fields[dataset.id_column] = NotRequired[_id_type(dataset)]
    for name, spec in dataset.numeric.items():
        fields[name] = Annotated[_numeric_type(spec), Field(title=name)]
    for name, levels in dataset.categorical.items():
        fields[name] = Annotated[
            _categorical_type(list(levels)),
            Field(title=name, description=f"One of {list(levels)}."),
        ]
    typed_dict: Any = TypedDict  # built at run time: mypy cannot check a dynamic TypedDict
    record = typed_dict("CustomerRecord", fields)
    record.__pydantic_config__ = ConfigDict(extra="ignore")
    request = typed_dict(
        "PredictRequest",
        {
            "records": Annotated[list[record], Field(min_length=1, max_length=max_records)],  # type: ignore[valid-type]
            # Optional reasons for each score (serving/explain.py); ?explain=true does the same.
            "explain": NotRequired[
                Annotated[
                    bool,
                    Field(
                        strict=True,
                        description="Return each record's top reasons (the explanation).",
                    ),
                ]
            ],
            "explain_top_k": NotRequired[
                Annotated[
                    int,
                    Field(
                        ge=1,
                        le=MAX_TOP_K,
                        description=f"Reasons per direction with explain (default "
                        f"{DEFAULT_TOP_K}); ?top_k= does the same.",
                    ),
                ]
            ],
        },
    )
    # The example is on the /predict operation (serving/docs.py): pydantic would sort its keys.
    request.__pydantic_config__ = ConfigDict(extra="ignore")
    return record, request


class RequestParser:
    """Validates a raw ``/predict`` body for the direct route: ``json.loads``, then pydantic
    validates the objects, as FastAPI does with a declared body.

    (Until issue #24 it validated the raw JSON in one pass, pydantic-core's ``validate_json``:
    that earned 1.22x on a 1000-row request's CPU in one in-process A/B, under the 1.25x a
    hand-written path must earn to stay; docs/architecture.md, "Library path or hand-written
    path".)
    """

    def __init__(self, dataset: DatasetConfig, max_records: int) -> None:
        self.record, self.request = build_request_models(dataset, max_records)
        self._adapter: TypeAdapter[Any] = TypeAdapter(self.request)

    def parse(self, body: bytes) -> list[dict[str, Any]]:
        """The validated records of a body.

        Raises:
            pydantic.ValidationError: the body is not JSON (``json_invalid``) or breaks the
                contract; each error's ``loc`` names the field.
        """
        records: list[dict[str, Any]] = self.validate(body)["records"]
        return records

    def validate(self, body: bytes) -> dict[str, Any]:
        """The validated body: ``records``, and ``explain``/``explain_top_k`` when sent.

        Raises:
            pydantic.ValidationError: as :meth:`parse`.
        """
        try:
            data = json.loads(body)
        except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError)
            raise ValidationError.from_exception_data(
                "PredictRequest",
                [{"type": "json_invalid", "loc": (), "input": None, "ctx": {"error": str(exc)}}],
            ) from None
        return self.validate_data(data)

    def validate_data(self, data: Any) -> dict[str, Any]:
        """The validated body of an already decoded request (the cloud contracts build it from
        their own shapes: ``serving/contracts/``).

        Raises:
            pydantic.ValidationError: as :meth:`parse`.
        """
        validated: dict[str, Any] = self._adapter.validate_python(data)
        return validated

    def openapi_schemas(self) -> dict[str, Any]:
        """``components.schemas`` entries for the request (``PredictRequest`` refers to
        ``CustomerRecord``), for an OpenAPI document that FastAPI cannot derive itself."""
        schema = self._adapter.json_schema(ref_template="#/components/schemas/{model}")
        definitions = schema.pop("$defs", {})
        return {**definitions, "PredictRequest": schema}
