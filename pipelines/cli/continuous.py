"""Continuous training, the steps of ``.github/workflows/train.yml`` in order: tag and pull the
data version, check a challenger, promote it (or the live challenger), record the released image,
write the run's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.cli.context import CT, app, console, fail, load_context, load_settings


@app.command("tag-data", rich_help_panel=CT)
def tag_data(ctx: typer.Context) -> None:
    """Tag the commit data-<data version> for the data its dvc.lock records (not pushed).

    Refuses when dvc.lock has uncommitted changes or the DVC remote lacks any of its files.
    Pushing the tag starts the training workflow (.github/workflows/train.yml).
    """
    from churn.data import versioning

    try:
        tag = versioning.tag_data_version(ctx.obj.project_dir)
    except versioning.VersioningError as exc:
        raise fail(exc) from exc
    done = "tagged" if tag.created else "already tagged"
    console.print(f"{done} {tag.commit[:12]} as {tag.name} (data version {tag.data_version})")
    console.print("to start the training workflow, push the tag:")
    print(f"git push origin {tag.name}")


@app.command("pull-data", rich_help_panel=CT)
def pull_data(
    ctx: typer.Context,
    expect: Annotated[
        str | None,
        typer.Option(
            help="The data tag (data-<version>) or version the checkout must record; refuse "
            "to pull anything else.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Pull the data version dvc.lock records from the DVC remote (dvc pull)."""
    from churn.data import versioning

    project = ctx.obj.project_dir
    try:
        version = versioning.data_version(versioning.locked_data_files(project))
        if expect is not None and expect.removeprefix(versioning.DATA_TAG_PREFIX) != version:
            raise fail(
                f"dvc.lock at this checkout records data version {version}, not {expect!r}: "
                f"the tag is on a commit whose dvc.lock records other data; tag that commit "
                f"again with `make tag-data`",
                2,
            )
        fetched = versioning.pull_data(project)
    except versioning.VersioningError as exc:
        raise fail(exc) from exc
    console.print(
        f"data version {version} ({versioning.data_tag_name(version)}) in the workspace; "
        f"{fetched} files fetched from the remote"
    )


@app.command("check-challenger", rich_help_panel=CT)
def check_challenger(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias of the version to check.")] = (
        "challenger"
    ),
    smoke: Annotated[
        bool, typer.Option(help="Also start a service on the alias and check /predict.")
    ] = True,
) -> None:
    """Check a registered version before it may become champion; record the outcome on it.

    The gate's recorded decision is a promotion; the customer id changes no score; every
    train.monotone direction holds on the version's test rows; the re-loaded model scores like
    the pipeline; a real `churn serve` on the alias answers /predict with the pipeline's scores.
    Exits 1 when any fails; `churn promote` refuses a version whose checks failed.
    """
    from churn.data.versioning import VersioningError
    from churn.release import checks as model_checks
    from churn.release import registry, tracking

    settings, params = load_context(ctx)
    client = tracking.connect(settings)
    try:
        version = str(registry.aliased_version(client, settings.model_name, alias).version)
        with console.status(f"loading v{version} and its test rows..."):
            candidate = model_checks.load_candidate(settings, version)
    except (LookupError, VersioningError) as exc:
        raise fail(exc) from exc
    with console.status(f"checking v{version} on {len(candidate.test)} test rows..."):
        outcomes = model_checks.offline_checks(settings, params, candidate)
    if smoke:
        with console.status(f"starting a service on {alias!r} for a smoke /predict..."):
            outcomes.append(_smoke_predict(ctx.obj.project_dir, params, alias, candidate))
    registry.record_checks(client, settings.model_name, version, outcomes)
    table = Table("check", "result", "detail", title=f"{settings.model_name} v{version}")
    for o in outcomes:
        table.add_row(o.name, "pass" if o.passed else "[red]FAIL[/]", o.detail)
    Console(width=200).print(table)
    console.print(f"v{version}: {model_checks.summarise(outcomes)} (recorded on the version)")
    if not all(o.passed for o in outcomes):
        raise typer.Exit(1)


def _smoke_predict(project_dir: Path, params: Any, alias: str, candidate: Any) -> Any:
    """Start `churn serve` on ``alias``, send real rows to /predict, compare with the pipeline."""
    import httpx

    from churn.release import checks as model_checks
    from churn.release.registry import CheckOutcome
    from pipelines.challenger import ServiceFailed, serve_alias

    rows = candidate.test.head(model_checks.SMOKE_ROWS)
    expected = model_checks.churn_scores(candidate.model, rows)
    records = model_checks.request_records(rows, params.dataset)
    try:
        with (
            serve_alias(project_dir, alias) as service,
            httpx.Client(base_url=service.url, timeout=60) as http,
        ):
            served = http.get("/version").json()
            answer = http.post(
                "/predict", json={"records": records}, headers={"X-API-Key": service.api_key}
            )
    except (ServiceFailed, httpx.HTTPError) as exc:
        return CheckOutcome("smoke_predict", False, f"{type(exc).__name__}: {exc}")
    try:
        body = answer.json()
    except ValueError:
        body = answer.text
    return model_checks.smoke_predict(
        served, answer.status_code, body, version=candidate.version, alias=alias, expected=expected
    )


