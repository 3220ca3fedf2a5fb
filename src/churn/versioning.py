"""Data and code versions: DVC stages, the data version in ``dvc.lock``, the DVC remote, git."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


class VersioningError(RuntimeError):
    """DVC or git could not do what was asked."""


def reproduce_stage(stage: str, project_dir: Path, *, force: bool = False) -> bool:
    """Run one ``dvc.yaml`` stage through DVC, which skips it when nothing it depends on changed.

    Returns:
        True when the stage ran, False when DVC reused its cached outputs.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(project_dir)) as repo:
            ran = repo.reproduce(stage, single_item=True, force=force)
    except DvcException as exc:
        raise VersioningError(f"dvc repro {stage} failed: {exc}") from exc
    log.info("dvc stage %s: %s", stage, "ran" if ran else "unchanged, reused from the DVC cache")
    return bool(ran)


def push_data(project_dir: Path) -> int:
    """Push the data recorded in ``dvc.lock`` to the default DVC remote; returns files pushed."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(project_dir)) as repo:
            return int(repo.push())
    except DvcException as exc:
        raise VersioningError(f"dvc push failed: {exc}") from exc


def locked_data_files(project_dir: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage output recorded in ``dvc.lock``.

    Raises:
        VersioningError: when ``dvc.lock`` does not exist yet (no stage has run).
    """
    lock_path = project_dir / "dvc.lock"
    if not lock_path.exists():
        raise VersioningError(f"{lock_path} does not exist: run the data stages first (dvc repro)")
    lock: dict[str, Any] = yaml.safe_load(lock_path.read_text()) or {}
    files: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            files[out["path"]] = out["md5"]
    return dict(sorted(files.items()))


def data_version(files: dict[str, str]) -> str:
    """A short, stable id of a set of data files: the hash of their ``dvc.lock`` entries."""
    digest = hashlib.sha256("".join(f"{p}:{h}\n" for p, h in sorted(files.items())).encode())
    return digest.hexdigest()[:12]


def git_commit(project_dir: Path, fallback: str | None = None) -> str:
    """The checked-out commit, suffixed ``-dirty`` when tracked files have local changes."""
    try:
        sha = _git(project_dir, "rev-parse", "HEAD")
        dirty = _git(project_dir, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return fallback or "unknown"
    return f"{sha}-dirty" if dirty else sha


def _git(project_dir: Path, *args: str) -> str:
    out = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
        ["git", *args],  # noqa: S607 - git from PATH, as a user runs it
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()
