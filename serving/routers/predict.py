"""``POST /predict``: score records with the served model, or with the rules if the model fails.

Two routes answer it, chosen by the ``predict_route`` setting (``CHURN_PREDICT_ROUTE``), and
both call :func:`answer`, the one function that scores, explains, logs and builds the response
(``serving.schemas.predictions``/``predict_response``, the declared ``PredictResponse``):

* ``fastapi``: the idiomatic route, as every other endpoint is written: a declared
  ``PredictRequest`` body, the ``ExplainQuery`` query model, the key, state and model as
  ``Annotated`` dependencies (``serving/deps.py``), and ``response_model=PredictResponse``,
  which FastAPI validates and serialises the returned dict against.
* ``direct`` (the default): the same endpoint as an ASGI-level handler (``_DirectRoute``), which
  validates the body with ``RequestParser`` (``json.loads``, then pydantic, as FastAPI), checks
  the key and reads the model inline (``check_key``, ``served_model``), and writes the response
  with orjson. Its OpenAPI operation is FastAPI's own (``response_model``, ``openapi_extra``,
  :func:`document_request`).

Why two: the direct route is kept only while a one-run A/B shows it earns at least 1.25x on a
figure users see (docs/architecture.md, "Library path or hand-written path"; ``churn bench
serve --routes``); ``tests/serving/test_predict_routes.py`` sends the same requests to both and
compares the answers.

Reasons for each score (``explain`` in the body or the query, ``serving/explain.py``) are a
separate step taken only when a request asks for them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from churn.prediction_store import CHALLENGER_ROLE, CHAMPION_ROLE
from serving import explain
from serving.deps import (
    API_KEY_HEADER,
    RETRY_AFTER,
    JsonBody,
    Model,
    PredictKey,
    State,
    api_key_header,
    check_json,
    check_key,
    served_model,
)
from serving.predlog import ScoredBatch
from serving.schemas import (
    ExplainQuery,
    PredictResponse,
    RequestParser,
    predict_response,
    predictions,
)
from serving.state import ServingState

log = logging.getLogger(__name__)

ROUTES = ("direct", "fastapi")  # the predict_route setting's values

# Bigger requests are scored in a worker thread so the event loop keeps answering small ones
# while the booster (which releases the GIL) works.
_THREAD_ROWS = 128

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong X-API-Key (when a key is configured)."},
    413: {"description": "The body is larger than the configured maximum."},
    415: {
        "description": "The body is not declared JSON: send it with "
        "`Content-Type: application/json` (or an `application/*+json` type)."
    },
    422: {
        "description": "The body is not JSON (`json_invalid`) or a field is invalid: "
        "`detail[].loc` names it, `msg` says why."
    },
    503: {
        "description": "The model is not loaded yet (the service is starting); nothing this "
        "service can run is loaded, or neither the model nor its fallback rules could score "
        "the request (`detail` says why); or the prediction log cannot keep the rows. Retry "
        "after `Retry-After` seconds: nothing was kept. /predict never answers 500."
    },
}
_SUMMARY = "Score customers"


async def answer(
    state: ServingState,
    model: Any,
    body: dict[str, Any],
    top_k: int | None,
    request_scope: MutableMapping[str, Any],
) -> dict[str, Any]:
    """The ``PredictResponse`` (a plain dict) of a validated body: scores by ``model`` (the
    rules if it fails; the challenger for canary customers), reasons when ``top_k`` is set,
    the prediction log, the shadow. Both routes call it.

    Raises:
        HTTPException: 503 when the prediction log cannot keep the rows (nothing acknowledged).
    """
    records = body["records"]
    n = len(records)
    features = state.feature_columns
    if n == 1:  # the common request: one record, its columns without a loop per column
        record = records[0]
        columns = {c: [record[c]] for c in features}
    else:
        columns = {c: [r[c] for r in records] for c in features}
    live = state.live  # None unless params.yaml's live.mode runs a challenger
    id_column = state.dataset.id_column
    ids = [r.get(id_column) for r in records] if id_column else [None] * n
    canary: Canary | None = None
    if live is not None and live.mode == "canary":
        canary = await _canary(state, live, model, columns, n, ids)
    proba: np.ndarray | list[float]
    decisions: np.ndarray | list[bool]
    if canary is not None:
        proba, served, decisions = canary.proba, canary.answered_by, canary.decisions
    elif n == 1:  # the common request, in floats: no one-element arrays
        one, served = _score_one(state, model, columns)
        proba, decisions = [one], [one >= served.threshold]
    elif n > _THREAD_ROWS:
        proba, served = await run_in_threadpool(_score, state, model, columns, n)
        decisions = proba >= served.threshold
    else:
        proba, served = _score(state, model, columns, n)
        decisions = proba >= served.threshold
    unseen = state.unseen.per_row(columns, n)
    if unseen is not None:
        for cols in unseen:
            for c in cols:
                state.metrics.unseen.labels(c).inc()
    reasons = None
    if top_k is not None:  # the reasons of the model that answered each record
        args = (served, canary, state.dataset, columns, n, top_k)
        if canary is not None and live is not None:  # the challenger's, never on the loop
            reasons = await live.run(_reasons, *args)
        elif n > _THREAD_ROWS:
            reasons = await run_in_threadpool(_reasons, *args)
        else:
            reasons = _reasons(*args)
    request_state = request_scope["state"]
    request_id: str = request_state["request_id"]
    batch = ScoredBatch(
        logged_at=datetime.now(UTC),
        request_id=request_id,
        model_version=served.version,
        ids=ids,
        columns=columns,
        proba=proba,
        decisions=decisions,
        latency_ms=(time.perf_counter() - request_state["started"]) * 1e3,
        unseen=unseen,
    )
    try:
        if canary is None:
            kept = state.predlog.submit(batch)
        else:
            kept = all(state.predlog.submit(part) for part in canary.log_batches(batch))
    except Exception as exc:  # the log could not take the rows: nothing is acknowledged
        log.exception("the prediction log refused request %s", request_id)
        why = f"the prediction log cannot keep the rows ({exc!r})"
        raise unanswered(state, "log_error", why) from None
    if not kept:  # never acknowledge what the log cannot keep (docs/serving.md)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the prediction log is full; retry later",
            headers={"Retry-After": "1"},
        )
    versions = None
    if live is not None and live.mode == "canary":  # each record says who answered it
        versions = canary.versions if canary is not None else [served.version] * n
    if live is not None and live.mode == "shadow":  # scored after the answer, off this path
        try:
            live.shadow(request_id, ids, columns, n)
        except Exception:  # the shadow never fails the answer
            log.exception("shadow: request %s could not be queued", request_id)
            state.metrics.shadow_failures.labels("model_error").inc()
    scored = predictions(
        proba if isinstance(proba, list) else proba.tolist(),
        decisions if isinstance(decisions, list) else decisions.tolist(),
        unseen,
        reasons,
        versions,
    )
    return predict_response(served.version, request_id, scored)


class _DirectRoute(APIRoute):
    """The route of an endpoint that takes the ``Request`` and returns its ``Response``.

    FastAPI's per-request handler (``get_request_handler``) solves the endpoint's dependencies
    (here none: it still parses the query string and looks for each parameter kind) and would
    validate a returned value; this endpoint needs neither, so the route calls it directly
    (``get_route_handler`` is FastAPI's documented hook for a custom route class). Nor does it
    need what FastAPI's ``request_response`` wraps around a handler: two ``AsyncExitStack``
    for dependencies with ``yield`` and a second pass of the exception handlers. An exception
    the endpoint raises (401, 422, 503) reaches the app's ``ExceptionMiddleware``, which
    answers it with the same handlers. The operation in the OpenAPI document, the exception
    handlers and the middleware are FastAPI's own, as for any route.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        endpoint = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def add_route(app: FastAPI, state: ServingState, parser: RequestParser, route: str) -> None:
    """Add ``POST /predict`` for one request contract (built from the dataset config): the
    ``route`` the settings name (:data:`ROUTES`)."""
    if route == "fastapi":
        app.include_router(fastapi_router(parser))
    elif route == "direct":
        add_direct_route(app, state, parser)
        document_request(app, parser)
    else:  # the settings refuse any other value; a caller passing one is a bug
        raise ValueError(f"predict_route must be one of {ROUTES}, not {route!r}")


def fastapi_router(parser: RequestParser) -> APIRouter:
    """``POST /predict`` the idiomatic FastAPI way (``predict_route: fastapi``)."""
    router = APIRouter(tags=["predict"])

    async def predict(
        request: Request,
        state: State,
        _: PredictKey,
        __: JsonBody,
        model: Model,
        body: Any,
        query: Annotated[ExplainQuery, Query()],
    ) -> dict[str, Any]:
        """Churn probability and decision for each record, in input order."""
        try:
            return await answer(state, model, body, explain.options(body, query), request.scope)
        except (HTTPException, RequestValidationError):
            raise
        except Exception as exc:
            raise last_resort(state, exc) from None

    # The body's type is built at run time from params.yaml's dataset block, so it is set here
    # rather than written in the signature (this module's annotations are strings).
    predict.__annotations__["body"] = Annotated[parser.request, Body()]
    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        # Optional fields the answer does not carry stay out, as in the direct route's body.
        response_model_exclude_unset=True,
        responses=_ERRORS,
        summary=_SUMMARY,
    )
    return router


