"""Continuous training, step by step, as .github/workflows/train.yml runs it: against real servers.

A data version is tagged (`churn tag-data`, refused until dvc.lock is committed and the data is on
the S3 remote), pulled back from the remote into an empty cache (`churn pull-data`), trained
without moving the champion (`churn train --no-promote --frozen-data`), checked with a real
service on the challenger (`churn check-challenger`) and promoted (`churn promote
--require-checks`). Then a worse model on the same data is refused by the gate, fails its checks,
cannot be promoted, and the champion does not move. Each step is the command its Make target
runs, in a subprocess with production settings (PostgreSQL, S3, MLflow and Prefect servers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from churn.config.identity import identity
from tools.fork import CHURN

from .conftest import BIN, DATABASE_URL, REPORT, SKIP_REASON, Stack, run

pytestmark = [
    pytest.mark.production,
    pytest.mark.integration,  # servers and real training runs: not part of `-m "not integration"`
    pytest.mark.skipif(not DATABASE_URL, reason=SKIP_REASON),
]

MODEL = identity().model_name  # the registered model: pyproject.toml's identity block
GIT = ["git", "-c", "user.name=ct-test", "-c", "user.email=ct-test@localhost"]
# A model the gate must refuse against the first one: two stumps, no search, no random forest.
WORSE = {
    "xgboost": {"n_estimators": 2, "max_depth": 1},
    "search": {"n_trials": 0},
    "candidates": ["logistic", "xgboost"],
}
DATA_OUTPUTS = ("data/raw", "data/validated", "data/splits")


def env_of(stack: Stack) -> dict[str, str]:
    """The stack's production settings, with this environment's console scripts on PATH (the
    stages in dvc.yaml run `churn ...`)."""
    return {**stack.env, "PATH": f"{BIN}{os.pathsep}{stack.env.get('PATH', '')}"}


def churn(
    stack: Stack, *args: str, check: bool = True, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    """One `churn` command in the project, as its Make target runs it."""
    started = time.monotonic()
    done = run(
        [*CHURN, "-C", str(stack.project), *args],
        env_of(stack),
        stack.project,
        timeout,
        f"churn {args[0]}",
        stack.server_logs,
        check=check,
    )
    REPORT[f"churn {' '.join(args)[:40]}"] = f"{time.monotonic() - started:.0f} s"
    return done


def shell(stack: Stack, *cmd: str) -> subprocess.CompletedProcess[str]:
    return run(list(cmd), env_of(stack), stack.project, 300, " ".join(cmd[:3]), stack.server_logs)


def client(stack: Stack) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.mlflow.url, registry_uri=stack.mlflow.url)


def aliases(stack: Stack) -> dict[str, str]:
    return {k: str(v) for k, v in client(stack).get_registered_model(MODEL).aliases.items()}


def tags(stack: Stack, version: str) -> dict[str, str]:
    return dict(client(stack).get_model_version(MODEL, version).tags)


def output(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


@dataclass
class Tagged:
    data_version: str
    tag: str
    commit: str
    refusals: dict[str, subprocess.CompletedProcess[str]]
    tagged: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def tagged(stack: Stack) -> Tagged:
    """`make data`, then `make tag-data` before the commit, before the push, and after both."""
    from churn.data.versioning import data_version, locked_data_files

    shell(stack, str(BIN / "dvc"), "repro")
    refusals = {"uncommitted": churn(stack, "tag-data", check=False)}
    shell(stack, *GIT, "add", "dvc.lock")
    shell(stack, *GIT, "commit", "-qm", "data: a new version")
    refusals["not pushed"] = churn(stack, "tag-data", check=False)
    shell(stack, str(BIN / "dvc"), "push")
    done = churn(stack, "tag-data")
    version = data_version(locked_data_files(stack.project))
    head = shell(stack, "git", "rev-parse", "HEAD").stdout.strip()
    return Tagged(version, f"data-{version}", head, refusals, done)


def test_tag_data_refuses_an_uncommitted_dvc_lock_and_data_missing_on_the_remote(
    tagged: Tagged,
) -> None:
    uncommitted = tagged.refusals["uncommitted"]
    assert uncommitted.returncode == 1, output(uncommitted)
    assert "dvc.lock has uncommitted changes: commit it first" in output(uncommitted)
    missing = tagged.refusals["not pushed"]
    assert missing.returncode == 1, output(missing)
    assert "are not on the DVC remote" in output(missing) and "run `dvc push` first" in output(
        missing
    )


def test_tag_data_tags_the_commit_with_its_data_version_and_prints_the_push(
    stack: Stack, tagged: Tagged
) -> None:
    assert f"git push origin {tagged.tag}" in tagged.tagged.stdout
    target = shell(stack, "git", "rev-parse", f"refs/tags/{tagged.tag}^{{commit}}").stdout.strip()
    assert target == tagged.commit
    again = churn(stack, "tag-data")  # the same commit again: nothing new, no error
    assert f"already tagged {tagged.commit[:12]} as {tagged.tag}" in output(again)


@dataclass
class Release:
    """The good path: pull, train without promoting, check, promote, summarise."""

    version: str
    pulled: subprocess.CompletedProcess[str]
    wrong_tag: subprocess.CompletedProcess[str]
    trained: subprocess.CompletedProcess[str]
    aliases_after_training: dict[str, str]
    decision_after_training: str
    checked: subprocess.CompletedProcess[str]
    promoted: subprocess.CompletedProcess[str]
    summary: str
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def release(stack: Stack, tagged: Tagged, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The workflow's steps from a fresh state: the cache and the data are gone, as in a new
    checkout of the tag, so the data must come back from the S3 remote."""
    shutil.rmtree(stack.project / ".dvc" / "cache", ignore_errors=True)
    for folder in DATA_OUTPUTS:
        shutil.rmtree(stack.project / folder, ignore_errors=True)
    seconds: dict[str, float] = {}

    def step(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = churn(stack, *args, check=check)
        seconds[name] = time.monotonic() - started
        return done

    wrong = step("pull-data (wrong tag)", "pull-data", "--expect", "data-000000000000", check=False)
    pulled = step("pull-data", "pull-data", "--expect", tagged.tag)
    trained = step("train-challenger", "train", "--no-promote", "--frozen-data")
    version = aliases(stack)["challenger"]
    after_training = aliases(stack)
    decision = tags(stack, version)["promotion.decision"]
    checked = step("check-challenger", "check-challenger")
    promoted = step("promote-challenger", "promote", "--require-checks")
    summary_file = tmp_path_factory.mktemp("summary") / "step_summary.md"
    step("job-summary", "job-summary", "--output", str(summary_file))
    REPORT["continuous training"] = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    return Release(
        version, pulled, wrong, trained, after_training, decision, checked, promoted,
        summary_file.read_text(), seconds,
    )  # fmt: skip


def test_pull_data_brings_the_tagged_data_back_from_the_s3_remote(
    stack: Stack, tagged: Tagged, release: Release
) -> None:
    from churn.data.versioning import cached_file_path, locked_data_files

    assert release.wrong_tag.returncode == 2, output(release.wrong_tag)
    assert f"records data version {tagged.data_version}, not 'data-000000000000'" in output(
        release.wrong_tag
    )
    assert f"data version {tagged.data_version} ({tagged.tag}) in the workspace" in output(
        release.pulled
    )
    files = locked_data_files(stack.project)
    for path in ("data/raw/customers.parquet", "data/splits/test.parquet"):
        assert (stack.project / path).is_file(), path
        assert cached_file_path(stack.project / ".dvc" / "cache", files[path]).is_file()


def test_training_without_promotion_leaves_the_champion_and_records_the_approval(
    stack: Stack, tagged: Tagged, release: Release
) -> None:
    """The gate decided (approved, no champion yet) but `champion` did not move; the version
    carries the tagged data version and the tagged commit."""
    assert "champion" not in release.aliases_after_training, release.aliases_after_training
    assert f"churn v{release.version}: approved, awaiting checks" in output(release.trained)
    assert release.decision_after_training == "approved"
    recorded = tags(stack, release.version)
    assert recorded["promotion.promote"] == "True"
    assert recorded["data_version"] == tagged.data_version
    assert recorded["git_commit"] == tagged.commit


def test_the_checks_ran_on_the_challenger_with_a_real_service(
    stack: Stack, release: Release
) -> None:
    assert release.checked.returncode == 0, output(release.checked)
    recorded = tags(stack, release.version)
    assert recorded["promotion.checks_passed"] == "True"
    checks = {c["name"]: c for c in json.loads(recorded["promotion.checks"])}
    expected = {"gate_decision", "id_invariance", "monotone:Contract", "scorer_parity"}
    assert expected | {"smoke_predict"} <= set(checks), checks
    assert all(c["passed"] for c in checks.values()), checks
    assert "Month-to-month >= Two year" in checks["monotone:Contract"]["detail"]
    assert checks["smoke_predict"]["detail"].startswith("/predict on 50 rows")
    # The smoke service logged to its own throw-away store, never the production prediction log.
    rows = count_rows(stack, "predictions")
    assert rows in (None, 0), f"{rows} smoke predictions reached the production prediction log"


def test_promote_moves_the_champion_to_the_checked_version(stack: Stack, release: Release) -> None:
    assert f"champion moved from none to v{release.version}" in output(release.promoted)
    assert aliases(stack)["champion"] == release.version
    assert tags(stack, release.version)["promotion.decision"] == "promoted"
    info = json.loads(churn(stack, "model-info", "--json").stdout)
    assert info["version"] == release.version


def test_the_job_summary_shows_decision_figures_checks_and_the_run(
    stack: Stack, tagged: Tagged, release: Release
) -> None:
    text = release.summary
    recorded = tags(stack, release.version)
    assert text.startswith(f"## churn v{release.version} is champion\n"), text[:300]
    assert f"**Reason:** {recorded['promotion.reason']}" in text
    assert f"| challenger v{release.version} | {float(recorded['test_roc_auc']):.4f} |" in text
    assert (
        f"| baseline (logistic regression) | {float(recorded['baseline_test_roc_auc']):.4f} |"
        in (text)
    )
    assert "| smoke_predict | pass |" in text and f"`{tagged.tag}`" in text
    run_id = client(stack).get_model_version(MODEL, release.version).run_id
    assert "/#/experiments/" in text and f"/runs/{run_id}?workflowType=machine_learning)" in text
    assert stack.mlflow.url in text


def test_a_released_image_is_recorded_on_the_champion(stack: Stack, release: Release) -> None:
    """What cd.yml does after pushing the images (`make record-image`)."""
    digest = "sha256:" + "ab" * 32
    churn(stack, "record-image", "--digest", digest, "--image", "ghcr.io/acme/churn")
    info = json.loads(churn(stack, "model-info", "--json").stdout)
    assert (info["version"], info["image_digest"]) == (release.version, digest)


@dataclass
class Refused:
    version: str
    trained: subprocess.CompletedProcess[str]
    checked: subprocess.CompletedProcess[str]
    promoted: subprocess.CompletedProcess[str]
    forced_without_reason: subprocess.CompletedProcess[str]
    summary: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def refused(stack: Stack, release: Release) -> Refused:
    """A worse model on the same data version, through the same steps."""
    path = stack.project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["xgboost"].update(WORSE["xgboost"])
    params["train"]["search"].update(WORSE["search"])
    params["train"]["candidates"] = WORSE["candidates"]
    path.write_text(yaml.safe_dump(params))
    shell(stack, *GIT, "commit", "-qam", "a worse model")
    trained = churn(stack, "train", "--no-promote", "--frozen-data")
    version = aliases(stack)["challenger"]
    checked = churn(stack, "check-challenger", check=False)
    promoted = churn(stack, "promote", "--require-checks", check=False)
    forced = churn(stack, "promote", "--version", version, "--force", check=False)
    summary = churn(stack, "job-summary", "--version", version)
    return Refused(version, trained, checked, promoted, forced, summary)


def test_the_gate_refuses_the_worse_model_and_the_champion_stays(
    stack: Stack, release: Release, refused: Refused
) -> None:
    assert refused.version != release.version
    assert f"churn v{refused.version}: not promoted (champion unchanged)" in output(refused.trained)
    recorded = tags(stack, refused.version)
    assert recorded["promotion.decision"] == "rejected"
    assert (
        float(recorded["promotion.challenger_roc_auc"])
        < float(recorded["promotion.champion_roc_auc"]) + 0.002
    )
    assert aliases(stack)["champion"] == release.version


def test_its_checks_fail_and_promote_refuses_it(
    stack: Stack, release: Release, refused: Refused
) -> None:
    """A failed step leaves the champion unchanged: the checks fail (exit 1), so the workflow
    stops; and `churn promote` run anyway refuses, as does a force without who and why."""
    assert refused.checked.returncode == 1, output(refused.checked)
    recorded = tags(stack, refused.version)
    assert recorded["promotion.checks_passed"] == "False"
    failed = [c["name"] for c in json.loads(recorded["promotion.checks"]) if not c["passed"]]
    assert "gate_decision" in failed, failed
    assert refused.promoted.returncode == 1, output(refused.promoted)
    assert (
        f"v{refused.version} is not promoted: the gate's recorded decision is 'rejected'"
        in output(refused.promoted)
    )
    assert refused.forced_without_reason.returncode == 1
    assert "give --by NAME and --reason TEXT" in output(refused.forced_without_reason)
    assert aliases(stack)["champion"] == release.version
    assert tags(stack, refused.version)["promotion.decision"] == "rejected"
    summary = refused.summary.stdout
    assert summary.startswith(
        f"## churn v{refused.version} refused by the gate: champion unchanged (v{release.version})"
    ), summary[:300]
    assert "**Checks:** FAILED" in summary


def count_rows(stack: Stack, table: str) -> int | None:
    """Rows in one of the app database's tables; None when the table does not exist."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(stack.libpq("app"), connect_timeout=10) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        result = row.fetchone()
    return int(result[0]) if result else 0
