"""The cloud ML platforms' request contracts, each a thin adapter over ``/predict``'s one path.

:data:`CONTRACTS` is the one table of them: a name (what ``CHURN_SERVING_CONTRACTS`` lists) and
the package that adapts it. Each package has a ``router(context)`` that returns its routes; the
routes turn the platform's request into ``/predict``'s body, and its answer back, and nothing
else: the key, the validation (``RequestParser``), the scoring, the canary, the reasons, the
fallback rules and the prediction log are ``/predict``'s own (:mod:`serving.contracts.common`).

The packages are imported by name, only when switched on: deleting one and its row here leaves
a working service (``tests/serving/contracts/test_registry.py``); nothing else imports them
(``pyproject.toml``'s import-linter contract). Their guide: docs/cloud.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the table and `selected` stay light: `churn serve` checks the setting first
    from fastapi import FastAPI

    from serving.contracts.common import Context

CONTRACTS: dict[str, str] = {
    "sagemaker": "serving.contracts.sagemaker",  # GET /ping, POST /invocations
    "vertex": "serving.contracts.vertex",  # AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE
    "oip": "serving.contracts.oip",  # the Open Inference Protocol V2: /v2/...
}


def selected(setting: str) -> list[str]:
    """The contracts a ``serving_contracts`` value names, in the table's order.

    Raises:
        ValueError: a name the table does not have (the message lists the ones it has).
    """
    names = {name.strip().lower() for name in setting.split(",") if name.strip()}
    unknown = sorted(names - CONTRACTS.keys())
    if unknown:
        raise ValueError(
            f"CHURN_SERVING_CONTRACTS names {', '.join(map(repr, unknown))}, which this service "
            f"does not have; choose among {', '.join(CONTRACTS)} (comma-separated)"
        )
    return [name for name in CONTRACTS if name in names]


def add_contracts(app: FastAPI, context: Context, names: list[str]) -> None:
    """Include each named contract's routes in ``app``.

    Raises:
        ValueError: a contract's route is one the service already answers (e.g. Vertex AI's
            predict route set to ``/predict``): the first would hide the other.
    """
    from fastapi.routing import APIRoute

    for name in names:
        router = importlib.import_module(CONTRACTS[name]).router(context)
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in sorted(route.methods or ()):
                if _answered(app, route.path, method):
                    raise ValueError(
                        f"the {name} contract's route {method} {route.path} is already one of "
                        "this service's routes; give the platform another path"
                    )
        app.include_router(router)


def _answered(app: FastAPI, path: str, method: str) -> bool:
    """Whether one of ``app``'s routes already answers ``method path`` (Starlette's own match;
    a path with ``{parameters}`` is taken as written)."""
    from starlette.routing import Match

    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)
