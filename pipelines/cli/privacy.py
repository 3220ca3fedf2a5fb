"""The privacy commands: ``forget`` (one customer, GDPR art. 17) and ``retention`` (old
predictions); and ``dead-letters`` (the prediction log's rows the store refused)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pipelines.cli.context import PRIVACY, SERVE, app, console, fail, load_settings


@app.command(rich_help_panel=PRIVACY)
def forget(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Option("--customer-id", help="The id as the CRM knows it.")],
) -> None:
    """Erase one customer from the prediction log (the store, the service's journal and its dead
    letters) and the labels (GDPR art. 17).

    The journal first, then the store: segments no running service owns and the dead letters
    are rewritten without the customer's rows; a running service gets a tombstone and drops
    the customer's rows logged before it when it delivers them. It holds the tombstones' lock
    while it delivers, so a delivery that began before the erasure has committed before the
    rows are deleted from the store (docs/serving.md, "Erasure").
    """
    import sqlalchemy as sa

    from churn.prediction_store import MissingStoreError, PredictionStore
    from serving.journal import erase_customer, journal_root

    settings = load_settings(ctx)
    store = PredictionStore.from_settings(settings)
    try:
        digest = store.hash_id(customer_id)
        journal = erase_customer(journal_root(store, settings.prediction_journal_dir), digest)
        erased = store.forget(customer_id)
    except MissingStoreError as exc:
        raise fail(exc) from None
    except sa.exc.SQLAlchemyError as exc:  # the journal is erased; the store could not be
        raise fail(
            f"the customer's journaled rows are erased, but the store refused the erasure "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}): run churn forget again "
            "once it answers"
        ) from None
    finally:
        store.close()
    console.print(
        f"erased {erased.predictions} predictions and {erased.labels} labels; from the journal "
        f"{journal.journal_rows} rows and {journal.dead_letters} dead letters"
    )
    if journal.live_owners:
        console.print(
            f"{journal.live_owners} running service process(es) own journaled rows: a tombstone "
            "makes them drop this customer's rows logged until now"
        )
    if not (erased.predictions or erased.labels or journal.journal_rows or journal.dead_letters):
        # Ids are matched by keyed hash: a different CHURN_ID_HASH_KEY from the service's
        # matches nothing, and would otherwise look exactly like a customer already erased.
        console.print(
            "[yellow]warning:[/] nothing matched this id: either it was never logged (or was "
            "already erased), or CHURN_ID_HASH_KEY is not the key the service hashed ids with"
        )


dead_letters = typer.Typer(
    help="Rows the prediction store refused as data, set aside by the service (list, replay).",
    no_args_is_help=True,
)
app.add_typer(dead_letters, name="dead-letters", rich_help_panel=SERVE)


def _dead_letters(ctx: typer.Context) -> tuple[Any, Any]:
    from churn.prediction_store import PredictionStore
    from serving.journal import DeadLetters, journal_root

    settings = load_settings(ctx)
    store = PredictionStore.from_settings(settings)
    return store, DeadLetters(journal_root(store, settings.prediction_journal_dir))


@dead_letters.command("list")
def dead_letters_list(ctx: typer.Context) -> None:
    """Print each dead letter (id, when, the store's reason, request id) on stdout."""
    store, letters = _dead_letters(ctx)
    store.close()
    found = letters.read()
    for letter in found:
        request = letter.row[1] if letter.row and len(letter.row) > 1 else "(unreadable line)"
        typer.echo(f"{letter.id}  {letter.dead_at}  {request}  {letter.reason}")
    console.print(f"{len(found)} dead letters in {letters.path}")


@dead_letters.command("replay")
def dead_letters_replay(ctx: typer.Context) -> None:
    """Insert the dead letters into the store again (after fixing the store or the rows); the
    ones it still refuses stay, with its new reason. Exit 1 if any stays."""
    from churn.prediction_store import MissingStoreError

    store, letters = _dead_letters(ctx)
    try:
        stored, kept = letters.replay(store)
    except MissingStoreError as exc:
        raise fail(exc) from None
    finally:
        store.close()
    console.print(f"stored {stored} dead letters; {len(kept)} stay in {letters.path}")
    if kept:
        raise typer.Exit(1)


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
