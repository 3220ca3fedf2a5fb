"""The serving commands: ``serve`` (the API, one worker) and ``batch-predict`` (a file, scored with
the champion or its fallbacks)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.context import SERVE, app, console, fail, load_context, load_settings


@app.command(rich_help_panel=SERVE)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on; default: the port setting (CHURN_PORT, or the platform's "
            "AIP_HTTP_PORT / SAGEMAKER_BIND_TO_PORT; else 8000).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (slower).")] = False,
) -> None:
    """Serve churn predictions from the registry's champion (one worker; docs at /docs)."""
    settings = load_settings(ctx)  # a settings error is reported before anything is imported
    from serving.contracts import selected

    try:
        settings.serving_secrets()  # so is a missing key (create_app checks it too)
        selected(settings.serving_contracts)  # and a contract this service does not have
    except ValueError as exc:
        raise fail(exc, 2) from None
    import uvicorn

    from serving.app import create_app

    try:
        application = create_app(settings)  # nothing is loaded until the server starts
    except (ValueError, FileNotFoundError) as exc:
        raise fail(exc, 2) from None
    uvicorn.run(
        application,
        host=host,
        port=settings.port if port is None else port,
        workers=1,
        log_level=log_level,
        access_log=access_log,
        loop="uvloop",
        http="httptools",
    )


@app.command("batch-predict", rich_help_panel=SERVE)
def batch_predict(
    ctx: typer.Context,
    input_path: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet file of customers; with the dask engine also a directory of "
            "parts or a quoted glob ('data/*.parquet')."
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Argument(
            help="Where to write scores: a .csv/.parquet file; with the dask engine a directory "
            "of Parquet parts."
        ),
    ],
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows scored at a time (pandas engine).")
    ] = 100_000,
    engine: Annotated[
        str | None,
        typer.Option(
            help="pandas (this process) or dask (the cluster of CHURN_DASK_SCHEDULER, else a "
            "LocalCluster); default: engine.kind in params.yaml.",
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add each score's reasons: reason_up_1..k and reason_down_1..k columns, each "
            "'Contract = Month-to-month: +0.21' (log-odds before calibration). Slower.",
        ),
    ] = False,
    top_k: Annotated[
        int, typer.Option(min=1, max=50, help="Reasons per direction with --explain.")
    ] = 5,
    raw_cells: Annotated[
        bool,
        typer.Option(
            "--raw-cells",
            help="CSV output: write text cells as they are. By default a text cell starting with "
            "= + - @ tab or CR (an id like =HYPERLINK(...)) gets a leading ' so that a "
            "spreadsheet shows it instead of running it (OWASP CSV injection); numbers and "
            "Parquet output are never changed.",
        ),
    ] = False,
) -> None:
    """Score a file with the registry's champion (else the cached copy, else the rules)."""
    from churn.engine import PLUGINS
    from serving.batch import score_file, score_partitioned

    logging.getLogger().setLevel(logging.WARNING)
    settings, params = load_context(ctx)
    kind = engine or params.engine.kind
    known = ["pandas", *PLUGINS]
    if kind not in known:
        raise fail(f"--engine: {kind!r} is not an engine here; use one of {known}", 2)
    try:
        if kind != "pandas":
            if explain:
                raise fail(f"--explain runs on the pandas engine; drop --engine {kind}", 2)
            # A plug-in missing its libraries (the serving image has no dask) is a clear error.
            summary = score_partitioned(settings, str(input_path), output_path, kind=kind)
        else:
            summary = score_file(
                settings,
                input_path,
                output_path,
                chunk_rows,
                explain_top_k=top_k if explain else None,
                raw_cells=raw_cells,
            )
    except (ValueError, FileNotFoundError) as exc:
        raise fail(exc, 2) from None
    note = "" if summary.source == "registry" else f" [yellow]({summary.source} fallback)[/]"
    console.print(
        f"scored {summary.rows:,} rows with v{summary.model_version}{note} in "
        f"{summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s) -> {output_path}"
    )
    if summary.unseen:
        console.print(f"[yellow]unseen categories[/] (scored as no known level): {summary.unseen}")
