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
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serving.deps import ApiKey, Model, State
from serving.predlog import ScoredBatch
from serving.schemas import PredictResponse

log = logging.getLogger(__name__)

# Bigger requests are scored in a worker thread so the event loop keeps answering small ones
# while the booster (which releases the GIL) works.
_THREAD_ROWS = 128

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body cannot be decoded (not UTF-8 JSON)."},
    401: {"description": "Missing or wrong X-API-Key (when a key is configured)."},
    413: {"description": "The body is larger than the configured maximum."},
    422: {"description": "A field is invalid: `detail[].loc` names it, `msg` says why."},
}


def build_router(request_model: type[BaseModel]) -> APIRouter:
    """The predict router for one request model (built from the dataset config)."""
    router = APIRouter(tags=["predict"])

    async def predict(
        body: request_model,  # type: ignore[valid-type]
        request: Request,
        state: State,
        model: Model,
        _: ApiKey,
    ) -> Response:
        """Churn probability and decision for each record, in input order."""
        records = body.records  # type: ignore[attr-defined]
        n = len(records)
        columns = {c: [getattr(r, c) for r in records] for c in state.dataset.feature_columns}
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
        state.predlog.submit(
            ScoredBatch(
                logged_at=datetime.now(UTC),
                request_id=request_id,
                model_version=served.version,
                ids=[getattr(r, state.dataset.id_column) for r in records],
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
