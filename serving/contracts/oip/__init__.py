"""The Open Inference Protocol V2 (REST) that KServe, Seldon MLServer and NVIDIA Triton speak
(docs/cloud.md): a KServe ``InferenceService`` with ``protocolVersion: v2`` sends it.

* ``GET /v2/health/live``: 200 while the process runs; ``GET /v2/health/ready`` and
  ``GET /v2/models/{name}/ready``: 200 when ``/ready`` is (ready or degraded), else 503.
* ``GET /v2``: the server's metadata; ``GET /v2/models/{name}[/versions/{v}]``: the model's
  (``name``, ``versions``, ``platform``, ``inputs`` and ``outputs`` with datatype and shape).
* ``POST /v2/models/{name}[/versions/{v}]/infer``: **columnar** inputs, one tensor per column
  of ``/predict``'s record (the id optional), each of shape ``[n]`` (or ``[n, 1]``) and the
  metadata's datatype (``BYTES`` for text); element ``i`` of every input is record ``i``. It is
  the layout of KServe's and MLServer's pandas codec. ``parameters``: ``explain`` and
  ``explain_top_k`` as ``/predict``'s body takes them; ``outputs`` may pick among the outputs.
  The answer: ``model_name``, ``model_version``, ``id`` (the request's, else the request id
  that the prediction log keeps) and ``outputs``: ``churn_probability`` (FP64) and ``churn``
  (BOOL), plus as BYTES the ``model_version`` per record (canary), ``unseen_categories`` and
  ``explanation`` (JSON text) when ``/predict``'s predictions carry them.
* The name is the served lineage's (``params.yaml``'s ``dataset.name``, else
  ``CHURN_MODEL_NAME``); another name, or a version that is not the one served: 404.
* The key: ``X-API-Key`` on metadata and inference, as ``/predict``; health is open.
* Errors: ``{"error": "<one line naming the tensor or field>"}`` with 400, 401, 404, 415, 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from churn.config.identity import identity
from serving.contracts.common import (
    Context,
    ContractError,
    authorize,
    decode_json,
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
from serving.contracts.oip import tensors
from serving.schemas import RESPONSE_VERSION

PREFIX = "/v2"


def router(context: Context) -> APIRouter:
    """The protocol's health, metadata and inference routes over ``/predict``'s path."""
    routes = APIRouter(prefix=PREFIX, tags=["open inference protocol v2"])
    state = context.state
    name = context.model_name

    def check_model(model_name: str, version: str | None = None) -> None:
        if model_name != name:
            raise ContractError(404, f"unknown model {model_name!r}: this server serves {name!r}")
        served = state.model.version if state.model is not None else None
        if version is not None and version != served:
            raise ContractError(
                404, f"model {name!r} has no version {version!r} here: it serves {served!r}"
            )

    async def ready_response(request: Request) -> Response:
        ok, _ = await readiness(state, request)
        if ok:
            return json_response({"ready": True})
        return Response(
            b'{"ready":false}', 503, {"Retry-After": "5"}, media_type="application/json"
        )

    @routes.get("", summary="Server metadata")
    async def server_metadata() -> Response:
        return json_response({"name": identity().project, "version": "2", "extensions": []})

    @routes.get("/health/live", summary="Liveness")
    async def live() -> Response:
        return json_response({"live": True})

    @routes.get("/health/ready", summary="Readiness: /ready's verdict")
    async def ready(request: Request) -> Response:
        return await ready_response(request)

    @routes.get("/models/{model_name}/ready", summary="Model readiness")
    async def model_ready(model_name: str, request: Request) -> Response:
        try:
            check_model(model_name)
        except ContractError as exc:
            return exc.response()
        return await ready_response(request)

    async def model_metadata(model_name: str, request: Request, version: str | None) -> Response:
        try:
            authorize(state, header_key(request))
            check_model(model_name, version)
        except ContractError as exc:
            return exc.response()
        served = state.model.version if state.model is not None else None
        return json_response(tensors.metadata(state.dataset, name, served))

    @routes.get("/models/{model_name}", summary="Model metadata: inputs and outputs")
    async def metadata(model_name: str, request: Request) -> Response:
        return await model_metadata(model_name, request, None)

    @routes.get("/models/{model_name}/versions/{version}", summary="Model version metadata")
    async def version_metadata(model_name: str, version: str, request: Request) -> Response:
        return await model_metadata(model_name, request, version)

    async def inference(model_name: str, request: Request, version: str | None) -> Response:
        try:
            authorize(state, header_key(request))
            check_model(model_name, version)
            content_type = request.headers.get("content-type")
            if not is_json(content_type):
                given = media_type(content_type) or "none"
                raise ContractError(415, f"send the body as application/json (got {given!r})")
            found, parameters, requested, given_id = tensors.records(
                decode_json(await request.body())
            )
            body = {"records": found, **explain_options(parameters)}
            answered = await predict(
                context, request, validate(context.parser, body, tensors.where)
            )
        except ContractError as exc:
            return exc.response()
        except Exception as exc:
            return unexpected(state, exc).response()
        return json_response(response(name, answered, requested, given_id, request))

    @routes.post("/models/{model_name}/infer", summary="Inference: one tensor per column")
    async def infer(model_name: str, request: Request) -> Response:
        return await inference(model_name, request, None)

    @routes.post(
        "/models/{model_name}/versions/{version}/infer", summary="Inference on the served version"
    )
    async def version_infer(model_name: str, version: str, request: Request) -> Response:
        return await inference(model_name, request, version)

    return routes


def response(
    name: str,
    answered: dict[str, Any],
    requested: list[str] | None,
    given_id: str | None,
    request: Request,
) -> dict[str, Any]:
    """The inference response of ``/predict``'s answer."""
    return {
        "model_name": name,
        "model_version": answered[RESPONSE_VERSION],
        "id": given_id if given_id is not None else request.scope["state"]["request_id"],
        "outputs": tensors.outputs(answered, requested),
    }
