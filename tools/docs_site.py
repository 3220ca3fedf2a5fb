"""The documentation site's generated pages (an MkDocs hook, mkdocs.yml ``hooks:``).

At every build it writes, from the code itself so that they cannot drift: the landing page
(README.md with its links turned into the site's), the changelog (CHANGELOG.md), and the
reference: every ``churn`` command's ``--help``, the settings (``Settings``' fields), the keys of
``params.yaml`` (its pydantic models), the HTTP API (the service's OpenAPI document) and the
Python API (mkdocstrings reads the docstrings). Nothing is written into ``docs/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent

# The library's packages, top-down as the lifecycle goes (docs/architecture.md), then the
# services: each gets its docstrings on the Python API page.
PYTHON_API = (
    ("churn.config", "Settings, params.yaml and the project's identity"),
    ("churn.data", "Ingest, validate, split"),
    ("churn.features", "Feature engineering"),
    ("churn.models", "The model candidates"),
    ("churn.training", "Search, fit, evaluate"),
    ("churn.scoring", "Scoring a frame and explaining a score"),
    ("churn.release", "The promotion gate and the history"),
    ("churn.champion", "The champion record"),
    ("churn.prediction_store", "The prediction log"),
    ("churn.engine", "The engine interface (pandas, Dask)"),
    ("serving.schemas", "The HTTP service's request and response models"),
    ("monitoring.decision", "The monitoring decision"),
)

_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def site_link(target: str) -> str | None:
    """Where a README link points on the site: a docs page, the changelog, an outside address,
    or None for a repository file the site does not carry (the text is kept, unlinked)."""
    if re.match(r"^[a-z]+:|^#", target):
        return target
    path, _, anchor = target.partition("#")
    if path.startswith("docs/"):
        return path.removeprefix("docs/") + (f"#{anchor}" if anchor else "")
    if path == "CHANGELOG.md":
        return "changelog.md" + (f"#{anchor}" if anchor else "")
    return None


def landing_page(readme: str) -> str:
    """README.md as the site's home page: links into docs/ become the site's pages."""

    def relink(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        link = site_link(target)
        return f"{bang}[{text}]({link})" if link is not None else text

    return _LINK.sub(relink, readme)


def _fence(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```\n"


def cli_page() -> str:
    """``churn --help`` and every command's ``--help``, as the terminal prints them."""
    import typer
    from typer.testing import CliRunner

    from pipelines.cli import commands  # noqa: F401  (puts every command on the app)
    from pipelines.cli.context import app

    runner = CliRunner()

    def help_of(words: list[str]) -> str:
        result = runner.invoke(
            app, [*words, "--help"], prog_name="churn", env={"COLUMNS": "100", "NO_COLOR": "1"}
        )
        if result.exit_code != 0:
            raise RuntimeError(f"churn {' '.join(words)} --help failed: {result.output}")
        return result.output

    def walk(group: Any, words: list[str]) -> list[list[str]]:
        found = []
        for name, command in group.commands.items():
            if getattr(command, "hidden", False):
                continue
            found.append([*words, name])
            if hasattr(command, "commands"):
                found.extend(walk(command, [*words, name]))
        return found

    out = [
        "# Command line: `churn`\n",
        "Generated from the code at build time (`churn <command> --help`): this page cannot",
        "drift from the CLI. The Makefile's targets call these commands (`make help`).\n",
        _fence(help_of([])),
    ]
    for words in walk(typer.main.get_command(app), []):
        out += [f"## `churn {' '.join(words)}`\n", _fence(help_of(words))]
    return "\n".join(out)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        return "computed at start"
    if field.default is PydanticUndefined:
        return "required"
    if hasattr(field.default, "model_dump"):
        return "(the block below)"
    return f"`{field.default!r}`"


