"""The ``churn`` command line: one sub-command per stage, service and tool, defined here only.

It sits at the top of the layers (it may call the library, serving, monitoring, the flows and the
tools), and imports each part inside its command, so ``churn serve`` starts without Prefect and
``churn --help`` starts in a fraction of a second. The Makefile calls these commands.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)  # paths and messages are never cut

DATA, TRAIN, SERVE, MONITOR, PRIVACY, TOOLS = (
    "Data stages (what dvc.yaml runs)",
    "Training and the registry",
    "Serving",
    "Monitoring",
    "Privacy",
    "Tools (from a clone: not in the package or the images)",
)

app = typer.Typer(
    help="churn-mlops: data stages, training, the registry, serving, monitoring and tools.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
bench = typer.Typer(
    help="Benchmarks that print figures (the docs quote them).", no_args_is_help=True
)
app.add_typer(bench, name="bench", rich_help_panel=TOOLS)


@dataclass
class _Options:
    project_dir: Path


@app.callback()
def _main(
    ctx: typer.Context,
    project_dir: Annotated[
        Path,
        typer.Option(
            "--project-dir",
            "-C",
            envvar="CHURN_PROJECT_DIR",
            help="Project root (holds params.yaml); default: CHURN_PROJECT_DIR, else here.",
            show_default=False,
        ),
    ] = Path(),
) -> None:
    ctx.obj = _Options(project_dir.resolve())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: object, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _settings(ctx: typer.Context) -> Any:
    from pydantic import ValidationError

    from churn.settings import get_settings

    try:
        return get_settings(project_dir=ctx.obj.project_dir)
    except ValidationError as exc:
        raise _fail(
            f"the settings (CHURN_* variables, .env) are invalid: {_reasons(exc)}", 2
        ) from None


def _reasons(exc: Any) -> str:
    """Each error's field and rule, never the value given (it may be a secret)."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        field = ".".join(str(x) for x in error["loc"])
        parts.append(f"{field}: {error['msg']}" if field else error["msg"])
    return "; ".join(parts)


def _context(ctx: typer.Context) -> tuple[Any, Any]:
    """Settings and ``params.yaml``, or a clear error naming the file and the key."""
    from churn.params import load_params

    settings = _settings(ctx)
    try:
        return settings, load_params(settings.params_path)
    except FileNotFoundError:
        raise _fail(f"{settings.params_path} not found (use --project-dir)", 2) from None
    except ValueError as exc:  # pydantic.ValidationError names the key
        raise _fail(f"{settings.params_path} is invalid:\n{exc}", 2) from None


