"""The tools a clone of the template has (``tools/``, not in the package or the images):
``simulate``, ``demo``, ``screenshots`` and the ``bench`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.context import TOOLS, app, clone_tool, console, fail, load_context

bench = typer.Typer(
    help="Benchmarks that print figures (the docs quote them).", no_args_is_help=True
)
app.add_typer(bench, name="bench", rich_help_panel=TOOLS)


@app.command(rich_help_panel=TOOLS)
def simulate(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="Base URL of the running API.")] = (
        "http://127.0.0.1:8000"
    ),
    rows: Annotated[int, typer.Option(min=1, max=1_000_000, help="Customers to send.")] = 2000,
    drift: Annotated[
        str,
        typer.Option(help="Shift: none, charges, contract, new-category, competitor or strong."),
    ] = "none",
    seed: Annotated[int, typer.Option(help="Generator seed (also prefixes the ids).")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Records per request.")] = 100,
    labels_after: Annotated[
        float,
        typer.Option(
            min=-1, max=3600, help="Seconds to wait before writing the true labels; -1: never."
        ),
    ] = 0.0,
) -> None:
    """Send realistic customers to the API, then (later) write their true churn labels.

    The labels go to the prediction store's labels table, keyed by the same keyed hash of the
    customer id that the service logs, as a CRM feeding outcomes back would do. It knows only
    the default data (the generator's columns): for another data set it says so and sends nothing.
    """
    import time

    import httpx

    from churn.config.redact import mask_credentials
    from churn.prediction_store import MissingStoreError, PredictionStore

    sim = clone_tool("simulate")
    try:
        kind = sim.DriftKind(drift)
    except ValueError:
        choices = ", ".join(k.value for k in sim.DriftKind)
        raise fail(f"--drift {drift!r} is not one of: {choices}", 2) from None
    settings, params = load_context(ctx)
    customers = sim.make_customers(rows, seed, kind)
    dataset = params.dataset
    missing = [c for c in [*dataset.feature_columns, dataset.label_column] if c not in customers]
    if missing:  # another data set (make init-dataset): the service would answer 422
        shown = ", ".join(repr(c) for c in missing[:4]) + (", ..." if len(missing) > 4 else "")
        name = dataset.name or dataset.label_column
        raise fail(
            "the simulator only generates the default data (src/churn/data/generator.py's "
            f"Telco-like customers), not the data set params.yaml describes ({name!r}): it lacks "
            f"{shown}. Send your own rows to /predict (docs/serving.md), or set ingest.kind: "
            "generator and train again",
            2,
        )
    api_key, _ = settings.serving_secrets()
    try:
        sent = sim.send_traffic(url, customers, batch_size=batch_size, api_key=api_key)
    except httpx.ConnectError:
        raise fail(
            f"no prediction service answers at {url}: start one with `make serve` "
            "(another terminal), or pass the running one's --url (make simulate PORT=...)"
        ) from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        hint = (
            "set CHURN_API_KEY to the service's key"
            if status == 401
            else exc.response.text[:200].strip()
        )
        raise fail(f"{url}/predict answered {status}: {hint}") from None
    console.print(
        f"sent {rows} customers ({kind.value} drift) in {sent.requests} requests, "
        f"{sent.seconds:.1f} s; model versions {sorted(sent.model_versions)}"
    )
    if labels_after < 0:
        console.print("labels: not written (--labels-after -1)")
        return
    if labels_after:
        console.print(f"labels: waiting {labels_after:g} s, as outcomes arrive later")
        time.sleep(labels_after)
    try:
        written = sim.send_labels(PredictionStore.from_settings(settings), customers)
    except MissingStoreError as exc:
        raise fail(exc) from None
    console.print(
        f"labels: wrote {written} true outcomes to {mask_credentials(settings.labels_url)}"
    )


@app.command(rich_help_panel=TOOLS)
def demo(
    dest: Annotated[Path, typer.Option(help="Where the demo's own project goes (replaced).")] = (
        Path("reports/demo/project")
    ),
    live: Annotated[
        bool,
        typer.Option(
            help="The retrain runs as a shadow challenger, promoted from live evidence; "
            "--no-live: the gate promotes it directly (the monitoring flow's own retrain)."
        ),
    ] = True,
) -> None:
    """The whole loop on a throw-away copy: train, serve, drifted traffic, monitor, retrain as a
    challenger, shadow it on live traffic, promote it from live evidence, hot swap."""
    result = clone_tool("demo").run_demo(dest.resolve(), live=live)
    console.print(f"demo finished in {result['seconds']:.0f} s")


@app.command(rich_help_panel=TOOLS)
def screenshots(
    out: Annotated[Path, typer.Option(help="Where the PNGs go (replaced).")] = Path(
        "docs/screenshots"
    ),
    work: Annotated[
        Path, typer.Option(help="The throw-away project, its servers' state and logs (replaced).")
    ] = Path("reports/screenshots"),
) -> None:
    """The docs' screenshots, taken again (headless /usr/bin/chromium, offline).

    A throw-away project is trained, served and monitored five times; then /docs, a report's
    summary, the Evidently dashboard, the MLflow run's datasets and the Prefect run's artefacts
    are photographed into --out.
    """
    module = clone_tool("screenshots")
    try:
        shots = module.run(out.resolve(), work.resolve())
    except module.ScreenshotError as exc:
        raise fail(exc) from None
    console.print(f"{len(shots)} screenshots in {out}")


@bench.command("serve")
def bench_serve(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(help="Length of each measured load run.")] = 8.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 8,
    rounds: Annotated[int, typer.Option(help="A/B rounds (alternating); medians are printed.")] = 3,
    batch_rows: Annotated[int, typer.Option(help="Rows for the batch comparison.")] = 1_000_000,
    peer: Annotated[bool, typer.Option(help="Also run mlflow models serve.")] = True,
    shadow: Annotated[
        bool,
        typer.Option(
            help="Instead: the service with a shadow challenger running against without one, "
            "in a throw-away fork under reports/bench-shadow (trains it first)."
        ),
    ] = False,
    canary: Annotated[
        bool,
        typer.Option(
            help="Instead: a champion customer's single-record p50/p99 and req/s with a canary "
            "challenger beside the champion and without (live.mode canary against off), alone "
            "and beside 1000-record requests; on a copy of the project (its registry untouched)."
        ),
    ] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            help="Instead: CPU per /predict request with the app called in process, whole and "
            "with each part replaced by a constant, against the floor's app (no sockets)."
        ),
    ] = False,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Instead: this checkout's service against another checkout's (e.g. a worktree "
            "of main) on the same project, the floor up too: req/s, p99, event loop CPU per "
            "request, ratios to the floor (one-row requests).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """The service against the HTTP floor (same stack, constant answer) and `mlflow models serve`
    on the same champion (wrk; prints ratios); with --shadow, the cost of a shadow challenger;
    with --canary, the champion's figures with a canary challenger and without."""
    if against is not None:
        try:
            clone_tool("bench_serve").run_against(
                ctx.obj.project_dir, against, seconds, connections, rounds
            )
        except FileNotFoundError as exc:  # not a checkout of this project
            raise fail(f"--against: {exc}", 2) from None
        return
    if in_process:
        clone_tool("bench_app").run(ctx.obj.project_dir, rounds=max(rounds, 5), echo=console.print)
        return
    module = clone_tool("bench_serve")
    if shadow:
        dest = (ctx.obj.project_dir / "reports" / "bench-shadow" / "project").resolve()
        module.run_shadow(dest, seconds, connections, rounds)
        return
    if canary:
        try:
            module.run_canary(ctx.obj.project_dir, seconds, connections, rounds)
        except (RuntimeError, LookupError) as exc:
            raise fail(f"--canary: {exc}") from None
        return
    module.run(ctx.obj.project_dir, seconds, connections, rounds, batch_rows, peer)


@bench.command("train")
def bench_train(
    rounds: Annotated[
        int, typer.Option(min=1, help="Alternating rounds; medians are printed.")
    ] = 3,
) -> None:
    """`churn train` (nothing changed; --retrain) as a process of its own against the warm
    process, in a throw-away fork on the default data (PREFECT_API_URL: `make bench-train`)."""
    try:
        clone_tool("bench_train").run(rounds, echo=console.print)
    except RuntimeError as exc:
        raise fail(exc) from None


@bench.command("monitor")
def bench_monitor(
    seeds: Annotated[
        int, typer.Option(min=1, help="Un-shifted windows for the false alarms.")
    ] = 50,
    skip_million: Annotated[bool, typer.Option(help="Skip the 1,000,000-row run.")] = False,
) -> None:
    """Monitoring time and memory at 100k and 1M logged predictions; false alarms."""
    clone_tool("bench_monitor").run(seeds, skip_million, echo=console.print)


@bench.command("scale")
def bench_scale(
    rows: Annotated[int, typer.Option(min=1000, help="Generated customers.")] = 1_000_000,
    engines: Annotated[
        str, typer.Option(help="Comma-separated engines to run, in order: pandas, dask.")
    ] = "pandas,dask",
    workers: Annotated[int, typer.Option(min=1, help="LocalCluster workers (dask).")] = 2,
    memory_limit: Annotated[str, typer.Option(help="Memory limit per worker (dask).")] = "5GiB",
    steps: Annotated[
        str,
        typer.Option(
            help="training: generate, validate, split, train (reports/bench-scale-ROWS.json); "
            "scoring: batch scoring and monitoring of ROWS customers with a trained champion "
            "(reports/bench-scale-steps-ROWS.json); all: both."
        ),
    ] = "training",
) -> None:
    """The stages on each engine at ROWS rows: wall time, peak memory of the process and of each
    dask worker; test ROC AUC (training), rows judged and drifted columns (scoring); then each
    dask step per worker core against the pandas engine pinned to one core and the bare
    libraries on the same cluster, with #29's targets (docs/scaling.md)."""
    chosen = tuple(e.strip() for e in engines.split(",") if e.strip())
    unknown = sorted(set(chosen) - {"pandas", "dask"})
    if unknown or not chosen:
        raise fail(f"unknown engine(s) {unknown or engines!r}; choose from pandas, dask", 2)
    if steps not in ("training", "scoring", "all"):
        raise fail(f"unknown --steps {steps!r}; choose from training, scoring, all", 2)
    if steps in ("training", "all"):
        clone_tool("bench_scale").run(rows, chosen, workers, memory_limit, echo=console.print)
    if steps in ("scoring", "all"):
        clone_tool("bench_scale_steps").run(rows, chosen, workers, memory_limit, echo=console.print)


@bench.command("real-data")
def bench_real_data(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Which shared files: telco, iranian (default: both).", show_default=False
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="train.search.n_trials of the fork (default: the template's)."),
    ] = None,
) -> None:
    """init-dataset then training on the shared real files (../shared/data), in a throw-away
    fork: rows, roles, the champion's, baseline's and a plain XGBoost's test ROC AUC, and the
    candidates' comparison table."""
    module = clone_tool("real_data")
    unknown = sorted(set(names or []) - set(module.REAL_FILES))
    if unknown:
        raise fail(f"unknown file(s) {unknown}; choose from {sorted(module.REAL_FILES)}", 2)
    module.main(names, trials)
