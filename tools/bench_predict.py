"""``python -m tools.bench_predict``: ``/predict`` as shipped against the idiomatic FastAPI version.

Issue #9's rule: write ``/predict`` the idiomatic FastAPI way unless that costs more than 10 % of
single-row throughput. This measures it. The idiomatic version below is the same endpoint (same
scoring, fallback, unseen-level flags and prediction log) with a declared ``PredictRequest``
body, ``State``/``Model``/API-key dependencies and a returned dict that FastAPI validates and
serialises against ``response_model=PredictResponse``. Both apps run behind the same middleware,
one uvicorn worker each, on the same project; wrk sends the same bodies, alternating A/B
(method of ``churn bench serve``), and the medians and per-round ratios are printed::

    uv run python -m tools.bench_predict run -C <trained project> --rounds 7
"""

# No ``from __future__ import annotations``: the request model is built at run time from the
# dataset config, and FastAPI must see the real class in the endpoint's signature.

import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from rich.console import Console
from rich.table import Table

from tools.bench_serve import Load, records, server, wrk
from tools.fork import CHURN, free_port

console = Console()
app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0] if __doc__ else None)
ProjectDir = Annotated[Path, typer.Option("--project-dir", "-C", help="A trained project.")]


def idiomatic_router(parser: Any) -> APIRouter:
    """``POST /predict`` written the usual FastAPI way (for the comparison only)."""
    from starlette.concurrency import run_in_threadpool

    from serving.deps import Model, State, api_key_header, check_key
    from serving.predlog import ScoredBatch
    from serving.routers.predict import _ERRORS, _THREAD_ROWS, _score
    from serving.schemas import PredictResponse

    async def require_key(
        state: State, key: Annotated[str | None, Security(api_key_header)]
    ) -> None:
        if state.api_key is not None:
            check_key(state, key)

    api_key = Annotated[None, Depends(require_key)]
    request_model = parser.request
    router = APIRouter(tags=["predict"])

    async def predict(
        body: request_model,  # type: ignore[valid-type]
        request: Request,
        state: State,
        model: Model,
        _: api_key,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        records_: list[dict[str, Any]] = body["records"]
        n = len(records_)
        columns = {c: [r[c] for r in records_] for c in state.dataset.feature_columns}
        if n > _THREAD_ROWS:
            proba, served = await run_in_threadpool(_score, state, model, columns, n)
        else:
            proba, served = _score(state, model, columns, n)
        decisions = proba >= served.threshold
        unseen = state.unseen.per_row(columns, n)
        if unseen is None:
            predictions = [
                {"churn_probability": p, "churn": d}
                for p, d in zip(proba.tolist(), decisions.tolist(), strict=True)
            ]
        else:
            predictions = [
                {"churn_probability": p, "churn": d, "unseen_categories": u}
                for p, d, u in zip(proba.tolist(), decisions.tolist(), unseen, strict=True)
            ]
            for cols in unseen:
                for c in cols:
                    state.metrics.unseen.labels(c).inc()
        request_id: str = request.state.request_id
        state.predlog.submit(
            ScoredBatch(
                logged_at=datetime.now(UTC),
                request_id=request_id,
                model_version=served.version,
                ids=[r.get(state.dataset.id_column) for r in records_],
                columns=columns,
                proba=proba,
                decisions=decisions,
                latency_ms=(time.perf_counter() - request.state.started) * 1e3,
                unseen=unseen,
            )
        )
        return {
            "model_version": served.version,
            "request_id": request_id,
            "predictions": predictions,
        }

    router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=PredictResponse,
        responses=_ERRORS,
        summary="Score customers",
    )
    return router


def idiomatic_app(project_dir: Path) -> FastAPI:
    """The service with the idiomatic ``/predict`` in place of the shipped one."""
    from churn.config.params import load_params
    from churn.config.settings import get_settings
    from serving.app import create_app
    from serving.schemas import RequestParser

    settings = get_settings(project_dir=project_dir)
    service = create_app(settings)
    routes = service.router.routes
    at = next(i for i, r in enumerate(routes) if _serves_predict(r))
    del routes[at]
    dataset = load_params(settings.params_path).dataset
    service.include_router(idiomatic_router(RequestParser(dataset, settings.max_records)))
    routes.insert(at, routes.pop())  # where the shipped one was: routes are tried in order
    return service


