"""The monitoring commands: ``monitor`` (the monitoring flow: drift, decay, retrain) and
``deployments`` (the scheduled training and monitoring runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.context import (
    MONITOR,
    app,
    load_context,
    load_settings,
    run_flow,
)


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
    promote_from_live: Annotated[
        bool,
        typer.Option(
            help="Also promote the live challenger when the window's labelled traffic proves "
            "it better (as `churn promote --from-live`)."
        ),
    ] = False,
    current: Annotated[
        str | None,
        typer.Option(
            help="A Parquet window of exported predictions (file, directory of parts or quoted "
            "glob) instead of the prediction store's; default: monitor.current_path. With "
            "engine.kind: dask it is judged whole on the cluster.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare recent traffic with the champion's training data; retrain on drift or decay.

    Reads the window of the prediction store named in params.yaml (monitor.window), or a Parquet
    window (--current), writes an Evidently HTML report and a JSON summary under
    reports/monitoring/, logs the run to the MLflow experiment churn-monitoring, and prints the
    decision. With live.mode shadow or canary it also compares the champion and the challenger
    on the window's labelled traffic.
    """
    load_context(ctx)
    from pipelines import gc_policy

    with gc_policy.importing():  # the collector skips these objects after (gc_policy)
        from pipelines.monitoring import monitoring_flow

    outcome = run_flow(
        lambda: monitoring_flow(
            str(ctx.obj.project_dir),
            retrain=retrain,
            promote_from_live=promote_from_live,
            current=current,
        )
    )
    if outcome.training and outcome.training.get("state") not in (None, "Completed"):
        raise typer.Exit(1)


@app.command(rich_help_panel=MONITOR)
def deployments(ctx: typer.Context) -> None:
    """Register weekly training and hourly monitoring as Prefect deployments and serve their runs.

    Needs a Prefect server (PREFECT_API_URL; `make prefect-server` starts one). Runs until stopped.
    """
    from prefect import serve as prefect_serve

    from pipelines.deployments import build_deployments

    prefect_serve(*build_deployments(load_settings(ctx)))
