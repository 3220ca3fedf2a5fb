"""Vertex AI's custom-container contract (docs/cloud.md).

Vertex AI sets, in the container's environment, the port (``AIP_HTTP_PORT``: the port setting
reads it) and the two routes it calls (``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``, which
``gcloud ai models upload --container-health-route/--container-predict-route`` choose); run
outside Vertex AI (a local try), the routes are :data:`HEALTH_ROUTE` and :data:`PREDICT_ROUTE`.

* Health: 200 when ``/ready`` is (ready or degraded), else 503 with ``/ready``'s status.
* Predict: ``{"instances": [<record>, ...], "parameters": {"explain"?, "explain_top_k"?}}``
  (each instance a ``/predict`` record) -> ``{"predictions": [<prediction>, ...]}``, each
  ``/predict``'s prediction with the ``model_version`` that scored it (Vertex AI adds its own
  ``deployedModelId``; it keeps no other top-level field of the container's answer).
* The key: ``X-API-Key``; ``gcloud ai endpoints raw-predict --http-headers`` sends it
  (``predict`` sends no header: use it only where the service has no key, development).
* Errors: ``{"error": "<one line naming the field>"}`` with 400, 401, 415 or 503.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response

from serving.contracts.common import (
    Context,
    ContractError,
    authorize,
    decode_json,
    dotted,
    error_response,
    explain_options,
    header_key,
    is_json,
    json_response,
    media_type,
    predict,
    readiness,
    unexpected,
    validate,
)
from serving.schemas import PREDICTIONS, RESPONSE_VERSION, VERSION

HEALTH_ROUTE = "/vertex/health"
PREDICT_ROUTE = "/vertex/predict"


def routes_from_environment() -> tuple[str, str]:
    """The health and predict routes Vertex AI set (``AIP_HEALTH_ROUTE``,
    ``AIP_PREDICT_ROUTE``), else the local defaults.

    Raises:
        ValueError: a route that does not start with ``/``.
    """
    health = os.environ.get("AIP_HEALTH_ROUTE") or HEALTH_ROUTE
    predict_route = os.environ.get("AIP_PREDICT_ROUTE") or PREDICT_ROUTE
    for name, route in (("AIP_HEALTH_ROUTE", health), ("AIP_PREDICT_ROUTE", predict_route)):
        if not route.startswith("/"):
            raise ValueError(f"{name} must be a path starting with '/', not {route!r}")
    return health, predict_route


def router(context: Context) -> APIRouter:
    """Vertex AI's two routes over ``/predict``'s path, where the environment puts them."""
    health_route, predict_route = routes_from_environment()
    routes = APIRouter(tags=["vertex"])
    state = context.state

    async def health(request: Request) -> Response:
        ok, status = await readiness(state, request)
        if ok:
            return json_response({"status": status})
        return error_response(503, f"not ready: {status}", {"Retry-After": "5"})

    async def predict_instances(request: Request) -> Response:
        try:
            authorize(state, header_key(request))
            if not is_json(request.headers.get("content-type")):
                given = media_type(request.headers.get("content-type")) or "none"
                raise ContractError(415, f"send the body as application/json (got {given!r})")
            body = _body(context, decode_json(await request.body()))
            answered = await predict(context, request, body)
        except ContractError as exc:
            return exc.response()
        except Exception as exc:
            return unexpected(state, exc).response()
        version = answered[RESPONSE_VERSION]
        return json_response(
            {"predictions": [{VERSION: version, **p} for p in answered[PREDICTIONS]]}
        )

    routes.add_api_route(
        health_route, health, methods=["GET"], summary="Vertex AI health check (AIP_HEALTH_ROUTE)"
    )
    routes.add_api_route(
        predict_route,
        predict_instances,
        methods=["POST"],
        summary="Vertex AI prediction (AIP_PREDICT_ROUTE): instances in, predictions out",
    )
    return routes


def _body(context: Context, data: Any) -> dict[str, Any]:
    """``/predict``'s body, validated, from ``{"instances": [...], "parameters": {...}}``.

    Raises:
        ContractError: 400 naming what is wrong.
    """
    if not isinstance(data, dict) or "instances" not in data:
        raise ContractError(400, 'the body must be {"instances": [<record>, ...]}')
    body = {"records": data["instances"], **explain_options(data.get("parameters"))}
    return validate(context.parser, body, dotted("instances", "parameters"))
