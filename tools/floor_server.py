"""The HTTP floor for ``churn bench serve``: the service's stack, a /predict that does no work.

Served the way ``churn serve`` serves the real app (uvicorn, uvloop, httptools, FastAPI, one
worker, no access log), its ``POST /predict`` reads the body and answers a constant,
prediction-shaped JSON. Its requests per second are the most the stack gives on this machine;
the service's ratio to it is what our request path costs.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request, Response

_ANSWER = orjson.dumps(
    {
        "model_version": "0",
        "request_id": "floor",
        "predictions": [{"churn_probability": 0.5, "churn": False}],
    }
)

app = FastAPI(title="churn bench floor")


@app.get("/ready")
async def ready() -> dict[str, str]:
    """Always ready: there is nothing to load."""
    return {"status": "ready"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Read the body, answer the same constant prediction."""
    await request.body()
    return Response(_ANSWER, media_type="application/json")
