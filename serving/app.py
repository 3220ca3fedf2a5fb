"""The FastAPI application factory: routers, middleware and the lifespan that loads the model."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn.params import load_params
from churn.prediction_store import REQUEST_ID_MAX
from churn.settings import Settings, get_settings
from serving.routers import admin, health, metrics, predict
from serving.schemas import RequestParser
from serving.state import ServingState

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_BYTES_PER_RECORD = 4096


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for one project. Nothing is loaded until the lifespan starts.

    Raises:
        ValueError: outside development, when the API key or the id-hash key is missing.
    """
    settings = settings or get_settings()
    api_key, hash_key = settings.serving_secrets()
    params = load_params(settings.params_path)
    parser = RequestParser(params.dataset, settings.max_records)
    state = ServingState(settings, params, api_key, hash_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.predlog.start()
        await state.load_initial()
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise show up as multi-millisecond pauses in p99.
        gc.collect()
        gc.freeze()
        poller = None
        if settings.reload_interval_seconds > 0:
            poller = asyncio.create_task(state.poll_registry(), name="registry-poll")
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await asyncio.to_thread(state.predlog.close)

    app = FastAPI(
        title="churn-mlops prediction service",
        version="1",
        summary="Churn probabilities from the registry's champion, with documented fallbacks.",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.include_router(predict.build_router(parser))
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    _document_schemas(app, parser.openapi_schemas())
    max_body = settings.max_body_bytes or settings.max_records * _BYTES_PER_RECORD
    app.add_middleware(ServiceMiddleware, state=state, max_body=max_body)
    return app


def _document_schemas(app: FastAPI, schemas: dict[str, Any]) -> None:
    """Add schemas that routes refer to but FastAPI cannot derive (the raw-body request)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it; adding the same entries again is a no-op
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


async def _validation_error(request: Request, exc: Exception) -> Response:
    """422 naming each bad field and the reason, without echoing the (maybe huge) input."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()[:20]
    ]
    return Response(orjson.dumps({"detail": detail}), 422, media_type="application/json")


class ServiceMiddleware:
    """Request id, body-size limit (413) and per-endpoint metrics, as one plain ASGI layer."""

    def __init__(self, app: ASGIApp, state: ServingState, max_body: int) -> None:
        self.app = app
        self.metrics = state.metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {}).update(request_id=request_id, started=started)
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body:
                await _too_large(send_with_id, self.max_body)
                return
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                # A chunked body has no Content-Length: read it here, up to the limit.
                body = await _read_limited(receive, self.max_body)
                if body is None:
                    await _too_large(send_with_id, self.max_body)
                    return
                receive = _replay(body)
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(endpoint, scope["method"], str(status_code)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


# Request ids: a random per-process prefix and a counter (unique, and far cheaper than uuid4).
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        # At most the prediction log's column width (a longer id would fail the batch insert).
        if name == b"x-request-id" and 0 < len(value) <= REQUEST_ID_MAX:
            return value.decode("latin-1")
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_limited(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _too_large(send: Any, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body is larger than {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
