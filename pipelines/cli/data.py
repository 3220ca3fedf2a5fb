"""The data commands: ``init-dataset`` (profile a file, write ``params.yaml``'s blocks), then the
stages ``dvc.yaml`` runs (``ingest``, ``events``, ``validate``, ``split``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipelines.cli.context import DATA, app, console, fail, load_context, load_settings

SAMPLE_ROWS = 100_000  # churn.data.profiling.SAMPLE_ROWS (not imported: --help stays fast)


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
    encoding: Annotated[
        str | None,
        typer.Option(
            help="The CSV files' encoding (cp1252, cp932, utf-16...). Default: detected (a "
            "byte-order mark, UTF-8, else charset-normalizer's guess; a guess it cannot make "
            "stops with this option named). Written to ingest.encoding.",
            show_default=False,
        ),
    ] = None,
    sample_rows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Rows profiled at most: a file with more is read in chunks (progress on "
            "stderr) and a seeded uniform sample of this many rows is profiled, as the summary "
            "and params.yaml's comment say. 0: every row.",
        ),
    ] = SAMPLE_ROWS,
    name: Annotated[
        str | None,
        typer.Option(
            help="The data set's lineage name (dataset.name): its own registered model, champion, "
            "monitoring project and reports. Default: the first file's name, slugified "
            "(customers_2024.csv -> customers_2024).",
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
    know (a time column, codes that are quantities, ranges) and run `make train`. The data set
    gets its own lineage (dataset.name, --name): its first model is judged as a first champion,
    never against another data set's.
    """
    from churn.config.errors import DataError
    from churn.config.params import LINEAGE_NAME_PATTERN
    from churn.data import params_file, profiling

    settings = load_settings(ctx)
    files = [p.resolve() for p in paths]
    for file in files:
        if not file.is_file():
            raise fail(f"{file} is not a file", 2)
    written = [_project_path(f, settings.project_dir) for f in files]
    try:
        with _reading(files) as progress:
            profile = profiling.profile_files(
                files,
                label,
                positive=positive,
                id_column=id_column,
                written_paths=written,
                encoding=encoding,
                sample_rows=sample_rows,
                progress=progress,
            )
        lineage = name or params_file.lineage_slug(files[0].stem)
        if not re.match(LINEAGE_NAME_PATTERN, lineage):
            raise fail(
                f"--name {lineage!r}: a lineage name is letters, digits, '_', '.' or '-' "
                "(at most 63 characters, starting with a letter or digit)",
                2,
            )
        text, removed = params_file.render_params(
            settings.params_path.read_text(encoding="utf-8"), profile, name=lineage
        )
    except DataError as exc:
        raise fail(exc, 2) from None
    except FileNotFoundError:
        raise fail(f"{settings.params_path} not found (use --project-dir)", 2) from None
    out = Console(soft_wrap=True, markup=False, highlight=False)  # names and levels as they are
    table = _profile_table(profile)
    if not out.is_terminal:  # piped or redirected: a row per column, never a cell wrapped
        width = out.measure(table, options=out.options.update_width(1 << 16)).maximum
        out = Console(soft_wrap=True, markup=False, highlight=False, width=width)
    out.print(table)
    ds = profile.dataset
    excluded = [f"{c.name} ({c.role})" for c in profile.columns if c.role in ("pii", "ignored")]
    rows = f"{profile.n_rows} rows"
    if profile.total_rows is not None:
        rows = f"{profile.n_rows:,} of {profile.total_rows:,} rows (sampled)"
    out.print(
        f"{rows}; id: {ds.id_column or 'none'}; features: {len(ds.numeric)} "
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
    settings.params_path.write_text(text, encoding="utf-8")
    out.print(
        f"wrote the ingest and dataset blocks of {_project_path(settings.params_path, Path.cwd())} "
        f"(label {ds.label_column!r} = {ds.positive_label!r}, id {ds.id_column or 'none'}, "
        f"lineage {lineage!r}: its own registered model and champion); "
        "read the comments there, then `make train`"
    )


@contextmanager
def _reading(files: list[Path]) -> Iterator[Callable[[int, int, int], None]]:
    """Progress of the chunked read on stderr: a bar in a terminal, else a line per 10 %."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("reading", total=sum(f.stat().st_size for f in files))

            def update(done: int, total: int, rows: int) -> None:
                described = "profiling" if done >= total else f"reading {rows:,} rows"
                bar.update(task, completed=done, total=total, description=described)

            yield update
        return
    said = [0]

    def line(done: int, total: int, rows: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > said[0] and total > 64 << 20:  # small files are read in a blink
            said[0] = tenth
            then = "; profiling" if done >= total else ""
            console.print(f"read {done / total:.0%} of {total / 1e6:,.0f} MB ({rows:,} rows){then}")

    yield line


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

    settings, params = load_context(ctx)
    with console.status(f"reading the {params.ingest.kind} source..."):
        try:
            rows = data_stages.ingest(settings, params)
        except IngestError as exc:
            raise fail(exc) from exc
    console.print(f"ingested {rows} rows from the {params.ingest.kind} source")


@app.command(rich_help_panel=DATA)
def events(ctx: typer.Context) -> None:
    """Write the generated customers' activity events and label times under data/raw/.

    The behaviour data of the optional feature store (docs/feature-store.md); a data set of your
    own (ingest.kind other than generator) gets the two tables empty.
    """
    from churn.data import stages as data_stages

    settings, params = load_context(ctx)
    with console.status("drawing the activity events..."):
        count = data_stages.events(settings, params)
    console.print(f"wrote {count} activity events ({params.ingest.kind} source)")


@app.command(rich_help_panel=DATA)
def validate(ctx: typer.Context) -> None:
    """Apply the data contract: valid rows to data/validated/, invalid ones to quarantine."""
    from churn.data import stages as data_stages
    from churn.data.validate import ContractError

    settings, params = load_context(ctx)
    with console.status("validating against the data contract..."):
        try:
            report = data_stages.validate(settings, params)
        except ContractError as exc:
            raise fail(exc) from exc
    console.print(
        f"{report.n_valid} valid rows, {report.n_quarantined} quarantined "
        f"({report.quarantined_share:.2%}); reasons: {report.reasons or 'none'}"
    )


@app.command(rich_help_panel=DATA)
def split(ctx: typer.Context) -> None:
    """Split validated rows into seeded train / valid / test files under data/splits/."""
    from churn.data import stages as data_stages

    settings, params = load_context(ctx)
    try:
        counts = data_stages.split(settings, params)
    except ValueError as exc:
        raise fail(exc) from exc
    console.print("rows per split: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
