"""The GitHub workflows: pinned actions, least privilege, and the training job's steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# owner/repo@<40 hex> # v1.2.3: a tag can be moved, a commit cannot.
PINNED = re.compile(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    for line in path.read_text().splitlines():
        if "uses:" in line:
            assert PINNED.search(line.strip().removeprefix("- ")), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_granted_per_job_and_checkout_keeps_no_credentials(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}, "top level grants nothing; each job asks for its own"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} has no permissions block"
    for step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_the_training_workflow_runs_the_make_targets_in_order() -> None:
    """train.yml's steps are the Make targets tests/production/test_continuous_training.py runs
    (as the `churn` commands behind them), in the same order."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/train.yml").read_text())
    runs = [s.get("run", "") for s in steps(workflow)]
    targets = [r.split("make ", 1)[1].split()[0] for r in runs if "make " in r]
    assert targets == [
        "install",
        "pull-data",
        "train-challenger",
        "check-challenger",
        "promote-challenger",
        "job-summary",
    ]
    makefile = (ROOT / "Makefile").read_text()
    for target, command in {
        "pull-data": "churn pull-data",
        "train-challenger": "churn train --no-promote --frozen-data",
        "check-challenger": "churn check-challenger",
        "promote-challenger": "churn promote --require-checks",
        "job-summary": "churn job-summary",
    }.items():
        recipe = makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
        assert command in recipe, (target, recipe)


# Images pinned by tag alone, each with the reason (a digest nobody has verified is not written).
TAG_ONLY = {"prefecthq/prefect:3.8.8-python3.11": "digest not verified yet (no registry access)"}
DIGEST = re.compile(r"^[\w./-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")


def test_base_images_are_pinned_by_digest_and_dependabot_updates_them() -> None:
    """A moved tag cannot change an image behind the lock: FROM lines and compose images name a
    digest (the tag beside it for people and Dependabot), and Dependabot proposes new ones."""
    froms = [
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ") and line.split()[1] not in ("scratch",)
    ]
    bases = [ref for ref in froms if "/" in ref or ":" in ref]  # not a stage of this file
    assert len(bases) >= 3, froms
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = [s["image"] for s in compose["services"].values() if "image" in s]
    for ref in bases + images:
        assert DIGEST.match(ref) or ref in TAG_ONLY, f"{ref} is pinned by tag only"
    ecosystems = {
        u["package-ecosystem"]
        for u in yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())["updates"]
    }
    assert {"docker", "docker-compose"} <= ecosystems
