"""The ``churn`` command line: one subcommand per stage, plus the registry's everyday operations."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Customer-churn MLOps template: data stages, training flow, model registry.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)

ProjectDir = Annotated[
    Path, typer.Option("--project-dir", "-C", help="Project root (holds params.yaml).")
]


def _context(project_dir: Path) -> tuple[Any, Any]:
    from churn.params import load_params
    from churn.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings(project_dir=project_dir)
    try:
        return settings, load_params(settings.params_path)
    except FileNotFoundError:
        console.print(f"[red]error:[/] {settings.params_path} not found (use --project-dir)")
        raise typer.Exit(2) from None
    except ValueError as exc:  # pydantic.ValidationError names the key
        console.print(f"[red]error:[/] {settings.params_path} is invalid:\n{exc}")
        raise typer.Exit(2) from None


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/] {exc}")
    return typer.Exit(1)


@app.command()
def ingest(project_dir: ProjectDir = Path()) -> None:
    """Read the source named in params.yaml (ingest.kind) into data/raw/customers.parquet."""
    from churn import data_stages as stages
    from churn.ingest import IngestError

    settings, params = _context(project_dir)
    with console.status(f"reading the {params.ingest.kind} source..."):
        try:
            rows = stages.ingest(settings, params)
        except IngestError as exc:
            raise _fail(exc) from exc
    console.print(f"ingested {rows} rows from the {params.ingest.kind} source")


@app.command()
def validate(project_dir: ProjectDir = Path()) -> None:
    """Apply the data contract: valid rows to data/validated/, invalid ones to quarantine."""
    from churn import data_stages as stages
    from churn.validate import ContractError

    settings, params = _context(project_dir)
    with console.status("validating against the data contract..."):
        try:
            report = stages.validate(settings, params)
        except ContractError as exc:
            raise _fail(exc) from exc
    console.print(
        f"{report.n_valid} valid rows, {report.n_quarantined} quarantined "
        f"({report.quarantined_share:.2%}); reasons: {report.reasons or 'none'}"
    )


@app.command()
def split(project_dir: ProjectDir = Path()) -> None:
    """Split validated rows into seeded train / valid / test files under data/splits/."""
    from churn import data_stages as stages

    settings, params = _context(project_dir)
    try:
        counts = stages.split(settings, params)
    except ValueError as exc:
        raise _fail(exc) from exc
    console.print("rows per split: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@app.command()
def train(
    project_dir: ProjectDir = Path(),
    force_ingest: Annotated[
        bool, typer.Option(help="Re-read the source even if params.yaml did not change.")
    ] = False,
    push: Annotated[bool, typer.Option(help="Push the data version to the DVC remote.")] = True,
) -> None:
    """Run the whole Prefect training flow: data stages, training, evaluation, promotion gate."""
    from pipelines.training import training_flow

    _context(project_dir)  # fail fast on a broken params.yaml, before Prefect starts
    try:
        training_flow(str(project_dir), force_ingest=force_ingest, push=push)
    except Exception as exc:  # Prefect logged the traceback; end on the reason
        raise _fail(exc) from exc


@app.command()
def evaluate(
    project_dir: ProjectDir = Path(),
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "champion",
) -> None:
    """Score a registered model on the current test split at its recorded decision threshold."""
    import mlflow

    from churn import data_stages, tracking
    from churn import evaluate as ev
    from churn.split import label_vector
    from churn.train import score

    settings, params = _context(project_dir)
    info = _model_info_or_exit(settings, alias)
    test = data_stages.load_splits(settings)["test"]
    with console.status(f"scoring {len(test)} test rows with v{info['version']}..."):
        tracking.connect(settings)
        proba = score(mlflow.sklearn.load_model(info["model_uri"]), test)
    metrics = ev.classification_metrics(
        label_vector(test, params.dataset).to_numpy(), proba, info["decision_threshold"]
    )
    print(json.dumps({"version": info["version"], "alias": alias, **metrics}, indent=2))


@app.command("model-info")
def model_info(
    project_dir: ProjectDir = Path(),
    alias: Annotated[str, typer.Option(help="Registry alias to describe.")] = "champion",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Describe the champion (or another alias): version, quality, data version, git commit."""
    settings, _ = _context(project_dir)
    info = _model_info_or_exit(settings, alias)
    if as_json:
        print(json.dumps(info))
        return
    table = Table(show_header=False)
    for key, value in info.items():
        table.add_row(key, str(value))
    Console().print(table)


@app.command()
def history(project_dir: ProjectDir = Path()) -> None:
    """The promotion history: every version, the gate's decision and its reason."""
    from churn import registry, tracking

    settings, _ = _context(project_dir)
    rows = registry.history(tracking.connect(settings), settings.model_name)
    table = Table("version", "aliases", "decision", "test ROC AUC", "data", "decided at", "reason")
    for r in rows:
        auc = f"{float(r['test_roc_auc']):.4f}" if r["test_roc_auc"] else ""
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


@app.command()
def rollback(
    project_dir: ProjectDir = Path(),
    to: Annotated[
        str | None, typer.Option(help="Version to make champion; default: the previous champion.")
    ] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from churn import registry, tracking

    settings, _ = _context(project_dir)
    try:
        old, new = registry.rollback(tracking.connect(settings), settings.model_name, to)
    except Exception as exc:
        raise _fail(exc) from exc
    console.print(f"champion moved from v{old} to v{new}")


def _model_info_or_exit(settings: Any, alias: str) -> dict[str, Any]:
    from churn import model_stages

    try:
        return model_stages.model_info(settings, alias)
    except LookupError as exc:
        raise _fail(exc) from exc


if __name__ == "__main__":
    app()
