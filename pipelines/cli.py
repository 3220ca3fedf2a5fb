"""The ``churn`` command line: one sub-command per stage, service and tool, defined here only.

It sits at the top of the layers (it may call the library, serving, monitoring, the flows and the
tools), and imports each part inside its command, so ``churn serve`` starts without Prefect and
``churn --help`` starts in a fraction of a second. The Makefile calls these commands.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)  # paths and messages are never cut

DATA, TRAIN, CT, SERVE, MONITOR, PRIVACY, TOOLS = (
    "Data (init-dataset, then the stages dvc.yaml runs)",
    "Training and the registry",
    "Continuous training (the steps of .github/workflows/train.yml)",
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
    from pipelines import gc_policy

    gc_policy.no_collection_at_exit()  # seconds after a flow (pipelines/gc_policy.py)
    # skops (MLflow's format for scikit-learn models) looks up the module of every NumPy and
    # SciPy ufunc when it is imported, scanning sys.modules in import order until a match: with
    # these two loaded before Prefect, MLflow and the rest, each scan stops within the first
    # few hundred modules (skops' import in `churn train`: 0.8 s instead of 3.4 s).
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # One INFO line per HTTP request (to the Prefect server, MLflow's, the service) is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _fail(message: object, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code)


def _settings(ctx: typer.Context) -> Any:
    from churn.config.settings import SettingsError, get_settings

    try:
        return get_settings(project_dir=ctx.obj.project_dir)
    except SettingsError as exc:  # names each field and rule, never the value
        raise _fail(exc, 2) from None


def _context(ctx: typer.Context) -> tuple[Any, Any]:
    """Settings and ``params.yaml``, or a clear error naming the file and the key."""
    from churn.config.params import load_params
    from churn.models import check_params

    settings = _settings(ctx)
    try:
        params = load_params(settings.params_path)
        check_params(params)  # the candidates and their blocks (churn.models), before any stage
        return settings, params
    except FileNotFoundError:
        raise _fail(f"{settings.params_path} not found (use --project-dir)", 2) from None
    except ValueError as exc:  # pydantic.ValidationError names the key
        raise _fail(f"{settings.params_path} is invalid:\n{exc}", 2) from None


class _DataErrorsWithoutTraceback(logging.Filter):
    """Prefect logs a failed task's traceback; for a data problem the message alone is shown.

    A ``churn.config.errors.DataError`` (an unreadable file, a label with one value, missing
    columns)
    is something the user fixes in the data or ``params.yaml``: the log keeps its one-line
    message and the command ends on it, without a stack of Prefect and DVC frames first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and _data_error(record.exc_info[1]) is not None:
            record.exc_info = None
            record.exc_text = None
        return True


def _data_error(exc: BaseException | None) -> BaseException | None:
    """The ``DataError`` behind ``exc`` (itself, its cause or its context), if any."""
    from churn.config.errors import DataError

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DataError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


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


@app.command("init-dataset", rich_help_panel=DATA)
def init_dataset(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="The data file(s): CSV (separator, encoding, decimal mark detected) or Parquet; "
            "several files of the same columns are read one after the other.",
            show_default=False,
        ),
    ],
    label: Annotated[str, typer.Option(help="The label column (churned or not).")],
    positive: Annotated[
        str | None,
        typer.Option(
            help="The label value that means churn, as the file holds it (default: the "
            "minority of the two values)."
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="The customer id column (default: a unique column named like an id, or none: "
            "rows are then keyed by content).",
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write/--dry-run",
            help="Write the ingest and dataset blocks into params.yaml (other blocks and comments "
            "are kept), or only print the summary and the blocks.",
        ),
    ] = True,
) -> None:
    """Profile a churn data set and write params.yaml's ingest and dataset blocks from it.

    Prints one line per column (role, type, levels or range, why). Then edit what it could not
    know (a time column, codes that are quantities, ranges) and run `make train`.
    """
    from churn.config.errors import DataError
    from churn.data import params_file, profiling

    settings = _settings(ctx)
    files = [p.resolve() for p in paths]
    for file in files:
        if not file.is_file():
            raise _fail(f"{file} is not a file", 2)
    written = [_project_path(f, settings.project_dir) for f in files]
    try:
        with console.status(f"profiling {len(files)} file(s)..."):
            profile = profiling.profile_files(
                files, label, positive=positive, id_column=id_column, written_paths=written
            )
        text, removed = params_file.render_params(settings.params_path.read_text(), profile)
    except DataError as exc:
        raise _fail(exc, 2) from None
    except FileNotFoundError:
        raise _fail(f"{settings.params_path} not found (use --project-dir)", 2) from None
    out = Console(soft_wrap=True, markup=False, highlight=False)  # names and levels as they are
    out.print(_profile_table(profile))
    ds = profile.dataset
    excluded = [f"{c.name} ({c.role})" for c in profile.columns if c.role in ("pii", "ignored")]
    out.print(
        f"{profile.n_rows} rows; id: {ds.id_column or 'none'}; features: {len(ds.numeric)} "
        f"numeric, {len(ds.categorical)} categorical; excluded: {', '.join(excluded) or 'none'}"
    )
    for note in profile.notes:
        out.print(f"- {note}")
    if removed:
        out.print(
            f"- removed, as they name columns or levels this data lacks: {', '.join(removed)}"
        )
    if not write:
        blocks = re.findall(r"^(?:ingest|dataset):\n(?:[ #].*\n|\n)*", text, flags=re.MULTILINE)
        out.print("".join(blocks))
        out.print("--dry-run: params.yaml unchanged")
        return
    settings.params_path.write_text(text)
    out.print(
        f"wrote the ingest and dataset blocks of {_project_path(settings.params_path, Path.cwd())} "
        f"(label {ds.label_column!r} = {ds.positive_label!r}, id {ds.id_column or 'none'}); "
        "read the comments there, then `make train`"
    )


