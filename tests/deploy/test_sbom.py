"""`make sbom`: the locked environment's CycloneDX SBOM lists every package of uv.lock, at its
locked version, and names the project as the component it describes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from churn.config.identity import identity

ROOT = Path(__file__).resolve().parents[2]


def locked_packages() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"] if p["name"] != identity().project}


@pytest.fixture(scope="module")
def sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if shutil.which("make") is None:
        pytest.skip("no make")
    path = tmp_path_factory.mktemp("sbom") / "sbom.cdx.json"
    done = subprocess.run(
        ["make", "--no-print-directory", "sbom", f"SBOM={path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{path}: " in done.stdout  # the target says how many components it wrote
    return json.loads(path.read_text())


def test_the_sbom_lists_every_locked_package_at_its_version(sbom: dict[str, Any]) -> None:
    assert sbom["bomFormat"] == "CycloneDX"
    listed = {c["name"]: c["version"] for c in sbom["components"]}
    locked = locked_packages()
    assert not set(locked) - set(listed), "locked but not in the SBOM"
    assert not set(listed) - set(locked), "in the SBOM but not locked"
    assert listed == locked
    assert all(c["purl"] == f"pkg:pypi/{c['name']}@{c['version']}" for c in sbom["components"])


def test_the_sbom_describes_the_project(sbom: dict[str, Any]) -> None:
    assert sbom["metadata"]["component"]["name"] == identity().project