def settings_page() -> str:
    """The settings: every ``Settings`` field's variable, default and description."""
    from pydantic import AliasChoices

    from churn.config.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    rows = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            variables = [str(a) for a in alias.choices]
        else:
            variables = [str(alias) if alias else f"{prefix}{name}".upper()]
        names = ", ".join(f"`{v}`" for v in variables)
        rows.append(f"| {names} | {_default(field)} | {_cell(field.description or '')} |")
    return "\n".join(
        [
            "# Settings\n",
            "Infrastructure settings: one typed object (`churn.config.settings.Settings`), read",
            "from the environment and `.env`. Generated from its fields at build time. ML",
            "parameters live in `params.yaml` instead ([params.yaml](params.md)).\n",
            "| variable | default | what it is |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )


def _constraints(field: Any) -> str:
    parts = []
    for item in field.metadata:
        for key, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("pattern", "~")):
            value = getattr(item, key, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(f"`{p}`" for p in parts)


def _type(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def params_page() -> str:
    """``params.yaml``: every block's keys, types, defaults and constraints, from its models."""
    import inspect

    import yaml
    from pydantic import BaseModel

    from churn.config.params import Params

    current = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")) or {}
    out = [
        "# params.yaml\n",
        "The ML parameters (DVC reads them too), checked by the pydantic models of",
        "`churn.config.params` when any command reads the file: an unknown key or a value out of",
        "range is refused, naming the key. Generated from those models at build time; the last",
        "column is this repository's `params.yaml`.\n",
    ]

    def block(model: type[BaseModel], path: list[str], values: object) -> None:
        doc = inspect.cleandoc(model.__doc__ or "")
        out.append(f"## `{'.'.join(path)}`\n")
        if doc:
            out.append(doc + "\n")
        rows, nested = [], []
        for name, field in model.model_fields.items():
            key = field.alias or name
            annotation = field.annotation
            value = values.get(key, "") if isinstance(values, dict) else ""
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((annotation, [*path, key], value))
                rows.append(
                    f"| `{key}` | [block](#{'.'.join([*path, key]).replace('.', '')}) | | | |"
                )
                continue
            shown = f"`{json.dumps(value)}`" if value != "" else ""
            rows.append(
                f"| `{key}` | {_cell(_type(annotation))} | {_default(field)} | "
                f"{_cell(_constraints(field))} | {shown} |"
            )
        out.extend(
            ["| key | type | default | allowed | here |", "|---|---|---|---|---|", *rows, ""]
        )
        for args in nested:
            block(*args)

    for name, field in Params.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        assert isinstance(annotation, type)
        block(annotation, [key], current.get(key, {}))
    return "\n".join(out)


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document, from the app as ``make serve`` builds it (no model is
    loaded: that happens when the server starts)."""
    from churn.config.settings import get_settings
    from serving.app import create_app

    settings = get_settings(project_dir=ROOT, environment="development")
    return create_app(settings).openapi()


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " / ".join(f"`{v}`" for v in schema["enum"])
    return str(schema.get("type", "any"))


def http_api_page(doc: dict[str, Any]) -> str:
    """The HTTP API as tables: each path's parameters, body, answers, then each schema."""
    out = [
        f"# HTTP API: {doc['info']['title']}, version {doc['info'].get('version', '?')}\n",
        "Generated from the service's OpenAPI document at build time (`serving.app.create_app()`).",
        "The document itself: [openapi.json](openapi.json). A running service serves the same",
        "document at `/openapi.json` and renders it at `/docs` and `/redoc`, offline",
        "([Serving](../serving.md)).\n",
    ]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            out.append(f"## `{method.upper()} {path}`\n")
            out.append(f"**{op.get('summary', '')}**. {op.get('description', '')}\n")
            params = op.get("parameters", [])
            if params:
                out += [
                    "| parameter | in | type | required | description |",
                    "|---|---|---|---|---|",
                ]
                for p in params:
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {_cell(_schema_name(p.get('schema', {})))} "
                        f"| {p.get('required', False)} | {_cell(p.get('description', ''))} |"
                    )
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out.append(f"Body (`{media}`): {_schema_name(content.get('schema', {}))}\n")
                if "example" in content:
                    out.append("```json\n" + json.dumps(content["example"], indent=2) + "\n```\n")
            out += ["| status | answer |", "|---|---|"]
            for status, answer in op.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                shape = f" ({_schema_name(schema)})" if schema else ""
                out.append(f"| {status} | {_cell(answer.get('description', ''))}{_cell(shape)} |")
            out.append("")
    out.append("## Schemas\n")
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out.append(f"### {name}\n")
        if schema.get("description"):
            out.append(_cell(schema["description"]) + "\n")
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        if props:
            out += ["| field | type | required | description |", "|---|---|---|---|"]
            for field, spec in props.items():
                out.append(
                    f"| `{field}` | {_cell(_schema_name(spec))} | {field in required} | "
                    f"{_cell(spec.get('description', ''))} |"
                )
            out.append("")
    return "\n".join(out)


def python_api_page() -> str:
    """The library's public API: mkdocstrings renders each module's docstrings."""
    out = [
        "# Python API\n",
        "The library's packages and the services, from their docstrings (mkdocstrings, at build",
        "time). Which package owns what, and the import rule between them:",
        "[Architecture](../architecture.md).\n",
    ]
    for module, what in PYTHON_API:
        out += [
            f"## {what}\n",
            f"::: {module}",
            "    options:",
            "      heading_level: 3",
            "      show_submodules: true",
            "",
        ]
    return "\n".join(out)


def generated_pages() -> dict[str, str]:
    """Every generated page (and the OpenAPI document), by its path on the site."""
    changelog = ROOT / "CHANGELOG.md"
    document = openapi_document()
    return {
        "index.md": landing_page((ROOT / "README.md").read_text(encoding="utf-8")),
        "changelog.md": landing_page(changelog.read_text(encoding="utf-8")),
        "reference/cli.md": cli_page(),
        "reference/settings.md": settings_page(),
        "reference/params.md": params_page(),
        "reference/http-api.md": http_api_page(document),
        "reference/openapi.json": json.dumps(document, indent=2) + "\n",
        "reference/python-api.md": python_api_page(),
    }


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """MkDocs hook: the site is named by the identity block (a rename edits only that block)."""
    from churn.config.identity import identity

    config.site_name = identity().title
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """MkDocs hook: add the generated pages to the site (in memory; docs/ is left as it is)."""
    for uri, content in generated_pages().items():
        if files.get_file_from_path(uri) is not None:
            raise RuntimeError(f"docs/{uri} exists but is generated: delete it")
        files.append(File.generated(config, uri, content=content))
    return files
