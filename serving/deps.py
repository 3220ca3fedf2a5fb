"""Route dependencies: ``Annotated`` aliases (state, served model, API and admin keys) and their
checks.

The direct ``/predict`` route calls ``check_key`` and ``served_model`` inline
(``serving/routers/predict.py`` says why); every other endpoint, and the FastAPI ``/predict``,
takes the aliases.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from serving.model import ServedModel
from serving.state import ServingState

# Every dependency is ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a
# thread pool, and that hop costs more than the whole prediction of one record.
API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


State = Annotated[ServingState, Depends(get_state)]


# Seconds a client waits before retrying a 503 that a poll or a restart may clear.
RETRY_AFTER = "5"


def served_model(state: ServingState) -> ServedModel:
    """The model served right now; 503 before the first load finished, and 503 with the
    reason and ``Retry-After`` while nothing this service can run is loaded (``unservable``)."""
    model = state.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet")
    if model.source == "none":
        state.metrics.unanswered.labels("unservable").inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"nothing can score: {model.degraded_reason}",
            headers={"Retry-After": RETRY_AFTER},
        )
    return model


async def get_model(state: State) -> ServedModel:
    return served_model(state)


Model = Annotated[ServedModel, Depends(get_model)]


def check_key(state: ServingState, given: str | None) -> None:
    """401 unless ``given`` is the configured API key."""
    expected = state.api_key
    if given is None or not secrets.compare_digest(given.encode(), (expected or "").encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing or wrong {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


async def require_key(state: State, key: Annotated[str | None, Security(api_key_header)]) -> None:
    """The API key when one is configured (``/predict``); open in development without one."""
    if state.api_key is not None:
        check_key(state, key)


PredictKey = Annotated[None, Depends(require_key)]


def check_json(content_type: bytes | str | None) -> None:
    """415 unless ``content_type`` (the request's header) declares a JSON body:
    ``application/json`` or an ``application/*+json`` type, any parameters after ``;``.

    A browser posts ``text/plain``, a form or no type at all to another site without asking it
    first (no CORS preflight): refusing every other type keeps a page the user visits from
    scoring (and logging) records through the user's browser, also without an API key.
    """
    if isinstance(content_type, str):
        content_type = content_type.encode("latin-1")
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return
    given = repr(media.decode("latin-1")) if media else "none"
    raise HTTPException(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        f"the body must be JSON: send it with Content-Type: application/json (got {given})",
    )


async def require_json(request: Request) -> None:
    """The body is declared JSON (``check_json``); ``/predict``'s FastAPI route."""
    check_json(request.headers.get("content-type"))


JsonBody = Annotated[None, Depends(require_json)]


async def require_admin(state: State, key: Annotated[str | None, Security(api_key_header)]) -> None:
    """The API key, always: without a configured key the admin endpoints are closed."""
    if state.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "admin endpoints are disabled: set CHURN_API_KEY"
        )
    check_key(state, key)


AdminKey = Annotated[None, Depends(require_admin)]
