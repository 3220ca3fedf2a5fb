"""What every contract adapter shares: ``/predict``'s key, validation, readiness and scoring, with
the platforms' one error shape, ``{"error": "<one line>"}``.

An adapter builds ``/predict``'s body (``{"records": [...], "explain"?, "explain_top_k"?}``)
from its platform's request, calls :func:`predict`, and shapes the ``PredictResponse`` it
returns; every failure reaches it as a :class:`ContractError` with the status to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import HTTPException, Request, Response
from pydantic import ValidationError

from churn.config.settings import Settings
from churn.data.lineage import lineage_of
from serving import explain
from serving.deps import API_KEY_HEADER, check_key, served_model
from serving.routers import health
from serving.routers.predict import answer, last_resort
from serving.schemas import RequestParser
from serving.state import ServingState

log = logging.getLogger(__name__)

JSON = "application/json"
# A validation failure names at most this many fields (the rest are counted).
_SHOWN_ERRORS = 3


@dataclass(frozen=True)
class Context:
    """What ``create_app`` hands each contract's ``router``."""

    state: ServingState
    parser: RequestParser
    settings: Settings

    @property
    def model_name(self) -> str:
        """The served lineage's name (params.yaml's ``dataset.name``, else the setting)."""
        return lineage_of(self.state.dataset, self.settings.model_name).name


@dataclass
class ContractError(Exception):
    """A request the adapter answers with ``status`` and ``{"error": message}``."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return error_response(self.status, self.message, self.headers)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": message}), status, headers, media_type=JSON)


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type=JSON)


def authorize(state: ServingState, key: str | None) -> None:
    """``/predict``'s key check (``check_key``): open without a configured key (development).

    Raises:
        ContractError: 401, as ``/predict``'s.
    """
    if state.api_key is None:
        return
    try:
        check_key(state, key)
    except HTTPException as exc:
        raise ContractError(exc.status_code, str(exc.detail), dict(exc.headers or {})) from None


def header_key(request: Request) -> str | None:
    return request.headers.get(API_KEY_HEADER)


async def readiness(state: ServingState, request: Request) -> tuple[bool, str]:
    """``/ready``'s verdict (ready or degraded: True; loading, overloaded, unservable: False)
    and its status word: the platforms' health routes answer what ``/ready`` answers."""
    probe = Response()
    verdict = await health.ready(state, request, probe)
    return probe.status_code < 400, verdict.status


def decode_json(raw: bytes) -> Any:
    """The JSON of a body.

    Raises:
        ContractError: 400 when it is not JSON (or not UTF-8).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError(400, f"the body is not JSON: {exc}") from None


def media_type(value: str | None) -> str:
    """A ``Content-Type`` or ``Accept`` value's type, without parameters, lower case."""
    return (value or "").split(";", 1)[0].strip().lower()


def is_json(value: str | None) -> bool:
    media = media_type(value)
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def validate(
    parser: RequestParser, body: dict[str, Any], where: Callable[[Sequence[Any]], str]
) -> dict[str, Any]:
    """``/predict``'s body validated by its parser (the same rules, the same limits).

    ``where`` names a field of the platform's request from the parser's ``loc`` (e.g.
    ``("records", 3, "tenure")`` -> ``instances[3].tenure``).

    Raises:
        ContractError: 400 naming the first fields that break the contract and why.
    """
    try:
        return parser.validate_data(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        said = [f"{where(e['loc'])}: {e['msg']}" for e in errors[:_SHOWN_ERRORS]]
        more = len(errors) - len(said)
        tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        raise ContractError(400, "; ".join(said) + tail) from None


def dotted(name: str, options: str | None = None) -> Callable[[Sequence[Any]], str]:
    """A ``where`` for a JSON request whose records sit under ``name``: ``name[3].tenure``;
    the explain options under ``options`` when the platform sends them there."""

    def where(loc: Sequence[Any]) -> str:
        parts = list(loc)
        if parts and parts[0] == "records":
            parts[0] = name
            del parts[3:]  # a union's branch (``literal[...]``, ``str``) after the field
        elif parts and options is not None:
            parts.insert(0, options)
        text = ""
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
        return text or "the body"

    return where


async def predict(context: Context, request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """``/predict``'s answer (its ``PredictResponse`` as a dict) of a validated body: the
    served model (503 while none is), ``answer`` (scores, canary, reasons, fallback rules,
    the prediction log). A failure is a :class:`ContractError` with ``/predict``'s status;
    an unexpected one is ``/predict``'s last resort (logged, counted, 503), never a 500.
    """
    state = context.state
    try:
        model = served_model(state)
        top_k = explain.options(body, None)
        return await answer(state, model, body, top_k, request.scope)
    except HTTPException as exc:
        raise ContractError(exc.status_code, str(exc.detail), dict(exc.headers or {})) from None
    except Exception as exc:
        raise unexpected(state, exc) from None


def unexpected(state: ServingState, exc: Exception) -> ContractError:
    """``/predict``'s last resort for an exception nothing handled (a bug): logged with its
    traceback, counted, answered 503 with ``Retry-After``; never a 500."""
    refusal = last_resort(state, exc)
    return ContractError(503, str(refusal.detail), dict(refusal.headers or {}))


def explain_options(parameters: Any) -> dict[str, Any]:
    """``/predict``'s ``explain``/``explain_top_k`` from a platform's ``parameters`` object
    (Vertex AI's, the OIP's), to be validated with the body.

    Raises:
        ContractError: 400 when ``parameters`` is not an object.
    """
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ContractError(400, "parameters: must be an object")
    return {k: parameters[k] for k in ("explain", "explain_top_k") if k in parameters}