@app.command(rich_help_panel=CT)
def promote(
    ctx: typer.Context,
    version: Annotated[
        str | None,
        typer.Option(
            help="Version to make champion; default: the challenger's.", show_default=False
        ),
    ] = None,
    require_checks: Annotated[
        bool, typer.Option(help="Refuse a version whose checks never ran (the training job).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Override the gate and the checks (a person's call: needs --by, --reason)."
        ),
    ] = False,
    by: Annotated[str | None, typer.Option(help="Who promotes (recorded on the version).")] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why, for a forced promotion (recorded on the version).")
    ] = None,
    from_live: Annotated[
        bool,
        typer.Option(
            help="Promote the challenger only if live traffic proves it better: each model has "
            "live.min_labelled_rows labelled predictions in the monitoring window and the "
            "interval of the ROC AUC difference lies above 0 (the evidence is recorded)."
        ),
    ] = False,
) -> None:
    """Move the champion to a version whose recorded gate decision (and checks) allow it.

    Services following the champion pick it up by themselves. Without --force it refuses a
    version the gate rejected, one whose checks failed, and one the gate compared with a
    champion that has since been replaced. With --from-live it also refuses a challenger that
    live traffic (params.yaml live) has not proven better, and says what is missing.
    """
    from churn.release import registry, tracking

    if from_live:
        if force or version is not None:
            raise fail("--from-live promotes the live challenger: drop --force and --version", 2)
        _promote_from_live(ctx, by)
        return
    settings = load_settings(ctx)
    client = tracking.connect(settings)
    try:
        if version is None:
            version = str(
                registry.aliased_version(client, settings.model_name, "challenger").version
            )
        previous, new = registry.promote(
            client,
            settings.model_name,
            version,
            require_checks=require_checks,
            force=force,
            by=by,
            reason=reason,
        )
    except LookupError as exc:  # no such version, or no champion record on it
        raise fail(exc) from exc
    except registry.PromotionRefused as exc:
        raise fail(exc) from exc
    if previous == new:
        console.print(f"v{new} is already champion; nothing moved")
    else:
        moved = "from none" if previous is None else f"from v{previous}"
        console.print(f"champion moved {moved} to v{new}" + (" (forced)" if force else ""))


def _promote_from_live(ctx: typer.Context, by: str | None) -> None:
    """``churn promote --from-live``: compare on the prediction store's window, then promote."""
    from datetime import UTC, datetime

    from churn.prediction_store import MissingStoreError, PredictionStore
    from churn.release import registry
    from churn.release.live import NotProven
    from monitoring import job
    from monitoring import live as mlive

    settings, params = load_context(ctx)
    store = PredictionStore.from_settings(settings)
    try:
        with console.status("comparing champion and challenger on labelled live traffic..."):
            comparison = mlive.compare_live(
                settings, params, store, datetime.now(UTC), job.champion_version(settings)
            )
        console.print(comparison.format())
        who = by or "churn promote --from-live"
        previous, new = mlive.promote_from_live(settings, comparison, by=who)
    except (mlive.NoLiveEvidence, MissingStoreError, NotProven) as exc:
        raise fail(exc) from None
    except (LookupError, registry.PromotionRefused) as exc:
        raise fail(exc) from None
    finally:
        store.close()
    console.print(
        f"champion moved from v{previous} to v{new} on live evidence (recorded on the version as "
        "promotion.live.*)"
    )


@app.command("record-image", rich_help_panel=CT)
def record_image(
    ctx: typer.Context,
    digest: Annotated[str, typer.Option(help="The pushed image's digest, sha256:<hex>.")],
    image: Annotated[
        str | None, typer.Option(help="The image's name (ghcr.io/owner/repo).", show_default=False)
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(help="Version to record it on; default: the champion.", show_default=False),
    ] = None,
) -> None:
    """Record a released image's digest on the model version it serves (tag image_digest)."""
    from churn.release import registry, tracking

    settings = load_settings(ctx)
    client = tracking.connect(settings)
    try:
        if version is None:
            version = str(registry.aliased_version(client, settings.model_name, "champion").version)
        registry.record_image(client, settings.model_name, version, digest, image)
    except (LookupError, ValueError) as exc:
        raise fail(exc) from exc
    console.print(f"v{version}: image_digest {digest}" + (f" ({image})" if image else ""))


@app.command("job-summary", rich_help_panel=CT)
def job_summary(
    ctx: typer.Context,
    version: Annotated[
        str | None,
        typer.Option(help="Version to summarise; default: the challenger's.", show_default=False),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Append to this file (the workflow passes $GITHUB_STEP_SUMMARY); default: stdout.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The run's Markdown summary: decision, reason, both models' figures, checks, MLflow run."""
    import churn.release.job_summary as summary_
    from churn.release import registry, tracking

    settings = load_settings(ctx)
    client = tracking.connect(settings)
    try:
        if version is None:
            version = str(
                registry.aliased_version(client, settings.model_name, "challenger").version
            )
        facts = summary_.read_summary(client, settings.model_name, version, settings.tracking_uri)
    except LookupError as exc:
        raise fail(exc) from exc
    text = summary_.render_markdown(facts)
    if output is None:
        print(text)
    else:
        with output.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        console.print(f"summary of v{version} appended to {output}")
