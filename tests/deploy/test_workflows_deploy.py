"""The deployment workflows: the kind workflow's steps are the Make targets a person runs, and
the release workflow signs by digest, attests provenance and attaches the SBOMs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_the_kind_workflow_runs_the_make_targets_in_order() -> None:
    job = load("kind.yml")["jobs"]["kind"]
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert "helm/kind-action" in uses
    runs = [s["run"] for s in job["steps"] if "run" in s and s.get("if") != "failure()"]
    targets = [r.removeprefix("make ") for r in runs]
    assert targets == [
        "helm",
        "kind-images",
        "kind-install",
        "kind-train",
        "kind-smoke",
        "kind-test",
    ]
    makefile = (ROOT / "Makefile").read_text()
    for target in targets:
        assert re.search(rf"^{target}:.*## ", makefile, re.M), (
            f"make {target}: no documented target"
        )
    install = makefile.split("\nkind-install:", 1)[1].split("\n\n", 1)[0]
    assert "values-dev.yaml" in install and "helm" in install.lower()


def test_the_release_signs_and_attests_each_image_by_digest_and_attaches_the_sboms() -> None:
    workflow = load("cd.yml")
    image = workflow["jobs"]["image"]
    assert image["permissions"]["id-token"] == "write"  # keyless signing: the job's OIDC token
    steps = image["steps"]
    sign = next(s for s in steps if "cosign sign" in s.get("run", ""))
    assert all("@${{ steps." in v and ".outputs.digest }}" in v for v in sign["env"].values())
    attested = [
        s["with"]["subject-digest"] for s in steps if "attest-build-provenance" in s.get("uses", "")
    ]
    assert attested == [
        "${{ steps.serving.outputs.digest }}",
        "${{ steps.pipeline.outputs.digest }}",
    ]
    sboms = [s["with"] for s in steps if s.get("uses", "").startswith("anchore/sbom-action@")]
    assert [s["format"] for s in sboms] == ["cyclonedx-json"] * 2
    assert any(s.get("run") == "make sbom SBOM=sbom/environment.cdx.json" for s in steps)
    release = workflow["jobs"]["release"]
    assert release["permissions"] == {"contents": "write"}
    assert "gh release upload" in release["steps"][-1]["run"]