def add_direct_route(app: FastAPI, state: ServingState, parser: RequestParser) -> None:
    """Add the direct ``POST /predict`` (``predict_route: direct``) to the app, ahead of the
    routes it already has.

    On the app rather than in an ``APIRouter``: FastAPI matches an included router's routes
    through the router (twice: to select it, then the route in it), a route on the app once.
    And first: Starlette tries routes in order, and the documentation's routes made with the
    app (``/openapi.json``, the assets, ``/docs``, ``/redoc``) would be tried in vain before
    every prediction. ``openapi_extra`` names the body (``PredictRequest``), the query and the
    key; :func:`document_request` adds the body's schemas.
    """

    async def predict(request: Request) -> Response:
        """Churn probability and decision for each record, in input order."""
        try:
            return await predict_direct(request)
        except (HTTPException, RequestValidationError):
            raise
        except Exception as exc:
            raise last_resort(state, exc) from None

    async def predict_direct(request: Request) -> Response:
        if state.api_key is not None:
            check_key(state, request.headers.get(API_KEY_HEADER))
        for name, value in request.scope["headers"]:  # 415 unless declared JSON
            if name == b"content-type":
                check_json(value)
                break
        else:
            check_json(None)
        model = served_model(state)
        try:
            body = parser.validate(await request.body())
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False, include_context=False)
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from None
        # Only a request with explain options (body keys or a query string) pays for them.
        top_k = (
            explain.options(body, explain.query_of(request))
            if len(body) > 1 or request.scope["query_string"]
            else None
        )
        content = orjson.dumps(await answer(state, model, body, top_k, request.scope))
        return Response(content, media_type="application/json")

    query = ExplainQuery.model_json_schema()
    routes = app.router.routes
    before = len(routes)
    app.router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        route_class_override=_DirectRoute,
        tags=["predict"],
        response_model=PredictResponse,
        responses=_ERRORS,
        summary=_SUMMARY,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
                },
            },
            "security": [{api_key_header.scheme_name: []}],
            "parameters": [  # from the query model the FastAPI route declares
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {k: v for k, v in field.items() if k != "description"},
                    "description": field["description"],
                }
                for name, field in query["properties"].items()
            ],
        },
    )
    added = routes[before:]
    del routes[before:]
    routes[0:0] = added


