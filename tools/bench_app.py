"""``churn bench serve --in-process``: what each part of ``/predict`` costs, without a socket.

The app's ASGI callable is called in this process with ``make bench-serve``'s one-record body,
after its start-up (the champion loaded). For each variant (the whole app, the app with one part
replaced by a constant, the HTTP floor's app) it reads the CPU time per request of the process,
all threads included, and of the event loop's thread alone (what bounds the requests per
second of one worker); the variants alternate in each round (in reverse order every other
round) and medians are printed. What a
part costs in context is the whole app's figure minus the figure without it. No wrk, no
sockets: the figures move far less with the machine than requests per second do.

Then the same for each hand-written path against the library path it stands in for (the table
"Library path or hand-written path" in docs/architecture.md), in the same alternating rounds:
the compiled replay against the pipeline's own ``predict_proba`` and its numba tree walk against
the calibrated model's own ``predict_proba`` (one row), the direct route against the FastAPI
route (one row) and ``json.loads`` then pydantic (what ``RequestParser`` does) against the one-pass
``validate_json`` it used until issue #24 (1000 rows).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench_serve import records

Patch = tuple[Callable[[], None], Callable[[], None]]
NO_PATCH: Patch = (lambda: None, lambda: None)


def run(project_dir: Path, requests: int = 2000, rounds: int = 5, echo: Any = print) -> None:
    """Print CPU microseconds per request of each variant (medians of ``rounds``)."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            CHURN_PROJECT_DIR=str(project_dir),
            CHURN_RELOAD_INTERVAL_SECONDS="0",
            CHURN_PREDICTION_LOG_URL=f"sqlite:///{tmp}/bench-predictions.db",
        )
        os.environ.pop("CHURN_API_KEY", None)
        asyncio.run(_measure(project_dir, requests, rounds, echo))


async def _measure(project_dir: Path, requests: int, rounds: int, echo: Any) -> None:
    from churn.config.settings import get_settings
    from serving.app import create_app
    from tools.floor_server import app as floor

    body = json.dumps({"records": records(1)}).encode()
    explained = json.dumps({"records": records(1), "explain": True}).encode()
    thousand = json.dumps({"records": records(1000, seed=3)}).encode()
    settings = get_settings(project_dir=project_dir)
    app, stop_app = await _started(create_app(settings))
    fastapi_settings = get_settings(  # its own prediction log: two writers would contend
        project_dir=project_dir,
        predict_route="fastapi",
        prediction_log_url=settings.prediction_log_url.replace(".db", "-fastapi.db"),
    )
    fastapi_app, stop_fastapi = await _started(create_app(fastapi_settings))
    state = app.state.serving
    for target in (app, fastapi_app):
        for payload in (body, explained, thousand):
            if await _request(target, payload) != 200:
                raise RuntimeError("/predict did not answer 200 in process")
    patches = _patches(state, body)
    # name -> (app, body, patch, share of ``requests``)
    variants: dict[str, tuple[Any, bytes, Patch, float]] = {
        "whole app": (app, body, NO_PATCH, 1.0),
        **{name: (app, body, patch, 1.0) for name, patch in patches.items()},
        "floor": (floor, body, NO_PATCH, 1.0),
    }
    pairs = _pairs(state, app, fastapi_app, body, thousand)
    for figure, (library, hand) in pairs.items():
        variants[f"{figure}: {library[0]}"] = library[1]
        variants[f"{figure}: {hand[0]}"] = hand[1]
    for _ in range(300):  # warm the apps up
        await _request(app, body)
        await _request(fastapi_app, body)
        await _request(floor, body)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    loop: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(rounds):  # the order reversed every other round: drift counts for none
        for name in list(variants) if i % 2 == 0 else list(reversed(variants)):
            target, payload, patch, share = variants[name]
            count = max(int(requests * share), 20)
            patch[0]()
            started, started_loop = time.process_time(), time.thread_time()
            for _ in range(count):
                await _request(target, payload)
            cpu[name].append((time.process_time() - started) / count * 1e6)
            loop[name].append((time.thread_time() - started_loop) / count * 1e6)
            patch[1]()
    await stop_app()
    await stop_fastapi()
    whole = statistics.median(cpu["whole app"])
    whole_loop = statistics.median(loop["whole app"])
    echo(f"CPU per /predict request in process, medians of {rounds} rounds of {requests}:")
    echo(
        "| variant | CPU µs per request (all threads) | the part costs | on the event loop's "
        "thread | the part costs there |"
    )
    echo("|---|---:|---:|---:|---:|")
    for name in ["whole app", *patches, "floor"]:
        values = cpu[name]
        median, median_loop = statistics.median(values), statistics.median(loop[name])
        part = "" if name in ("whole app", "floor") else f"{whole - median:.1f}"
        part_loop = "" if name in ("whole app", "floor") else f"{whole_loop - median_loop:.1f}"
        echo(f"| {name} | {median:.1f} | {part} | {median_loop:.1f} | {part_loop} |")
    echo("")
    echo(
        "Library path or hand-written path (CPU µs per request, all threads, in process; the "
        "same rounds):"
    )
    echo("| figure | library path | µs | hand-written path | µs | hand-written earns |")
    echo("|---|---|---:|---|---:|---:|")
    for figure, (library, hand) in pairs.items():
        lib = statistics.median(cpu[f"{figure}: {library[0]}"])
        own = statistics.median(cpu[f"{figure}: {hand[0]}"])
        echo(f"| {figure} | {library[0]} | {lib:.1f} | {hand[0]} | {own:.1f} | {lib / own:.2f}x |")