def _project_path(path: Path, project_dir: Path) -> str:
    """How params.yaml names a file: relative to the project when inside it."""
    try:
        return str(path.relative_to(project_dir))
    except ValueError:
        return str(path)


def _profile_table(profile: Any) -> Table:
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for name in ("column", "role", "type", "levels or range", "why"):
        table.add_column(name, overflow="fold")
    style = {"label": "bold", "id": "cyan", "pii": "magenta", "ignored": "yellow"}
    for c in profile.columns:
        cells = [Text(x) for x in (c.name, c.role, c.kind, c.summary, c.why)]
        table.add_row(*cells, style=style.get(c.role))
    return table


@app.command(rich_help_panel=DATA)
def ingest(ctx: typer.Context) -> None:
    """Read the source named in params.yaml (ingest.kind) into data/raw/customers.parquet."""
    from churn.data import stages as data_stages
    from churn.data.ingest import IngestError

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
    from churn.data import stages as data_stages
    from churn.data.validate import ContractError

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
    from churn.data import stages as data_stages

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
    _context(ctx)  # fail fast on a broken params.yaml, before Prefect starts
    from pipelines.training import training_flow

    quiet = _DataErrorsWithoutTraceback()
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(quiet)
    try:
        training_flow(
            str(ctx.obj.project_dir),
            force_ingest=force_ingest,
            push=push,
            promote=promote,
            frozen_data=frozen_data,
            retrain=retrain,
        )
    except Exception as exc:  # Prefect logged the reason (the traceback unless a data problem)
        raise _fail(_data_error(exc) or exc) from exc


@app.command(rich_help_panel=TRAIN)
def warm(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running warm process.")] = False,
) -> None:
    """Start the warm process in the background, or keep the one that is up: it imports the
    flows' libraries once, and `churn train` and `churn monitor` then run in a fresh child of
    it, seconds faster (pipelines/warm.py; `make warm`, which the flow targets run)."""
    from pipelines import warm as warm_process

    path = warm_process.socket_path()
    if path is None:
        raise _fail("PREFECT_HOME is not set: the warm process keeps its socket there", 2)
    if stop:
        console.print(warm_process.stop(path))
        return
    try:
        console.print(warm_process.start(path))
    except RuntimeError as exc:
        raise _fail(exc) from None


