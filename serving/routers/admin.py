"""Operator actions (always behind the API key)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from serving.deps import AdminKey, State

router = APIRouter(prefix="/admin", tags=["admin"])


class Reload(BaseModel):
    # refused: the registry names a version a swap check refused (``detail`` says why); the
    # current model stays (docs/serving.md, "Swap checks").
    outcome: Literal["unchanged", "swapped", "refused", "failed"]
    previous: str | None
    current: str | None
    detail: str = ""


@router.post("/reload", response_model=Reload, responses={401: {}, 403: {}})
async def reload(state: State, _: AdminKey) -> Reload:
    """Check the registry now and swap to the champion if it changed and this service can run
    it (no request fails)."""
    result = await state.reload()
    return Reload(**result.__dict__)