def document_request(app: FastAPI, parser: RequestParser) -> None:
    """Add the request's schemas (``PredictRequest``, ``CustomerRecord``) to the app's OpenAPI
    document: FastAPI cannot derive them, since the endpoint declares no body parameter."""
    schemas = parser.openapi_schemas()
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI caches it; adding the same entries again is a no-op
        document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass
class Canary:
    """A request split between the champion and the challenger (``live.mode: canary``)."""

    proba: np.ndarray
    decisions: np.ndarray
    versions: list[str]  # per record: the version that answered
    answered_by: Any  # the model the response's model_version names (the challenger if all)
    rows: list[int]  # the challenger's records
    champion_version: str
    challenger_version: str
    challenger: Any = None  # the challenger's served model (its explainer, for its records)

    def log_batches(self, batch: ScoredBatch) -> list[ScoredBatch]:
        """The request's log rows as one batch per role (each with its model version)."""
        n = len(self.proba)
        mine = set(self.rows)
        parts = []
        for role, idx, version in (
            (CHALLENGER_ROLE, self.rows, self.challenger_version),
            (CHAMPION_ROLE, [i for i in range(n) if i not in mine], self.champion_version),
        ):
            if not idx:
                continue
            parts.append(
                replace(
                    batch,
                    model_version=version,
                    role=role,
                    ids=[batch.ids[i] for i in idx],
                    columns={c: [v[i] for i in idx] for c, v in batch.columns.items()},
                    proba=np.asarray(batch.proba)[idx],
                    decisions=np.asarray(batch.decisions)[idx],
                    unseen=None if batch.unseen is None else [batch.unseen[i] for i in idx],
                )
            )
        return parts


