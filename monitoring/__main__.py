"""``python -m monitoring``: run the monitoring flow once (``make monitor``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cli = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@cli.command()
def run(
    project_dir: Annotated[
        Path, typer.Option("--project-dir", "-C", help="Project root (holds params.yaml).")
    ] = Path(),
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

    Reads the window of the prediction log named in params.yaml (monitor.window), writes an
    Evidently HTML report and a JSON summary under reports/monitoring/, logs the run to the MLflow
    experiment churn-monitoring, and prints the decision.
    """
    from pipelines.monitoring import monitoring_flow

    outcome = monitoring_flow(str(project_dir.resolve()), retrain=retrain)
    if outcome.training and outcome.training.get("state") not in (None, "Completed"):
        raise typer.Exit(1)


if __name__ == "__main__":
    cli()
