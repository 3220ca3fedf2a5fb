"""``churn bench serve --in-process``: what each part of ``/predict`` costs, without a socket.

The app's ASGI callable is called in this process with ``make bench-serve``'s one-record body,
after its start-up (the champion loaded). For each variant (the whole app, the app with one part
replaced by a constant, the HTTP floor's app) it reads the CPU time per request of the process,
all threads included, and of the event loop's thread alone (what bounds the requests per
second of one worker); the variants alternate in each round (in reverse order every other
round) and medians are printed. What a
part costs in context is the whole app's figure minus the figure without it. No wrk, no
sockets: the figures move far less with the machine than requests per second do.
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
    app = create_app(get_settings(project_dir=project_dir))
    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, replies.put)
    )
    await startup.put({"type": "lifespan.startup"})
    await replies.get()
    state = app.state.serving
    while state.model is None:
        await asyncio.sleep(0.2)
    if await _request(app, body) != 200:
        raise RuntimeError("/predict did not answer 200 in process")
    patches = _patches(state, body)
    variants = {"whole app": app, **dict.fromkeys(patches, app), "floor": floor}
    for _ in range(300):  # warm both apps up
        await _request(app, body)
        await _request(floor, body)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    loop: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(rounds):  # the order reversed every other round: drift counts for none
        for name in list(variants) if i % 2 == 0 else list(reversed(variants)):
            target = variants[name]
            if name in patches:
                patches[name][0]()
            started, started_loop = time.process_time(), time.thread_time()
            for _ in range(requests):
                await _request(target, body)
            cpu[name].append((time.process_time() - started) / requests * 1e6)
            loop[name].append((time.thread_time() - started_loop) / requests * 1e6)
            if name in patches:
                patches[name][1]()
    await startup.put({"type": "lifespan.shutdown"})
    await replies.get()
    await lifespan
    whole = statistics.median(cpu["whole app"])
    whole_loop = statistics.median(loop["whole app"])
    echo(f"CPU per /predict request in process, medians of {rounds} rounds of {requests}:")
    echo(
        "| variant | CPU µs per request (all threads) | the part costs | on the event loop's "
        "thread | the part costs there |"
    )
    echo("|---|---:|---:|---:|---:|")
    for name, values in cpu.items():
        median, median_loop = statistics.median(values), statistics.median(loop[name])
        part = "" if name in ("whole app", "floor") else f"{whole - median:.1f}"
        part_loop = "" if name in ("whole app", "floor") else f"{whole_loop - median_loop:.1f}"
        echo(f"| {name} | {median:.1f} | {part} | {median_loop:.1f} | {part_loop} |")


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