async def _canary(
    state: Any, live: Any, model: Any, columns: dict[str, list[Any]], n: int, ids: list[Any]
) -> Canary | None:
    """Score the canary customers with the challenger, the others with the champion; None when
    no record falls in the canary (the usual path answers), or the champion is the rules.

    The challenger scores in the canary's executor (``LiveChallenger.run``), never on the event
    loop; the champion's records as on the usual path (in a worker thread when many).
    """
    challenger = live.model
    if challenger is None or model.source == "rules":
        return None
    hash_ids = state.predlog.store.hash_ids
    hashes = await run_in_threadpool(hash_ids, ids) if n > _THREAD_ROWS else hash_ids(ids)
    rows = live.canary_rows(hashes)
    if not rows:
        return None
    proba = np.empty(n)
    decisions = np.empty(n, dtype=bool)
    versions = [model.version] * n
    try:
        part = {c: [v[i] for i in rows] for c, v in columns.items()}
        mine = await live.run(_challenger_scores, challenger, part, len(rows))
    except Exception:
        log.exception(
            "challenger v%s failed on a canary request; the champion answers", challenger.version
        )
        state.metrics.canary_fallbacks.inc(len(rows))
        return None
    champion_version = model.version
    if len(rows) < n:
        mine_set = set(rows)
        others = [i for i in range(n) if i not in mine_set]
        part = {c: [v[i] for i in others] for c, v in columns.items()}
        if len(others) > _THREAD_ROWS:
            theirs, served = await run_in_threadpool(_score, state, model, part, len(others))
        else:
            theirs, served = _score(state, model, part, len(others))
        proba[others] = theirs
        decisions[others] = theirs >= served.threshold
        for i in others:
            versions[i] = served.version
        champion_version = served.version  # the rules, if the champion failed on them
    else:
        served = challenger
    proba[rows] = mine
    decisions[rows] = mine >= challenger.threshold
    for i in rows:
        versions[i] = challenger.version
    return Canary(
        proba, decisions, versions, served, rows, champion_version, challenger.version, challenger
    )


def _challenger_scores(challenger: Any, columns: dict[str, list[Any]], n: int) -> np.ndarray:
    """The challenger's scores of the canary's records (in the canary's executor).

    Raises:
        ValueError: not one finite score per record (a NaN is a failure, never a score).
    """
    mine = np.asarray(challenger.scorer.score(columns, n))
    if mine.shape != (n,) or not np.all(np.isfinite(mine)):
        raise ValueError(f"the challenger returned {mine.shape} scores, or non-finite ones")
    return mine