def _serves_predict(route: Any) -> bool:
    """The shipped ``/predict`` route, or the included router that holds it (FastAPI >= 0.150
    keeps an included router as one entry)."""
    inner = getattr(getattr(route, "original_router", None), "routes", [])
    return any(getattr(r, "path", None) == "/predict" for r in [route, *inner])


@app.command("serve-idiomatic")
def serve_idiomatic(project_dir: ProjectDir = Path(), port: int = 8000) -> None:
    """Serve the project with the idiomatic ``/predict`` (as ``churn serve`` does otherwise)."""
    import uvicorn

    uvicorn.run(
        idiomatic_app(project_dir.resolve()),
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


@app.command()
def run(
    project_dir: ProjectDir = Path(),
    rounds: Annotated[int, typer.Option(min=1, help="Alternating A/B rounds.")] = 7,
    seconds: Annotated[float, typer.Option(help="Seconds per single-row run.")] = 8.0,
    connections: Annotated[int, typer.Option(help="wrk connections, single-row.")] = 8,
) -> None:
    """Both versions on one project: req/s, p50, p99 (medians) and the ratio."""
    project = project_dir.resolve()
    from churn.config.settings import get_settings

    settings = get_settings(project_dir=project)
    one = json.dumps({"records": records(1)}).encode()
    thousand = json.dumps({"records": records(1000, seed=3)}).encode()
    headers = {"Content-Type": "application/json"}
    results: dict[tuple[str, int], list[Load]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        urls: dict[str, str] = {}
        for name in ("shipped", "idiomatic"):
            port = free_port()
            env = {
                **os.environ,
                "CHURN_RELOAD_INTERVAL_SECONDS": "0",
                "CHURN_PREDICTION_LOG_URL": f"sqlite:///{tmp}/{name}.db",
                "MLFLOW_TRACKING_URI": settings.tracking_uri,
            }
            env.pop("CHURN_API_KEY", None)
            if name == "shipped":
                cmd = [*CHURN, "-C", str(project), "serve", "--port", str(port)]
                cmd += ["--log-level", "warning"]
            else:
                cmd = [sys.executable, "-m", "tools.bench_predict", "serve-idiomatic"]
                cmd += ["-C", str(project), "--port", str(port)]
            stack.enter_context(server(cmd, env, f"http://127.0.0.1:{port}/ready"))
            urls[name] = f"http://127.0.0.1:{port}/predict"
        scores = {
            n: httpx.post(u, content=one, headers=headers).json()["predictions"][0][
                "churn_probability"
            ]
            for n, u in urls.items()
        }
        if scores["shipped"] != scores["idiomatic"]:
            raise RuntimeError(f"the two versions disagree: {scores}")
        for url in urls.values():  # warm-up, not measured
            wrk(url, one, connections, 2, headers)
            wrk(url, thousand, 1, 2, headers)
        for r in range(rounds):
            for name in list(urls) if r % 2 == 0 else list(reversed(urls)):
                results.setdefault((name, 1), []).append(
                    wrk(urls[name], one, connections, seconds, headers)
                )
                results.setdefault((name, 1000), []).append(
                    wrk(urls[name], thousand, 1, seconds / 2, headers)
                )
            console.print(f"round {r + 1}/{rounds} done")
    table = Table(title=f"POST /predict, {connections} connections (1 row) / 1 (1000 rows)")
    for col in ("version", "rows/request", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(col, justify="right")
    for (name, rows), runs in results.items():
        table.add_row(
            name,
            str(rows),
            f"{statistics.median(x.rps for x in runs):,.0f}",
            f"{statistics.median(x.p50_ms for x in runs):.2f}",
            f"{statistics.median(x.p99_ms for x in runs):.2f}",
            str(sum(x.errors for x in runs)),
        )
    console.print(table)
    for rows in (1, 1000):
        a = statistics.median(x.rps for x in results[("shipped", rows)])
        b = statistics.median(x.rps for x in results[("idiomatic", rows)])
        console.print(f"{rows}-row req/s idiomatic / shipped: {b / a:.3f}")
    paired = [
        b.rps / a.rps
        for a, b in zip(results[("shipped", 1)], results[("idiomatic", 1)], strict=True)
    ]
    console.print(
        "single-row ratio per round: "
        + ", ".join(f"{p:.2f}" for p in paired)
        + f"; median {statistics.median(paired):.3f} (the rule: keep the fast path below 0.90)"
    )


if __name__ == "__main__":
    app()
