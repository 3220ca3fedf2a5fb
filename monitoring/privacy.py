"""Data-subject erasure and retention for what the service stores: the prediction log and labels.

``python -m monitoring.privacy forget --customer-id ID`` erases one customer (GDPR art. 17);
``python -m monitoring.privacy retain`` deletes predictions older than the retention period.
Customer ids are never stored in clear: both tables hold the keyed hash of the id, so erasure
hashes the given id with the service's key and deletes by hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from churn.settings import Settings, get_settings
from monitoring.labels import labels_table
from serving.predlog import hash_id, make_engine, predictions_table


@dataclass(frozen=True)
class Erased:
    predictions: int
    labels: int


def forget_customer(settings: Settings, customer_id: str) -> Erased:
    """Delete every prediction and label of one customer; returns the rows deleted per table."""
    _, key = settings.serving_secrets()
    digest = hash_id(key, customer_id)
    return Erased(
        predictions=_delete(
            settings.prediction_log_uri,
            predictions_table,
            predictions_table.c.customer_hash == digest,
        ),
        labels=_delete(settings.labels_uri, labels_table, labels_table.c.customer_hash == digest),
    )


def apply_retention(settings: Settings, now: datetime | None = None) -> int:
    """Delete predictions logged more than ``prediction_retention_days`` ago; returns the count."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.prediction_retention_days)
    return _delete(
        settings.prediction_log_uri, predictions_table, predictions_table.c.logged_at < cutoff
    )


def _delete(url: str, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    engine = make_engine(url)
    try:
        if not sa.inspect(engine).has_table(table.name):
            return 0
        with engine.begin() as conn:
            return int(conn.execute(table.delete().where(where)).rowcount or 0)
    finally:
        engine.dispose()


cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
ProjectDir = Annotated[Path, typer.Option("--project-dir", "-C", help="Project root.")]


@cli.command()
def forget(
    customer_id: Annotated[str, typer.Option("--customer-id", help="The id as the CRM knows it.")],
    project_dir: ProjectDir = Path(),
) -> None:
    """Erase one customer from the prediction log and the labels."""
    erased = forget_customer(get_settings(project_dir=project_dir), customer_id)
    typer.echo(f"erased {erased.predictions} predictions and {erased.labels} labels")


@cli.command()
def retain(project_dir: ProjectDir = Path()) -> None:
    """Delete predictions older than CHURN_PREDICTION_RETENTION_DAYS (default 90)."""
    settings = get_settings(project_dir=project_dir)
    deleted = apply_retention(settings)
    typer.echo(
        f"deleted {deleted} predictions older than {settings.prediction_retention_days} days"
    )


if __name__ == "__main__":
    cli()