def _reasons(
    served: Any,
    canary: Canary | None,
    dataset: Any,
    columns: dict[str, list[Any]],
    n: int,
    top_k: int,
) -> list[Any]:
    """Each record's reasons from the model that answered it: in a canary request split between
    the two models, the challenger's records get the challenger's."""
    reasons = explain.explain_rows(served, dataset, columns, n, top_k)
    if canary is None or served is canary.challenger or not canary.rows:
        return reasons
    part = {c: [v[i] for i in canary.rows] for c, v in columns.items()}
    mine = explain.explain_rows(canary.challenger, dataset, part, len(canary.rows), top_k)
    for i, reason in zip(canary.rows, mine, strict=True):
        reasons[i] = reason
    return reasons


def _score(state: Any, model: Any, columns: dict[str, list[Any]], n: int) -> tuple[np.ndarray, Any]:
    """Scores from ``model``; if it raises, from the rules (counted as a fallback)."""
    if model.source == "rules":
        state.metrics.fallbacks.labels("no_model").inc(n)
    try:
        proba = model.scorer.score(columns, n)
        if proba.shape != (n,) or not np.isfinite(proba).all():
            raise ValueError(f"the model returned {proba.shape} scores, or non-finite ones")
        return proba, model
    except Exception:
        return _rules(state, model, columns, n), state.rules


def _score_one(state: Any, model: Any, columns: dict[str, list[Any]]) -> tuple[float, Any]:
    """``_score`` of one record as a float, through the scorer's ``score_one`` when it has
    one (the compiled replay), with the same fallback to the rules."""
    score_one = getattr(model.scorer, "score_one", None)
    if score_one is None or model.source == "rules":
        proba, served = _score(state, model, columns, 1)
        return float(proba[0]), served
    try:
        one = score_one(columns)
        if not math.isfinite(one):
            raise ValueError(f"the model returned a non-finite score ({one})")
        return one, model
    except Exception:
        return float(_rules(state, model, columns, 1)[0]), state.rules


def _rules(state: Any, model: Any, columns: dict[str, list[Any]], n: int) -> np.ndarray:
    """The rules' scores when ``model`` raised (in an ``except`` block: logged with it).

    Raises:
        HTTPException: 503 with ``Retry-After`` when the rules fail too (or are the model
            that failed): nothing could score the request.
    """
    log.exception("model v%s failed on a request; answering with the rules", model.version)
    rules = state.rules
    if model.source != "rules":
        state.metrics.fallbacks.labels("model_error").inc(n)
        try:
            proba = np.asarray(rules.scorer.score(columns, n), dtype=float)
            if proba.shape != (n,) or not np.isfinite(proba).all():
                raise ValueError(f"the rules returned {proba.shape} scores, or non-finite ones")
            return proba
        except Exception as exc:
            log.exception("the fallback rules failed on the request too")
            why = f"v{model.version} and then the {rules.rules_summary} failed ({exc!r})"
    else:
        why = f"the {rules.rules_summary} failed"
    raise unanswered(state, "rules_error", f"neither the model nor the rules could score: {why}")


def unanswered(state: Any, reason: str, detail: str) -> HTTPException:
    """The 503 of a request nothing could answer (counted by ``reason``), with ``Retry-After``."""
    state.metrics.unanswered.labels(reason).inc()
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, detail[:500], headers={"Retry-After": RETRY_AFTER}
    )


def last_resort(state: Any, exc: Exception) -> HTTPException:
    """The 503 of an exception nothing else handled (a bug): logged with its traceback and
    counted (``churn_predict_unanswered_total{reason="unexpected"}``), never a 500."""
    log.error("/predict failed unexpectedly; answering 503", exc_info=exc)
    return unanswered(
        state, "unexpected", f"the request could not be answered ({type(exc).__name__}); retry"
    )