def _tool(name: str) -> ModuleType:
    """A module of the template's ``tools/`` folder, which only a clone has."""
    import importlib

    try:
        return importlib.import_module(f"tools.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("tools", f"tools.{name}"):
            raise
        raise _fail(
            "this command runs the template's tools/ folder, which the installed package does "
            "not ship: run it from a clone of the repository (make demo, make bench-serve, ...)"
        ) from None


# -- data stages ------------------------------------------------------------------------------


@app.command(rich_help_panel=DATA)
def ingest(ctx: typer.Context) -> None:
    """Read the source named in params.yaml (ingest.kind) into data/raw/customers.parquet."""
    from churn import data_stages
    from churn.ingest import IngestError

    settings, params = _context(ctx)
    with console.status(f"reading the {params.ingest.kind} source..."):
        try:
            rows = data_stages.ingest(settings, params)
        except IngestError as exc:
            raise _fail(exc) from exc
    console.print(f"ingested {rows} rows from the {params.ingest.kind} source")


@app.command(rich_help_panel=DATA)
def validate(ctx: typer.Context) -> None:
    """Apply the data contract: valid rows to data/validated/, invalid ones to quarantine."""
    from churn import data_stages
    from churn.validate import ContractError

    settings, params = _context(ctx)
    with console.status("validating against the data contract..."):
        try:
            report = data_stages.validate(settings, params)
        except ContractError as exc:
            raise _fail(exc) from exc
    console.print(
        f"{report.n_valid} valid rows, {report.n_quarantined} quarantined "
        f"({report.quarantined_share:.2%}); reasons: {report.reasons or 'none'}"
    )


@app.command(rich_help_panel=DATA)
def split(ctx: typer.Context) -> None:
    """Split validated rows into seeded train / valid / test files under data/splits/."""
    from churn import data_stages

    settings, params = _context(ctx)
    try:
        counts = data_stages.split(settings, params)
    except ValueError as exc:
        raise _fail(exc) from exc
    console.print("rows per split: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


# -- training and the registry ----------------------------------------------------------------


@app.command(rich_help_panel=TRAIN)
def train(
    ctx: typer.Context,
    force_ingest: Annotated[
        bool, typer.Option(help="Re-read the source even if params.yaml did not change.")
    ] = False,
    push: Annotated[bool, typer.Option(help="Push the data version to the DVC remote.")] = True,
) -> None:
    """Run the training flow: data stages, training, evaluation, promotion gate (Prefect)."""
    _context(ctx)  # fail fast on a broken params.yaml, before Prefect starts
    from pipelines.training import training_flow

    try:
        training_flow(str(ctx.obj.project_dir), force_ingest=force_ingest, push=push)
    except Exception as exc:  # Prefect logged the traceback; end on the reason
        raise _fail(exc) from exc


@app.command(rich_help_panel=TRAIN)
def evaluate(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "champion",
) -> None:
    """Evaluate a registered model on the current test split at its recorded threshold."""
    from churn import data_stages, model_stages

    settings, params = _context(ctx)
    test = data_stages.load_splits(settings)["test"]
    with console.status(f"scoring {len(test)} test rows with the {alias!r} version..."):
        try:
            result = model_stages.evaluate_registered(settings, params, test, alias)
        except LookupError as exc:
            raise _fail(exc) from exc
    print(json.dumps(result, indent=2))


@app.command("model-info", rich_help_panel=TRAIN)
def model_info(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias to describe.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe the champion (or another alias): its record, from the registry."""
    from churn import registry, tracking

    settings = _settings(ctx)
    try:
        record = registry.aliased_record(tracking.connect(settings), settings.model_name, alias)
    except LookupError as exc:
        raise _fail(f"{exc} (tracking URI {settings.tracking_uri})") from exc
    info = {
        "name": settings.model_name,
        "alias": alias,
        "model_uri": f"models:/{settings.model_name}@{alias}",
        "tracking_uri": settings.tracking_uri,
        **record.as_dict(),
    }
    if as_json:
        print(json.dumps(info))
        return
    table = Table(show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)


@app.command(rich_help_panel=TRAIN)
def history(ctx: typer.Context) -> None:
    """The promotion history: every version, its aliases, the gate's decision and its reason."""
    from churn import registry, tracking

    settings = _settings(ctx)
    rows = registry.history(tracking.connect(settings), settings.model_name)
    table = Table("version", "aliases", "decision", "test ROC AUC", "data", "decided at", "reason")
    for r in rows:
        auc = "" if r["test_roc_auc"] is None else f"{r['test_roc_auc']:.4f}"
        table.add_row(
            r["version"],
            ",".join(r["aliases"]),
            r["decision"],
            auc,
            r["data_version"],
            r["decided_at"],
            r["reason"],
        )
    Console(width=200).print(table)


@app.command(rich_help_panel=TRAIN)
def rollback(
    ctx: typer.Context,
    to: Annotated[
        str | None, typer.Option(help="Version to make champion; default: the previous champion.")
    ] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from churn import registry, tracking

    settings = _settings(ctx)
    try:
        old, new = registry.rollback(tracking.connect(settings), settings.model_name, to)
    except Exception as exc:
        raise _fail(exc) from exc
    console.print(f"champion moved from v{old} to v{new}")


# -- serving ----------------------------------------------------------------------------------


@app.command(rich_help_panel=SERVE)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (slower).")] = False,
) -> None:
    """Serve churn predictions from the registry's champion (one worker; docs at /docs)."""
    settings = _settings(ctx)  # a settings error is reported before anything is imported
    import uvicorn

    from serving.app import create_app

    try:
        application = create_app(settings)  # nothing is loaded until the server starts
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc, 2) from None
    uvicorn.run(
        application,
        host=host,
        port=port,
        workers=1,
        log_level=log_level,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
    )


@app.command("batch-predict", rich_help_panel=SERVE)
def batch_predict(
    ctx: typer.Context,
    input_path: Annotated[Path, typer.Argument(help="CSV or Parquet file of customers.")],
    output_path: Annotated[Path, typer.Argument(help="Where to write scores (.csv/.parquet).")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows scored at a time.")] = 100_000,
) -> None:
    """Score a file with the registry's champion (else the cached copy, else the rules)."""
    from serving.batch import score_file

    logging.getLogger().setLevel(logging.WARNING)
    settings = _settings(ctx)
    try:
        summary = score_file(settings, input_path, output_path, chunk_rows)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc, 2) from None
    note = "" if summary.source == "registry" else f" [yellow]({summary.source} fallback)[/]"
    console.print(
        f"scored {summary.rows:,} rows with v{summary.model_version}{note} in "
        f"{summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) -> {output_path}"
    )
    if summary.unseen:
        console.print(f"[yellow]unseen categories[/] (scored as no known level): {summary.unseen}")


# -- monitoring -------------------------------------------------------------------------------


@app.command(rich_help_panel=MONITOR)
def monitor(
    ctx: typer.Context,
    retrain: Annotated[
        bool | None,
        typer.Option(
            "--retrain/--no-retrain",
            help="Override monitor.retrain in params.yaml.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare recent traffic with the champion's training data; retrain on drift or decay.

    Reads the window of the prediction store named in params.yaml (monitor.window), writes an
    Evidently HTML report and a JSON summary under reports/monitoring/, logs the run to the MLflow
    experiment churn-monitoring, and prints the decision.
    """
    _context(ctx)
    from pipelines.monitoring import monitoring_flow

    outcome = monitoring_flow(str(ctx.obj.project_dir), retrain=retrain)
    if outcome.training and outcome.training.get("state") not in (None, "Completed"):
        raise typer.Exit(1)


@app.command(rich_help_panel=MONITOR)
def deployments(ctx: typer.Context) -> None:
    """Register weekly training and hourly monitoring as Prefect deployments and serve their runs.

    Needs a Prefect server (PREFECT_API_URL; `make ui` starts one). Runs until stopped.
    """
    from prefect import serve as prefect_serve

    from pipelines.deployments import build_deployments

    prefect_serve(*build_deployments(_settings(ctx)))


# -- privacy ----------------------------------------------------------------------------------


@app.command(rich_help_panel=PRIVACY)
def forget(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Option("--customer-id", help="The id as the CRM knows it.")],
) -> None:
    """Erase one customer from the prediction log and the labels (GDPR art. 17)."""
    from churn.prediction_store import PredictionStore

    store = PredictionStore.from_settings(_settings(ctx))
    erased = store.forget(customer_id)
    store.close()
    console.print(f"erased {erased.predictions} predictions and {erased.labels} labels")


@app.command(rich_help_panel=PRIVACY)
def retention(ctx: typer.Context) -> None:
    """Delete predictions older than CHURN_PREDICTION_RETENTION_DAYS (default 90)."""
    from churn.prediction_store import PredictionStore

    settings = _settings(ctx)
    store = PredictionStore.from_settings(settings)
    deleted = store.apply_retention(settings.prediction_retention_days)
    store.close()
    console.print(
        f"deleted {deleted} predictions older than {settings.prediction_retention_days} days"
    )


# -- tools ------------------------------------------------------------------------------------


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
    customer id that the service logs, as a CRM feeding outcomes back would do.
    """
    import time

    from churn.prediction_store import PredictionStore

    sim = _tool("simulate")
    try:
        kind = sim.DriftKind(drift)
    except ValueError:
        choices = ", ".join(k.value for k in sim.DriftKind)
        raise _fail(f"--drift {drift!r} is not one of: {choices}", 2) from None
    settings = _settings(ctx)
    customers = sim.make_customers(rows, seed, kind)
    api_key, _ = settings.serving_secrets()
    sent = sim.send_traffic(url, customers, batch_size=batch_size, api_key=api_key)
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
    written = sim.send_labels(PredictionStore.from_settings(settings), customers)
    console.print(f"labels: wrote {written} true outcomes to {settings.labels_url}")


@app.command(rich_help_panel=TOOLS)
def demo(
    dest: Annotated[Path, typer.Option(help="Where the demo's own project goes (replaced).")] = (
        Path("reports/demo/project")
    ),
) -> None:
    """The whole loop on a throw-away copy: train, serve, traffic, monitor, drift, retrain, swap."""
    result = _tool("demo").run_demo(dest.resolve())
    console.print(f"demo finished in {result['seconds']:.0f} s")


@bench.command("serve")
def bench_serve(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(help="Length of each measured load run.")] = 8.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 8,
    rounds: Annotated[int, typer.Option(help="A/B rounds (alternating); medians are printed.")] = 3,
    batch_rows: Annotated[int, typer.Option(help="Rows for the batch comparison.")] = 1_000_000,
    peer: Annotated[bool, typer.Option(help="Also run mlflow models serve.")] = True,
) -> None:
    """The service against `mlflow models serve` on the same champion (wrk; prints ratios)."""
    _tool("bench_serve").run(ctx.obj.project_dir, seconds, connections, rounds, batch_rows, peer)


@bench.command("monitor")
def bench_monitor(
    seeds: Annotated[
        int, typer.Option(min=1, help="Un-shifted windows for the false alarms.")
    ] = 50,
    skip_million: Annotated[bool, typer.Option(help="Skip the 1,000,000-row run.")] = False,
) -> None:
    """Monitoring time and memory at 100k and 1M logged predictions; false alarms."""
    _tool("bench_monitor").run(seeds, skip_million, echo=console.print)


if __name__ == "__main__":
    app()
