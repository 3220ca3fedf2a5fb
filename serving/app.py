"""The FastAPI application factory: routers, middleware and the lifespan that loads the model."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from churn.config.identity import identity
from churn.config.params import load_params
from churn.config.settings import Settings, get_settings
from serving.contracts import add_contracts, selected
from serving.contracts.common import Context
from serving.docs import create_documented_app, document_examples
from serving.middleware import ServiceMiddleware
from serving.routers import admin, health, metrics, predict
from serving.schemas import RequestParser
from serving.state import ServingState

log = logging.getLogger(__name__)

_BYTES_PER_RECORD = 4096


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for one project. Nothing is loaded until the lifespan starts.

    Raises:
        ValueError: outside development, when the API key or the id-hash key is missing; a
            cloud contract (``serving_contracts``) the service does not have, or whose route
            is taken.
    """
    settings = settings or get_settings()
    api_key, hash_key = settings.serving_secrets()
    contracts = selected(settings.serving_contracts)  # an unknown name fails before any load
    params = load_params(settings.params_path)
    parser = RequestParser(params.dataset, settings.max_records)
    state = ServingState(settings, params, api_key, hash_key)

    async def load_then_poll() -> None:
        """The first load, then the registry poller: in the background, so the port accepts
        connections from the start (``/health`` 200, ``/ready`` and ``/predict`` 503 while the
        model loads, which can take a minute when the registry hangs)."""
        try:
            await state.load_initial()
        except Exception:  # load_initial falls back on its own; this is a bug, said loudly
            log.exception("loading the model failed; /ready stays 503 loading")
            return
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise show up as multi-millisecond pauses in p99.
        gc.collect()
        gc.freeze()
        if settings.reload_interval_seconds > 0:
            await state.poll_registry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.predlog.start()
        if state.live is not None:
            state.live.start()
        background = asyncio.create_task(load_then_poll(), name="model-load-and-poll")
        try:
            yield
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            if state.live is not None:  # its last rows go to the log before the log closes
                await asyncio.to_thread(state.live.close)
            await asyncio.to_thread(state.predlog.close)

    app = create_documented_app(
        title=identity().api_title,
        version="1",
        summary="Churn probabilities from the registry's champion, with documented fallbacks.",
        lifespan=lifespan,
    )
    app.state.serving = state
    predict.add_route(app, state, parser, settings.predict_route)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    add_contracts(app, Context(state, parser, settings), contracts)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    document_examples(app, state)
    max_body = settings.max_body_bytes or settings.max_records * _BYTES_PER_RECORD
    app.add_middleware(ServiceMiddleware, metrics=state.metrics, max_body=max_body)
    return app


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """The net under every route (Starlette's server-error handler): ``/predict`` answers 503
    with ``Retry-After``, never 500 (its routes already map their own failures: this catches
    what happens around them); other endpoints keep the plain 500. Logged with the traceback."""
    log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    if request.url.path == "/predict":
        request.app.state.serving.metrics.unanswered.labels("unexpected").inc()
        content = {"detail": f"the request could not be answered ({type(exc).__name__}); retry"}
        return Response(
            orjson.dumps(content), 503, {"Retry-After": "5"}, media_type="application/json"
        )
    return Response(orjson.dumps({"detail": "Internal Server Error"}), 500)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 naming each bad field and the reason, without echoing the (maybe huge) input."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()[:20]
    ]
    return Response(orjson.dumps({"detail": detail}), 422, media_type="application/json")