@app.command(rich_help_panel=TRAIN)
def evaluate(
    ctx: typer.Context,
    alias: Annotated[str, typer.Option(help="Registry alias to evaluate.")] = "champion",
) -> None:
    """Evaluate a registered model on the current test split at its recorded threshold."""
    from churn.data import stages as data_stages
    from churn.release.evaluate import evaluate_registered

    settings, params = _context(ctx)
    test = data_stages.load_splits(settings)["test"]
    with console.status(f"scoring {len(test)} test rows with the {alias!r} version..."):
        try:
            result = evaluate_registered(settings, params, test, alias)
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
    from churn.champion import ChampionInfo
    from churn.release import registry, tracking

    settings = _settings(ctx)
    try:
        version = registry.aliased_version(tracking.connect(settings), settings.model_name, alias)
        record = ChampionInfo.from_version(version)
    except LookupError as exc:
        raise _fail(f"{exc} (tracking URI {settings.tracking_uri})") from exc
    info = {
        "name": settings.model_name,
        "alias": alias,
        "model_uri": f"models:/{settings.model_name}@{alias}",
        "tracking_uri": settings.tracking_uri,
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
    by: Annotated[str | None, typer.Option(help="Who asks (recorded on the version).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded on the version).")] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from churn.release import registry, tracking

    settings = _settings(ctx)
    try:
        old, new = registry.rollback(
            tracking.connect(settings), settings.model_name, to, by=by, reason=reason
        )
    except Exception as exc:
        raise _fail(exc) from exc
    console.print(f"champion moved from v{old} to v{new}")


# -- continuous training ----------------------------------------------------------------------


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
        raise _fail(exc) from exc
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
            raise _fail(
                f"dvc.lock at this checkout records data version {version}, not {expect!r}: "
                f"the tag is on a commit whose dvc.lock records other data; tag that commit "
                f"again with `make tag-data`",
                2,
            )
        fetched = versioning.pull_data(project)
    except versioning.VersioningError as exc:
        raise _fail(exc) from exc
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

    settings, params = _context(ctx)
    client = tracking.connect(settings)
    try:
        version = str(registry.aliased_version(client, settings.model_name, alias).version)
        with console.status(f"loading v{version} and its test rows..."):
            candidate = model_checks.load_candidate(settings, version)
    except (LookupError, VersioningError) as exc:
        raise _fail(exc) from exc
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
            raise _fail("--from-live promotes the live challenger: drop --force and --version", 2)
        _promote_from_live(ctx, by)
        return
    settings = _settings(ctx)
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
        raise _fail(exc) from exc
    except registry.PromotionRefused as exc:
        raise _fail(exc) from exc
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

    settings, params = _context(ctx)
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
        raise _fail(exc) from None
    except (LookupError, registry.PromotionRefused) as exc:
        raise _fail(exc) from None
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

    settings = _settings(ctx)
    client = tracking.connect(settings)
    try:
        if version is None:
            version = str(registry.aliased_version(client, settings.model_name, "champion").version)
        registry.record_image(client, settings.model_name, version, digest, image)
    except (LookupError, ValueError) as exc:
        raise _fail(exc) from exc
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

    settings = _settings(ctx)
    client = tracking.connect(settings)
    try:
        if version is None:
            version = str(
                registry.aliased_version(client, settings.model_name, "challenger").version
            )
        facts = summary_.read_summary(client, settings.model_name, version, settings.tracking_uri)
    except LookupError as exc:
        raise _fail(exc) from exc
    text = summary_.render_markdown(facts)
    if output is None:
        print(text)
    else:
        with output.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        console.print(f"summary of v{version} appended to {output}")


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
    try:
        settings.serving_secrets()  # so is a missing key (create_app checks it too)
    except ValueError as exc:
        raise _fail(exc, 2) from None
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
) -> None:
    """Score a file with the registry's champion (else the cached copy, else the rules)."""
    from serving.batch import EngineMissing, require_dask, score_file, score_partitioned

    logging.getLogger().setLevel(logging.WARNING)
    settings, params = _context(ctx)
    kind = engine or params.engine.kind
    if kind not in ("pandas", "dask"):
        raise _fail(f"--engine: {kind!r} is not an engine; use pandas or dask", 2)
    try:
        if kind == "dask":
            from churn.engine import dask_client

            if explain:
                raise _fail("--explain runs on the pandas engine; drop --engine dask", 2)
            require_dask()  # a clear error where dask is not installed (the serving image)
            with dask_client(settings, params.engine) as client:
                summary = score_partitioned(settings, str(input_path), output_path, client)
        else:
            summary = score_file(
                settings,
                input_path,
                output_path,
                chunk_rows,
                explain_top_k=top_k if explain else None,
            )
    except (ValueError, FileNotFoundError, EngineMissing) as exc:
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
    _context(ctx)
    from pipelines import gc_policy

    with gc_policy.importing():  # the collector skips these objects after (gc_policy)
        from pipelines.monitoring import monitoring_flow

    quiet = _DataErrorsWithoutTraceback()  # e.g. a prediction-log URL naming no file
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(quiet)
    try:
        outcome = monitoring_flow(
            str(ctx.obj.project_dir),
            retrain=retrain,
            promote_from_live=promote_from_live,
            current=current,
        )
    except Exception as exc:
        error = _data_error(exc)
        if error is None:
            raise
        raise _fail(error) from exc
    if outcome.training and outcome.training.get("state") not in (None, "Completed"):
        raise typer.Exit(1)


