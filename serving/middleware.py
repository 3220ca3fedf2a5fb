"""The service's one ASGI middleware: request id, body-size limit (413), per-endpoint metrics.

Plain ASGI rather than ``BaseHTTPMiddleware`` (which wraps every request in a task group and
memory stream) or several ``@app.middleware("http")`` layers: one pass per request, and the
request id and arrival time go into ``scope["state"]`` for the routes (``request.state``).
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn.prediction_store import REQUEST_ID_MAX
from serving.metrics import ServingMetrics

REQUEST_ID_HEADER = "X-Request-ID"


class ServiceMiddleware:
    """Request id, body-size limit (413) and per-endpoint metrics, as one plain ASGI layer."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, length = _read_headers(scope)
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
            self.metrics.count_request(
                endpoint, scope["method"], status_code, time.perf_counter() - started
            )


# Request ids: a random per-process prefix and a counter (unique, and far cheaper than uuid4).
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def _read_headers(scope: Scope) -> tuple[str, int | None]:
    """The request id (the client's ``X-Request-ID`` if usable, else a new one) and the
    ``Content-Length`` (None when absent or not a number), in one pass over the headers."""
    request_id: str | None = None
    length: int | None = None
    seen_length = False
    for name, value in scope["headers"]:
        # At most the prediction log's column width (a longer id would fail the batch insert),
        # and visible ASCII only: other bytes cannot come back unchanged in a header (a UTF-8
        # id was echoed garbled); such an id is replaced, like a too long one.
        if (
            name == b"x-request-id"
            and request_id is None
            and 0 < len(value) <= REQUEST_ID_MAX
            and all(0x21 <= b <= 0x7E for b in value)
        ):
            request_id = value.decode("ascii")
        elif name == b"content-length" and not seen_length:
            seen_length = True
            try:  # noqa: SIM105 - contextlib.suppress is two more Python calls per request
                length = int(value)
            except ValueError:  # not a number: as if absent
                pass
    return request_id or f"{_ID_PREFIX}-{next(_ID_COUNTER):x}", length


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
