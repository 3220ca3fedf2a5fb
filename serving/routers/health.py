"""Liveness, readiness and the served model's identity."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from serving.deps import Model, State

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "loading"]
    model_version: str | None = None
    source: str | None = None
    reason: str | None = None
    fallback: str | None = None
    last_registry_check: dict[str, Any] = {}


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
    loaded_at: str
    degraded_reason: str | None


@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """The process is alive (it does not look at the model)."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "No model loaded yet."}},
)
async def ready(state: State, response: Response) -> Readiness:
    """Ready when a model is loaded; ``degraded`` when it is the cached copy or the rules, or when
    the plain pipeline serves it because the compiled scorer cannot (``reason`` says why).
    ``fallback`` says what answers when the model cannot: learned rules (their columns and test
    ROC AUC) or the prior-rate rule (one score for everyone)."""
    model = state.model
    if model is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="loading")
    return Readiness(
        status="degraded" if model.degraded else "ready",
        model_version=model.version,
        source=model.source,
        reason=model.status_reason,
        fallback=state.rules.rules_summary,
        last_registry_check=state.last_check,
    )


@router.get("/version", response_model=Version)
async def version(model: Model) -> dict[str, Any]:
    """Name, version, alias, run id, data version, git commit and training time of the model."""
    return model.describe()
