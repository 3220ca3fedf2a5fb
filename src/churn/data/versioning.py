"""Data and code versions: DVC stages, the data version in ``dvc.lock``, the DVC remote, git."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


def dvc_logs_once() -> None:
    """Call after importing DVC: its lines are printed by its own handlers only.

    ``import dvc`` gives the ``dvc`` logger handlers of its own and leaves it propagating, so a
    process whose root logger also has a handler (Prefect's, the demo's log file) printed every
    DVC line twice ("Initialized DVC repository.", the lock updates).
    """
    logging.getLogger("dvc").propagate = False


class VersioningError(RuntimeError):
    """DVC or git could not do what was asked."""


def reproduce_stage(
    stage: str, project_dir: Path, run: Callable[[], object], *, force: bool = False
) -> bool:
    """Run one ``dvc.yaml`` stage the way ``dvc repro`` does, but in this process.

    DVC decides whether the stage is stale (a dependency, parameter or output changed or went
    missing); if so ``run`` (the same function the stage's ``cmd`` calls) executes here and DVC
    commits the outputs to its cache and ``dvc.lock``. In-process execution saves the start-up of
    a Python process per stage; ``dvc repro`` on the command line gives the same result.

    Returns:
        True when the stage ran, False when DVC reused its cached outputs.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logs_once()

    # DVC resolves stage names and its run cache against the working directory, as its CLI
    # does, so the stage is collected and committed from inside the project.
    address = f"dvc.yaml:{stage}"
    try:
        with contextlib.chdir(project_dir), Repo(".") as repo:
            with repo.lock:
                (target,) = repo.stage.collect(address)
                stale = force or target.changed()
            if stale:
                run()
                repo.commit(address, force=True)
    except DvcException as exc:
        raise VersioningError(f"DVC stage {stage!r} failed: {exc}") from exc
    log.info("dvc stage %s: %s", stage, "ran" if stale else "unchanged, reused from the DVC cache")
    return bool(stale)


def push_data(project_dir: Path) -> int:
    """Push the data recorded in ``dvc.lock`` to the default DVC remote; returns files pushed."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logs_once()

    try:
        with contextlib.chdir(project_dir), Repo(".") as repo:
            return int(repo.push())
    except DvcException as exc:
        raise VersioningError(f"dvc push failed: {exc}") from exc


def pull_data(project_dir: Path) -> int:
    """Fetch the data recorded in ``dvc.lock`` from the default remote into the workspace.

    Returns:
        Files fetched from the remote (0 when the cache had them all).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logs_once()

    try:
        with contextlib.chdir(project_dir), Repo(".") as repo:
            result = repo.pull()
    except DvcException as exc:
        raise VersioningError(f"dvc pull failed: {exc}") from exc
    return int(result.get("stats", {}).get("fetched", 0))


def missing_on_remote(project_dir: Path) -> list[str]:
    """The ``dvc.lock`` outputs the default remote does not hold (what ``dvc status --cloud``
    lists as ``new`` or ``missing``), sorted."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logs_once()

    try:
        with contextlib.chdir(project_dir), Repo(".") as repo:
            status = repo.status(cloud=True)
    except DvcException as exc:
        raise VersioningError(f"dvc status --cloud failed: {exc}") from exc
    return sorted(path for path, state in status.items() if state in ("new", "missing"))


DATA_TAG_PREFIX = "data-"


def data_tag_name(version: str) -> str:
    """The git tag of a data version: ``data-<data_version>`` (what the training workflow
    is triggered by)."""
    return f"{DATA_TAG_PREFIX}{version}"


@dataclass(frozen=True)
class DataTag:
    """A data version's git tag: its name, the data version, the commit, and whether it is new."""

    name: str
    data_version: str
    commit: str
    created: bool


def tag_data_version(project_dir: Path) -> DataTag:
    """Tag the checked-out commit ``data-<data_version>`` for the data its ``dvc.lock`` records.

    Refuses, before tagging anything, when ``dvc.lock`` has uncommitted changes (the tag would
    name a commit that does not record this data) or when the default DVC remote lacks any of
    its files (a job checking out the tag could not pull them). Tagging the same commit again
    is a no-op.

    Raises:
        VersioningError: saying which of these and what to run.
    """
    version = data_version(locked_data_files(project_dir))
    name = data_tag_name(version)
    try:
        changed = _git(project_dir, "status", "--porcelain", "--", "dvc.lock")
        head = _git(project_dir, "rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError) as exc:
        raise VersioningError(f"{project_dir} is not a git checkout with a commit: {exc}") from exc
    if changed:
        raise VersioningError(
            "dvc.lock has uncommitted changes: commit it first (git add dvc.lock && git commit), "
            f"so that {name} names the commit that records this data version"
        )
    missing = missing_on_remote(project_dir)
    if missing:
        raise VersioningError(
            f"{len(missing)} data files of dvc.lock are not on the DVC remote "
            f"({', '.join(missing[:5])}): run `dvc push` first"
        )
    try:
        tagged = _git(
            project_dir, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}"
        )
    except subprocess.CalledProcessError:
        tagged = ""
    if tagged == head:
        return DataTag(name, version, head, created=False)
    if tagged:
        raise VersioningError(
            f"tag {name} already exists on commit {tagged[:12]}: this data version was tagged "
            "before, so there is nothing new to train on (a new data version gets its own tag)"
        )
    _git(project_dir, "tag", name, head)
    return DataTag(name, version, head, created=True)


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
    """The checked-out commit, suffixed ``-dirty`` when tracked files have local changes.

    ``dvc.lock`` does not count: the commit names the code and the parameters, and the data a
    run used is named by its own data version (``locked_data_files``, recorded on the model
    version and logged with its run). A retrain that re-reads the source moves the lock on
    without changing any code.
    """
    try:
        sha = _git(project_dir, "rev-parse", "HEAD")
        dirty = _git(
            project_dir, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"
        )
    except (OSError, subprocess.CalledProcessError):
        return fallback or "unknown"
    return f"{sha}-dirty" if dirty else sha


@contextlib.contextmanager
def lock_kept(project_dir: Path) -> Iterator[None]:
    """Run a block that may rewrite ``dvc.lock`` (a retrain's data stages), then put the file
    back as it was, so that the clone's committed ``dvc.lock`` changes only when a person runs
    the data stages and commits it.

    The block's own data version is not lost: it is on the model version it registered
    (``data_version``, ``data_files``), in that version's MLflow run (its ``dvc.lock``) and, when
    the run pushed, on the DVC remote (``dvc pull`` with that ``dvc.lock`` brings it back).
    """
    path = project_dir / "dvc.lock"
    before = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if before is not None and path.exists() and path.read_bytes() != before:
            path.write_bytes(before)
            log.info("dvc.lock put back as committed; the retrain's lock is in its MLflow run")


def _git(project_dir: Path, *args: str) -> str:
    out = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
        ["git", *args],  # noqa: S607 - git from PATH, as a user runs it
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def cached_file_path(cache_dir: Path, md5: str) -> Path:
    """Where DVC's content-addressed cache (or a local remote) keeps the file with this md5."""
    return cache_dir / "files" / "md5" / md5[:2] / md5[2:]


def open_versioned_file(project_dir: Path, md5: str) -> Path:
    """A local path to the exact data file with this DVC md5, whatever the workspace holds now.

    Looks in the project's DVC cache first; if the file is not there, fetches that one object
    from the default remote into the cache (what ``dvc pull`` does for a whole ``dvc.lock``).
    The returned file is DVC's cached copy: read it, never write to it.

    An object in the default cache (``.dvc/cache``) is found by its path alone: the cache is
    content-addressed, and DVC's import (about half a second) is left to a cache configured
    elsewhere and to fetching (e.g. the first monitoring run against a new champion).

    Raises:
        VersioningError: when neither the cache nor the remote has it.
    """
    digest = md5.removesuffix(".dir")
    if len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest):
        raise VersioningError(f"{md5!r} is not a DVC md5")
    cached = cached_file_path(project_dir / ".dvc" / "cache", md5)
    if cached.is_file():
        return cached.resolve()
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvc_logs_once()

    try:
        with contextlib.chdir(project_dir), Repo(".") as repo:
            cache = repo.cache.local
            path = Path(cache.oid_to_path(md5))
            if not path.is_file():
                from dvc_data.hashfile.hash_info import HashInfo
                from dvc_data.hashfile.transfer import transfer

                remote = repo.cloud.get_remote_odb(None)
                log.info("fetching data object %s from the DVC remote", md5)
                transfer(remote, cache, {HashInfo("md5", md5)})
            path = path.resolve()
    except DvcException as exc:
        raise VersioningError(f"could not fetch data object {md5}: {exc}") from exc
    if not path.is_file():
        raise VersioningError(f"data object {md5} is neither in the DVC cache nor on the remote")
    return path


def versioned_paths(project_dir: Path, md5: str) -> list[Path]:
    """The files of a DVC output by its md5: the file itself, or a directory output's parts
    (an ``.dir`` md5: the dask engine's partitioned stages) in their path order.

    Raises:
        VersioningError: when the cache and the remote lack the output or one of its parts.
    """
    if not md5.endswith(".dir"):
        return [open_versioned_file(project_dir, md5)]
    manifest = json.loads(open_versioned_file(project_dir, md5).read_text())
    entries = sorted(manifest, key=lambda entry: entry["relpath"])
    return [open_versioned_file(project_dir, entry["md5"]) for entry in entries]
