"""``POST /predict``: score records with the served model, or with the rules if the model fails."""

# No ``from __future__ import annotations`` here: the request model is built at run time from
# the dataset config, and FastAPI must see the real class in the endpoint's signature.

import logging
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from serving.deps import API_KEY_HEADER, api_key_header, check_key, served_model
from serving.predlog import ScoredBatch
from serving.schemas import PredictResponse, RequestParser
from serving.state import ServingState

log = logging.getLogger(__name__)

# Bigger requests are scored in a worker thread so the event loop keeps answering small ones
# while the booster (which releases the GIL) works.
_THREAD_ROWS = 128

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong X-API-Key (when a key is configured)."},
    413: {"description": "The body is larger than the configured maximum."},
    422: {
        "description": "The body is not JSON (`json_invalid`) or a field is invalid: "
        "`detail[].loc` names it, `msg` says why."
    },
    503: {"description": "The model is not loaded yet (the service is starting)."},
}


def build_router(parser: RequestParser) -> APIRouter:
    """The predict router for one request contract (built from the dataset config).

    The endpoint reads the raw body and validates it with ``parser`` in one pass instead of
    declaring a body parameter (FastAPI would parse the JSON in Python, then validate), and it
    checks the key and reads the model inline instead of through dependencies: together that
    took a third off a one-record request and half off a 1000-record one (docs/serving.md).
    ``openapi_extra`` documents the body and the key, so ``/docs`` and ``/openapi.json`` show
    the same contract as a declared body would.
    """
    router = APIRouter(tags=["predict"])

    async def predict(request: Request) -> Response:
        """Churn probability and decision for each record, in input order."""
        state: ServingState = request.app.state.serving
        if state.api_key is not None:
            check_key(state, request.headers.get(API_KEY_HEADER))
        model = served_model(state)
        try:
            records = parser.parse(await request.body())
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None
        n = len(records)
        columns = {c: [r[c] for r in records] for c in state.dataset.feature_columns}
        if n > _THREAD_ROWS:
            proba, served = await run_in_threadpool(_score, state, model, columns, n)
        else:
            proba, served = _score(state, model, columns, n)
        decisions = proba >= served.threshold
        unseen = state.unseen.per_row(columns, n)
        proba_list = proba.tolist()
        decision_list = decisions.tolist()
        if unseen is None:
            predictions = [
                {"churn_probability": p, "churn": d}
                for p, d in zip(proba_list, decision_list, strict=True)
            ]
        else:
            predictions = [
                {"churn_probability": p, "churn": d, "unseen_categories": u}
                for p, d, u in zip(proba_list, decision_list, unseen, strict=True)
            ]
            for cols in unseen:
                for c in cols:
                    state.metrics.unseen.labels(c).inc()
        request_id: str = request.scope["state"]["request_id"]
        started: float = request.scope["state"]["started"]
        id_column = state.dataset.id_column
        state.predlog.submit(
            ScoredBatch(
                logged_at=datetime.now(UTC),
                request_id=request_id,
                model_version=served.version,
                ids=[r.get(id_column) for r in records],
                columns=columns,
                proba=proba,
                decisions=decisions,
                latency_ms=(time.perf_counter() - started) * 1e3,
                unseen=unseen,
            )
        )
        content = orjson.dumps(
            {"model_version": served.version, "request_id": request_id, "predictions": predictions}
        )
        return Response(content, media_type="application/json")

    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=_ERRORS,
        summary="Score customers",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
                },
            },
            "security": [{api_key_header.scheme_name: []}],
        },
    )
    return router


def _score(state: Any, model: Any, columns: dict[str, list[Any]], n: int) -> tuple[np.ndarray, Any]:
    """Scores from ``model``; if it raises, from the rules (counted as a fallback)."""
    if model.source == "rules":
        state.metrics.fallbacks.labels("no_model").inc(n)
    try:
        proba = model.scorer.score(columns, n)
        if proba.shape != (n,) or not np.all(np.isfinite(proba)):
            raise ValueError(f"the model returned {proba.shape} scores, or non-finite ones")
        return proba, model
    except Exception:
        log.exception("model v%s failed on a request; answering with the rules", model.version)
        state.metrics.fallbacks.labels("model_error").inc(n)
        return state.rules.scorer.score(columns, n), state.rules
