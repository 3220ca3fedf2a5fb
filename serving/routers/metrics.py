"""Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import State

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: State) -> Response:
    """Requests and latency per endpoint, score distribution, model version, fallbacks, the
    prediction log's state."""
    state.metrics.count_requests()
    state.metrics.set_log_health(state.predlog.health())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
