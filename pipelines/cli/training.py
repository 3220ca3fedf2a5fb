"""Training and the registry: ``train`` (the training flow), the warm process it runs in, and
``evaluate``, ``model-info``, ``history``, ``rollback`` on the registered versions."""

from __future__ import annotations

import json
import logging
import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.cli.context import (
    TRAIN,
    app,
    console,
    fail,
    load_context,
    load_settings,
    run_flow,
)


@app.command(rich_help_panel=TRAIN)
def train(
    ctx: typer.Context,
    force_ingest: Annotated[
        bool, typer.Option(help="Re-read the source even if params.yaml did not change.")
    ] = False,
    push: Annotated[bool, typer.Option(help="Push the data version to the DVC remote.")] = True,
    promote: Annotated[
        bool,
        typer.Option(
            help="Let the gate move the champion. --no-promote: the gate still decides and "
            "records its decision on the new version (approved or rejected), the champion "
            "stays; then `churn check-challenger` and `churn promote`."
        ),
    ] = True,
    frozen_data: Annotated[
        bool,
        typer.Option(
            "--frozen-data",
            help="Train on exactly the data dvc.lock records (a pulled data tag): never re-read "
            "the source; fail if the data stages would change the data version.",
        ),
    ] = False,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Train even when nothing changed: by default a run whose data version, "
            "params.yaml, code and libraries match a registered version stops after the data "
            "stages and names that version (--no-promote always trains).",
        ),
    ] = False,
) -> None:
    """Run the training flow: data stages, training, evaluation, promotion gate (Prefect)."""
    load_context(ctx)  # fail fast on a broken params.yaml, before Prefect starts
    from pipelines.training import training_flow

    run_flow(
        lambda: training_flow(
            str(ctx.obj.project_dir),
            force_ingest=force_ingest,
            push=push,
            promote=promote,
            frozen_data=frozen_data,
            retrain=retrain,
        )
    )


@app.command(rich_help_panel=TRAIN)
def warm(
    ctx: typer.Context,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running warm process.")] = False,
    serve: Annotated[bool, typer.Option("--serve", hidden=True)] = False,
) -> None:
    """Start the warm process (the flows' libraries imported once), or keep the one that is up.

    `churn train` and `churn monitor` then run in a fresh child of it, seconds faster
    (pipelines/warm.py; `make warm`, which the flow targets run). It exits after
    CHURN_WARM_IDLE_TIMEOUT_SECONDS without a command (default 30 min), or when the project
    folder or its environment is gone; `make stop` or `churn warm --stop` ends it now.

    It serves only you: PREFECT_HOME must be yours and not group- or world-writable (else it is
    refused: `chmod 700` it), and `churn` sends a command (its environment, its terminal) only
    to a socket you own whose process runs as you; a child takes your umask and limits.
    """
    from pipelines import warm as warm_process

    path = warm_process.socket_path()
    if path is None:
        raise fail("PREFECT_HOME is not set: the warm process keeps its socket there", 2)
    if stop:
        console.print(warm_process.stop(path))
        return
    idle = load_settings(ctx).warm_idle_timeout_seconds
    if serve:  # the background process itself, which `churn warm` starts
        _serve_warm(path, idle, ctx.obj.project_dir)
        return
    command = [sys.executable, "-m", "pipelines.cli", "-C", str(ctx.obj.project_dir), "warm"]
    try:
        console.print(warm_process.start(path, [*command, "--serve"]))
    except RuntimeError as exc:
        raise fail(exc) from None
    console.print(
        f"It exits after {warm_process.describe_seconds(idle)} without a command "
        "(CHURN_WARM_IDLE_TIMEOUT_SECONDS), or when this project folder or its environment is "
        "gone; `make stop` (or `churn warm --stop`) ends it now."
    )


# What a flow imports, directly or inside its tasks. The project's modules among them are only
# imported to reach their libraries, then dropped; a name that no longer exists in a fork is
# skipped with a warning in the warm process's log.
WARM_PRELOAD = (
    # skops scans sys.modules for every NumPy and SciPy ufunc: these first (see context.py).
    "numpy",
    "scipy.special",
    "pipelines.cli.commands",
    "pipelines.training",
    "pipelines.monitoring",
    "churn.training.stages",
    "churn.release.tracking",
    "monitoring.report",
    "monitoring.workspace",
    "mlflow.sklearn",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "skops.io",
    "dvc.repo",
    "matplotlib.figure",
    "churn.scoring.walk",  # numba, for the serving scorer the training flow checks
    # The candidates table; each candidate's own libraries (xgboost, sklearn.ensemble, ...) are
    # added from it (churn.models: modules(), in pipelines/warm.py's preload).
    "churn.models",
)


def _serve_warm(path: Path, idle_timeout_s: float, project_dir: Path) -> None:
    from pipelines import warm as warm_process

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    warm_process.serve(
        path,
        _run_as_program,
        preload_modules=WARM_PRELOAD,
        idle_timeout_s=idle_timeout_s,
        project_dir=project_dir,
    )


def _run_as_program(argv: list[str]) -> None:
    """``python -m pipelines.cli <argv>`` in this process: what a warm process's child runs,
    after the project's modules were dropped, so it imports them again from disk."""
    sys.argv = ["churn", *argv]
    runpy.run_module("pipelines.cli", run_name="__main__")


@app.command(rich_help_panel=TRAIN)
def evaluate(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "champion",
) -> None:
    """Evaluate a registered model on the current test split at its recorded threshold."""
    from churn.data import stages as data_stages
    from churn.release.evaluate import evaluate_registered

    settings, params = load_context(ctx)
    test = data_stages.load_splits(settings)["test"]
    with console.status(f"scoring {len(test)} test rows with the {alias!r} version..."):
        try:
            result = evaluate_registered(settings, params, test, alias)
        except LookupError as exc:
            raise fail(exc) from exc
    print(json.dumps(result, indent=2))


@app.command("model-info", rich_help_panel=TRAIN)
def model_info(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias to describe.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe the champion (or another alias): its record, from the registry."""
    from churn.champion import ChampionInfo
    from churn.release import registry, tracking

    settings = load_settings(ctx)
    try:
        version = registry.aliased_version(tracking.connect(settings), settings.model_name, alias)
        record = ChampionInfo.from_version(version)
    except LookupError as exc:
        raise fail(f"{exc} (tracking URI {settings.tracking_uri})") from exc
    from churn.config.redact import mask_credentials

    info = {
        "name": settings.model_name,
        "alias": alias,
        "model_uri": f"models:/{settings.model_name}@{alias}",
        "tracking_uri": mask_credentials(settings.tracking_uri),
        **record.as_dict(),
        "image_digest": (version.tags or {}).get(registry.IMAGE_DIGEST_TAG),
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
    from churn.release import registry, tracking

    settings = load_settings(ctx)
    rows = registry.history(tracking.connect(settings), settings.model_name)
    if not rows:
        typer.echo(f"no versions of '{settings.model_name}' yet: `make train` registers the first")
        return
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
    by: Annotated[str | None, typer.Option(help="Who asks (recorded on the version).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded on the version).")] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from churn.release import registry, tracking

    settings = load_settings(ctx)
    try:
        old, new = registry.rollback(
            tracking.connect(settings), settings.model_name, to, by=by, reason=reason
        )
    except Exception as exc:
        raise fail(exc) from exc
    console.print(f"champion moved from v{old} to v{new}")
