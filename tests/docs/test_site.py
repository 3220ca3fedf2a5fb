"""The documentation site builds strictly and offline, and its reference pages are the code's.

One ``mkdocs build --strict`` (what ``make docs-build`` and the Pages workflow run) into a
temporary folder: a broken link or anchor, a page left out of the nav, a docstring mkdocstrings
cannot read or a reference generator that fails makes it exit non-zero, and the test shows
mkdocs' output. The built pages then load nothing from another host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a page may load from elsewhere: nothing. (Links to other sites are fine; loading is not.)
LOADS = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=["']((?:https?:)?//[^"']+)"""
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_every_page_loads_nothing_from_another_host(site: Path) -> None:
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10
    outside = {
        f"{page.relative_to(site)}: {url}"
        for page in pages
        for url in LOADS.findall(page.read_text(encoding="utf-8"))
    }
    assert not outside, sorted(outside)


def test_the_cli_reference_has_every_command_of_the_app(site: Path) -> None:
    import typer

    from pipelines.cli import commands  # noqa: F401  (puts every command on the app)
    from pipelines.cli.context import app

    page = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    names = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert names
    assert [n for n in names if f"churn {n}" not in page] == []


def test_the_settings_and_params_references_follow_the_models(site: Path) -> None:
    from churn.config.params import Params
    from churn.config.settings import Settings

    settings = (site / "reference" / "settings" / "index.html").read_text(encoding="utf-8")
    assert [n for n in Settings.model_fields if n.upper() not in settings.upper()] == []
    params = (site / "reference" / "params" / "index.html").read_text(encoding="utf-8")
    blocks = [f.alias or n for n, f in Params.model_fields.items()]
    assert [b for b in blocks if f"<code>{b}</code>" not in params] == []


def test_the_http_reference_has_every_path_of_the_service(site: Path) -> None:
    # The document the build took from serving.app.create_app(), published beside the page.
    document = json.loads((site / "reference" / "openapi.json").read_text(encoding="utf-8"))
    assert document["info"]["title"].endswith("prediction service")
    page = (site / "reference" / "http-api" / "index.html").read_text(encoding="utf-8")
    routes = [f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops]
    assert "POST /predict" in routes and len(routes) >= 5
    assert [r for r in routes if r not in page] == []
    assert 'href="../openapi.json"' in page


def test_the_landing_page_is_the_readme_with_its_links_into_the_site(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "make train" in page and "/predict" in page
    assert 'href="getting-started/"' in page
    assert 'href="docs/' not in page
