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


async def require_admin(state: State, key: Annotated[str | None, Security(api_key_header)]) -> None:
    """The API key, always: without a configured key the admin endpoints are closed."""
    if state.api_key is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "admin endpoints are disabled: set CHURN_API_KEY"
        )
    check_key(state, key)


AdminKey = Annotated[None, Depends(require_admin)]
