"""Liveness, readiness and the served model's identity."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field

from churn.config.redact import redact
from serving.deps import API_KEY_HEADER, Model, State
from serving.state import ServingState

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class PredictionLogState(BaseModel):
    state: Literal["ok", "behind", "failing", "shedding"]
    queued_rows: int
    journal_rows: int
    journal_max_rows: int = Field(
        description="The journal's bound: past it /predict answers 503 (overloaded)."
    )
    dead_letters: int = Field(
        description="Rows the store refused as data, set aside (churn dead-letters list); "
        "they do not make the service degraded."
    )
    last_dead_letter: str | None = Field(description="The store's reason for the last one.")
    last_error: str | None


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "loading", "overloaded", "unservable"]
    model_version: str | None = None
    source: str | None = None
    reason: str | None = None
    fallback: str | None = None
    last_registry_check: dict[str, Any] = {}
    # The registry's champion this service does not serve (a swap check refused it): version,
    # check (lineage, feature_code, probe), reason, since.
    refused: dict[str, Any] | None = None
    prediction_log: PredictionLogState | None = None


class Version(BaseModel):
    name: str
    version: str
    alias: str
    source: str
    run_id: str | None
    data_version: str | None
    git_commit: str | None
    trained_at: str | None
    test_roc_auc: float | None
    decision_threshold: float
    scorer: str
    # The scorer's median time for one row, measured when the model was loaded (ms).
    scorer_one_row_ms: float | None = None
    loaded_at: str
    degraded_reason: str | None
    live: dict[str, Any] | None = None


@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """The process is alive (it does not look at the model). HEAD works too (probes use it)."""
    return {"status": "ok"}


# HEAD /health for probes that send it; kept out of the OpenAPI document (it is GET's twin).
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)


def _full_errors(state: ServingState, request: Request) -> bool:
    """Whether the caller reads error texts whole: with the API key, or from a development
    service that has none (everything is open there). Others read them :func:`redact`-ed:
    hosts, ports and credentials out. A missing or wrong key is no error here: the endpoint is
    open (probes call it), so the key is read, not declared as its security."""
    expected = state.api_key
    if expected is None:
        return True
    key = request.headers.get(API_KEY_HEADER)
    return key is not None and secrets.compare_digest(key.encode(), expected.encode())


@router.get(
    "/ready",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "No model loaded yet, nothing this service can run (`unservable`: "
            "`reason` says why), or the prediction log's queue is full (`overloaded`): "
            "/predict answers 503.",
        }
    },
)
async def ready(state: State, request: Request, response: Response) -> Readiness:
    """Ready when a model is loaded; ``degraded`` when it is the cached copy or the rules, when
    the plain pipeline serves it because the compiled scorer cannot, or when prediction-log
    writes fail (``reason`` says why); ``overloaded`` (503) while the log sheds load.
    ``fallback`` says what answers when the model cannot: learned rules (their columns and test
    ROC AUC) or the prior-rate rule (one score for everyone). ``refused`` names the registry's
    champion a swap check refused (another lineage, feature code, a failed probe) while the
    current model keeps serving; ``unservable`` (503) when nothing this service can run is
    left. Error texts (``reason``, ``last_registry_check.detail``, ``prediction_log.last_error``,
    ``refused.reason``) name no host, port or credential unless the caller sends the API key (or
    the service has none: development)."""
    full = _full_errors(state, request)
    model = state.model
    log = state.predlog.health()
    log_state = PredictionLogState(**log.as_dict())
    if not full:
        log_state.last_error = redact(log_state.last_error)
        log_state.last_dead_letter = redact(log_state.last_dead_letter)
    if model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="loading", prediction_log=log_state)
    refused = state.refused
    reasons = [model.status_reason] if model.status_reason else []
    if refused is not None and model.source != "none":  # unservable's reason already says it
        reasons.append(f"not serving the registry's v{refused.version}: {refused.reason}")
    if log.state in ("failing", "shedding"):
        reasons.append(f"prediction log {log.state}: {log.last_error or 'queue full'}")
    status_: Literal["ready", "degraded", "overloaded", "unservable"] = "ready"
    if model.degraded or log.state == "failing" or refused is not None:
        status_ = "degraded"
    if log.state == "shedding":
        status_ = "overloaded"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    if model.source == "none":
        status_ = "unservable"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    reason = "; ".join(reasons) or None
    check = state.last_check
    refused_fields = None if refused is None else refused.as_dict()
    if not full:
        reason = redact(reason)
        if check.get("detail"):
            check = {**check, "detail": redact(check["detail"])}
        if refused_fields is not None:
            refused_fields["reason"] = redact(refused_fields["reason"])
    return Readiness(
        status=status_,
        model_version=model.version,
        source=model.source,
        reason=reason,
        fallback=state.rules.rules_summary,
        last_registry_check=check,
        refused=refused_fields,
        prediction_log=log_state,
    )


@router.get("/version", response_model=Version)
async def version(model: Model, state: State, request: Request) -> dict[str, Any]:
    """Name, version, alias, run id, data version, git commit and training time of the model;
    ``live``: the challenger beside it (mode, canary share, the same fields, or why there is
    none), when params.yaml's live.mode is shadow or canary. ``degraded_reason`` and the
    challenger's ``status`` are redacted as ``/ready``'s errors are."""
    described = model.describe()
    live = state.live.describe() if state.live else None
    if not _full_errors(state, request):
        described["degraded_reason"] = redact(described["degraded_reason"])
        if live is not None:
            live["status"] = redact(live["status"])
            if live["challenger"] is not None:
                degraded = live["challenger"]["degraded_reason"]
                live["challenger"] = {**live["challenger"], "degraded_reason": redact(degraded)}
    return {**described, "live": live}