async def _started(app: Any) -> tuple[Any, Callable[[], Any]]:
    """``app`` after its lifespan started and its model loaded, and the coroutine that stops it."""
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, replies.put)
    )
    await startup.put({"type": "lifespan.startup"})
    await replies.get()
    while app.state.serving.model is None:
        await asyncio.sleep(0.2)

    async def stop() -> None:
        await startup.put({"type": "lifespan.shutdown"})
        await replies.get()
        await lifespan

    return app, stop


Variant = tuple[Any, bytes, Patch, float]


def _pairs(
    state: Any, app: Any, fastapi_app: Any, body: bytes, thousand: bytes
) -> dict[str, tuple[tuple[str, Variant], tuple[str, Variant]]]:
    """Per hand-written path: ``(library path, hand-written path)``, each a name and a variant
    (the app, the body, what is patched for it, the share of the requests it is run for)."""
    import serving.schemas as schemas
    from churn.scoring import PipelineScorer

    scorer = state.model.scorer
    pipeline = PipelineScorer(scorer.pipeline, state.dataset)
    model = scorer.pipeline[-1]
    validate = schemas.RequestParser.validate

    def swap(obj: Any, name: str, value: Any) -> Patch:
        return (lambda: setattr(obj, name, value), lambda: delattr(obj, name))

    def pipeline_one(columns: Any) -> float:
        return float(pipeline.score(columns, 1)[0])

    def model_one(columns: Any) -> float:
        return float(model.predict_proba(scorer.encode(columns, 1))[0, 1])

    def one_pass(parser: Any, raw: bytes) -> Any:
        return parser._adapter.validator.validate_json(raw)

    return {
        "one row, scoring": (
            (
                "the pipeline's predict_proba",
                (app, body, swap(scorer, "score_one", pipeline_one), 0.05),
            ),
            ("the compiled replay", (app, body, NO_PATCH, 1.0)),
        ),
        "one row, the model after the replay's encoding": (
            ("the model's predict_proba", (app, body, swap(scorer, "score_one", model_one), 0.25)),
            ("the numba tree walk", (app, body, NO_PATCH, 1.0)),
        ),
        "one row, the route": (
            ("the FastAPI route", (fastapi_app, body, NO_PATCH, 1.0)),
            ("the direct ASGI route", (app, body, NO_PATCH, 1.0)),
        ),
        "1000 rows, the body": (
            ("json.loads, then pydantic (shipped)", (app, thousand, NO_PATCH, 0.02)),
            (
                "validate_json in one pass (removed)",
                (
                    app,
                    thousand,
                    (
                        lambda: setattr(schemas.RequestParser, "validate", one_pass),
                        lambda: setattr(schemas.RequestParser, "validate", validate),
                    ),
                    0.02,
                ),
            ),
        ),
    }


def _patches(state: Any, body: bytes) -> dict[str, Patch]:
    """``without <part>``: that part replaced by a constant of its result (and put back)."""
    import serving.schemas as schemas

    scorer = state.model.scorer
    record = json.loads(body)["records"][0]
    row = scorer._encode_one({c: [record[c]] for c in state.feature_columns})
    constant = np.array([0.06])
    validate = schemas.RequestParser.validate
    walk = scorer._predict_one

    def on(obj: Any, name: str, value: Any) -> Patch:
        return (lambda: setattr(obj, name, value), lambda: delattr(obj, name))

    def both(first: Patch, second: Patch) -> Patch:
        def on_() -> None:
            first[0]()
            second[0]()

        def off() -> None:
            first[1]()
            second[1]()

        return on_, off

    return {
        "without scoring": both(  # one record goes through score_one
            on(scorer, "score", lambda columns, n: constant),
            on(scorer, "score_one", lambda columns: 0.06),
        ),
        "without encoding": on(scorer, "_encode_one", lambda columns: row),
        "without the tree walk": (
            lambda: setattr(scorer, "_predict_one", lambda x: 0.06),
            lambda: setattr(scorer, "_predict_one", walk),
        ),
        "without validation": (
            lambda: setattr(schemas.RequestParser, "validate", lambda _, b: {"records": [record]}),
            lambda: setattr(schemas.RequestParser, "validate", validate),
        ),
        "without the prediction log": on(state.predlog, "submit", lambda batch: True),
        "without the log's id hash": on(state.predlog.store, "hash_id", lambda c: "0" * 64),
        "without the log's store insert": on(state.predlog.store, "insert_rows", lambda rows: None),
        "without the unseen-level check": on(state.unseen, "per_row", lambda columns, n: None),
        "without the metrics": on(state.metrics, "count_request", lambda *args: None),
    }


async def _request(app: Any, body: bytes) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
        "scheme": "http", "method": "POST", "root_path": "", "path": "/predict",
        "raw_path": b"/predict", "query_string": b"", "state": {},
        "headers": [
            (b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }  # fmt: skip
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]