@app.command(rich_help_panel=MONITOR)
def deployments(ctx: typer.Context) -> None:
    """Register weekly training and hourly monitoring as Prefect deployments and serve their runs.

    Needs a Prefect server (PREFECT_API_URL; `make prefect-server` starts one). Runs until stopped.
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
    from churn.prediction_store import MissingStoreError, PredictionStore

    store = PredictionStore.from_settings(_settings(ctx))
    try:
        erased = store.forget(customer_id)
    except MissingStoreError as exc:
        raise _fail(exc) from None
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

    settings = _settings(ctx)
    store = PredictionStore.from_settings(settings)
    try:
        deleted = store.apply_retention(settings.prediction_retention_days)
    except MissingStoreError as exc:
        raise _fail(exc) from None
    finally:
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

    import httpx

    from churn.prediction_store import MissingStoreError, PredictionStore

    sim = _tool("simulate")
    try:
        kind = sim.DriftKind(drift)
    except ValueError:
        choices = ", ".join(k.value for k in sim.DriftKind)
        raise _fail(f"--drift {drift!r} is not one of: {choices}", 2) from None
    settings = _settings(ctx)
    customers = sim.make_customers(rows, seed, kind)
    api_key, _ = settings.serving_secrets()
    try:
        sent = sim.send_traffic(url, customers, batch_size=batch_size, api_key=api_key)
    except httpx.ConnectError:
        raise _fail(
            f"no prediction service answers at {url}: start one with `make serve` "
            "(another terminal), or pass the running one's --url (make simulate PORT=...)"
        ) from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        hint = (
            "set CHURN_API_KEY to the service's key"
            if status == 401
            else exc.response.text[:200].strip()
        )
        raise _fail(f"{url}/predict answered {status}: {hint}") from None
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
    try:
        written = sim.send_labels(PredictionStore.from_settings(settings), customers)
    except MissingStoreError as exc:
        raise _fail(exc) from None
    console.print(f"labels: wrote {written} true outcomes to {settings.labels_url}")


@app.command(rich_help_panel=TOOLS)
def demo(
    dest: Annotated[Path, typer.Option(help="Where the demo's own project goes (replaced).")] = (
        Path("reports/demo/project")
    ),
    live: Annotated[
        bool,
        typer.Option(
            help="The retrain runs as a shadow challenger, promoted from live evidence; "
            "--no-live: the gate promotes it directly (the monitoring flow's own retrain)."
        ),
    ] = True,
) -> None:
    """The whole loop on a throw-away copy: train, serve, drifted traffic, monitor, retrain as a
    challenger, shadow it on live traffic, promote it from live evidence, hot swap."""
    result = _tool("demo").run_demo(dest.resolve(), live=live)
    console.print(f"demo finished in {result['seconds']:.0f} s")


@app.command(rich_help_panel=TOOLS)
def screenshots(
    out: Annotated[Path, typer.Option(help="Where the PNGs go (replaced).")] = Path(
        "docs/screenshots"
    ),
    work: Annotated[
        Path, typer.Option(help="The throw-away project, its servers' state and logs (replaced).")
    ] = Path("reports/screenshots"),
) -> None:
    """The docs' screenshots, taken again (headless /usr/bin/chromium, offline).

    A throw-away project is trained, served and monitored five times; then /docs, a report's
    summary, the Evidently dashboard, the MLflow run's datasets and the Prefect run's artefacts
    are photographed into --out.
    """
    module = _tool("screenshots")
    try:
        shots = module.run(out.resolve(), work.resolve())
    except module.ScreenshotError as exc:
        raise _fail(exc) from None
    console.print(f"{len(shots)} screenshots in {out}")


@bench.command("serve")
def bench_serve(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(help="Length of each measured load run.")] = 8.0,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 8,
    rounds: Annotated[int, typer.Option(help="A/B rounds (alternating); medians are printed.")] = 3,
    batch_rows: Annotated[int, typer.Option(help="Rows for the batch comparison.")] = 1_000_000,
    peer: Annotated[bool, typer.Option(help="Also run mlflow models serve.")] = True,
    shadow: Annotated[
        bool,
        typer.Option(
            help="Instead: the service with a shadow challenger running against without one, "
            "in a throw-away fork under reports/bench-shadow (trains it first)."
        ),
    ] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            help="Instead: CPU per /predict request with the app called in process, whole and "
            "with each part replaced by a constant, against the floor's app (no sockets)."
        ),
    ] = False,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Instead: this checkout's service against another checkout's (e.g. a worktree "
            "of main) on the same project, the floor up too: req/s, p99, event loop CPU per "
            "request, ratios to the floor (one-row requests).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """The service against the HTTP floor (same stack, constant answer) and `mlflow models serve`
    on the same champion (wrk; prints ratios); with --shadow, the cost of a shadow challenger."""
    if against is not None:
        try:
            _tool("bench_serve").run_against(
                ctx.obj.project_dir, against, seconds, connections, rounds
            )
        except FileNotFoundError as exc:  # not a checkout of this project
            raise _fail(f"--against: {exc}", 2) from None
        return
    if in_process:
        _tool("bench_app").run(ctx.obj.project_dir, rounds=max(rounds, 5), echo=console.print)
        return
    module = _tool("bench_serve")
    if shadow:
        dest = (ctx.obj.project_dir / "reports" / "bench-shadow" / "project").resolve()
        module.run_shadow(dest, seconds, connections, rounds)
        return
    module.run(ctx.obj.project_dir, seconds, connections, rounds, batch_rows, peer)


@bench.command("train")
def bench_train(
    rounds: Annotated[
        int, typer.Option(min=1, help="Alternating rounds; medians are printed.")
    ] = 3,
) -> None:
    """`churn train` (nothing changed; --retrain) as a process of its own against the warm
    process, in a throw-away fork on the default data (PREFECT_API_URL: `make bench-train`)."""
    try:
        _tool("bench_train").run(rounds, echo=console.print)
    except RuntimeError as exc:
        raise _fail(exc) from None


@bench.command("monitor")
def bench_monitor(
    seeds: Annotated[
        int, typer.Option(min=1, help="Un-shifted windows for the false alarms.")
    ] = 50,
    skip_million: Annotated[bool, typer.Option(help="Skip the 1,000,000-row run.")] = False,
) -> None:
    """Monitoring time and memory at 100k and 1M logged predictions; false alarms."""
    _tool("bench_monitor").run(seeds, skip_million, echo=console.print)


@bench.command("scale")
def bench_scale(
    rows: Annotated[int, typer.Option(min=1000, help="Generated customers.")] = 1_000_000,
    engines: Annotated[
        str, typer.Option(help="Comma-separated engines to run, in order: pandas, dask.")
    ] = "pandas,dask",
    workers: Annotated[int, typer.Option(min=1, help="LocalCluster workers (dask).")] = 2,
    memory_limit: Annotated[str, typer.Option(help="Memory limit per worker (dask).")] = "5GiB",
    steps: Annotated[
        str,
        typer.Option(
            help="training: generate, validate, split, train (reports/bench-scale-ROWS.json); "
            "scoring: batch scoring and monitoring of ROWS customers with a trained champion "
            "(reports/bench-scale-steps-ROWS.json); all: both."
        ),
    ] = "training",
) -> None:
    """The stages on each engine at ROWS rows: wall time, peak memory of the process and of each
    dask worker; test ROC AUC (training), rows judged and drifted columns (scoring)."""
    chosen = tuple(e.strip() for e in engines.split(",") if e.strip())
    unknown = sorted(set(chosen) - {"pandas", "dask"})
    if unknown or not chosen:
        raise _fail(f"unknown engine(s) {unknown or engines!r}; choose from pandas, dask", 2)
    if steps not in ("training", "scoring", "all"):
        raise _fail(f"unknown --steps {steps!r}; choose from training, scoring, all", 2)
    if steps in ("training", "all"):
        _tool("bench_scale").run(rows, chosen, workers, memory_limit, echo=console.print)
    if steps in ("scoring", "all"):
        _tool("bench_scale_steps").run(rows, chosen, workers, memory_limit, echo=console.print)


@bench.command("real-data")
def bench_real_data(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Which shared files: telco, iranian (default: both).", show_default=False
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="train.search.n_trials of the fork (default: the template's)."),
    ] = None,
) -> None:
    """init-dataset then training on the shared real files (../shared/data), in a throw-away
    fork: rows, roles, the champion's, baseline's and a plain XGBoost's test ROC AUC, and the
    candidates' comparison table."""
    module = _tool("real_data")
    unknown = sorted(set(names or []) - set(module.REAL_FILES))
    if unknown:
        raise _fail(f"unknown file(s) {unknown}; choose from {sorted(module.REAL_FILES)}", 2)
    module.main(names, trials)


if __name__ == "__main__":
    app()
