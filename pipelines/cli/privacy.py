"""The privacy commands: ``forget`` (one customer, GDPR art. 17) and ``retention`` (old
predictions)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.context import PRIVACY, app, console, fail, load_settings


@app.command(rich_help_panel=PRIVACY)
def forget(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Option("--customer-id", help="The id as the CRM knows it.")],
) -> None:
    """Erase one customer from the prediction log and the labels (GDPR art. 17)."""
    from churn.prediction_store import MissingStoreError, PredictionStore

    store = PredictionStore.from_settings(load_settings(ctx))
    try:
        erased = store.forget(customer_id)
    except MissingStoreError as exc:
        raise fail(exc) from None
    finally:
        store.close()
    console.print(f"erased {erased.predictions} predictions and {erased.labels} labels")
    if not erased.predictions and not erased.labels:
        # Ids are matched by keyed hash: a different CHURN_ID_HASH_KEY from the service's
        # matches nothing, and would otherwise look exactly like a customer already erased.
        console.print(
            "[yellow]warning:[/] nothing matched this id: either it was never logged (or was "
            "already erased), or CHURN_ID_HASH_KEY is not the key the service hashed ids with"
        )


@app.command(rich_help_panel=PRIVACY)
def retention(ctx: typer.Context) -> None:
    """Delete predictions older than CHURN_PREDICTION_RETENTION_DAYS (default 90)."""
    from churn.prediction_store import MissingStoreError, PredictionStore

    settings = load_settings(ctx)
    store = PredictionStore.from_settings(settings)
    try:
        deleted = store.apply_retention(settings.prediction_retention_days)
    except MissingStoreError as exc:
        raise fail(exc) from None
    finally:
        store.close()
    console.print(
        f"deleted {deleted} predictions older than {settings.prediction_retention_days} days"
    )
