"""Amazon SageMaker AI's hosting contract: ``GET /ping`` and ``POST /invocations`` (docs/cloud.md).

SageMaker starts the container as ``docker run IMAGE serve`` and sends everything to port 8080:
the image's ``serve`` command (``deploy/serve``) runs ``churn serve`` there with this contract on.

* ``GET /ping``: 200 when ``/ready`` is (ready or degraded), else 503 with ``/ready``'s status.
* ``POST /invocations``:

  - ``Content-Type: application/json``: ``/predict``'s body (``{"records": [...]}``, with
    ``explain``/``explain_top_k``), or the same with the records under ``instances``.
  - ``Content-Type: text/csv``: one customer per line, no header, the request contract's
    columns in :func:`csv_columns` order (the features; the id first when a line has one more
    cell); or a first line naming the columns (then any order, extra columns ignored). An
    empty cell is a missing value.
  - ``Accept``: ``application/json`` (the default; ``/predict``'s response) or ``text/csv``
    (``churn_probability,churn`` per record, no header, in input order).
  - The key: ``X-API-Key``, or ``X-API-Key=<key>`` in the custom attributes (``aws
    sagemaker-runtime invoke-endpoint --custom-attributes``), which SageMaker passes on as
    ``X-Amzn-SageMaker-Custom-Attributes``: ``invoke-endpoint`` sends no other header.
  - Errors: ``{"error": "<one line naming the field>"}`` with 400 (bad input), 401 (key),
    406 (``Accept``), 415 (``Content-Type``), 503 (nothing can score yet; ``Retry-After``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from serving.contracts.common import (
    Context,
    ContractError,
    error_response,
    readiness,
    unexpected,
)
from serving.contracts.sagemaker.codec import csv_columns, invocation

__all__ = ["csv_columns", "router"]


def router(context: Context) -> APIRouter:
    """SageMaker's two routes over ``/predict``'s path."""
    routes = APIRouter(tags=["sagemaker"])
    state = context.state

    @routes.get("/ping", summary="SageMaker health check: 200 when /ready is")
    async def ping(request: Request) -> Response:
        ok, status = await readiness(state, request)
        if ok:
            return Response(status_code=200)
        return error_response(503, f"not ready: {status}", {"Retry-After": "5"})

    @routes.post(
        "/invocations",
        summary="SageMaker inference: /predict's records as JSON or CSV",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def invocations(request: Request) -> Response:
        try:
            return await invocation(context, request)
        except ContractError as exc:
            return exc.response()
        except Exception as exc:
            return unexpected(state, exc).response()

    return routes
