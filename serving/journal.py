"""The prediction journal's folder on disk: where it is, what may live in it, the dead letters and
the erasure tombstones; shared by the service's log writer and the ``churn`` commands.

The journal root of a store is ``<journal dir>/<store.journal_key()>`` (the store's identity
without credentials). In it:

* ``<pid>-<8 hex>/``: one folder per service process (held by a flock on its ``owner.lock`` while
  the process lives), its segments ``n-<seq>-<rows>.jsonl`` and the ones it adopted
  ``a-<folder>-<segment>``;
* ``dead-letters.jsonl``: rows the store refused as data (one JSON object a line: ``id``,
  ``dead_at``, ``reason``, and the ``row`` or, for a line that is not JSON, the ``line``),
  guarded by ``dead-letters.lock``; ``churn dead-letters list|replay`` read and replay them;
* ``forgotten.jsonl``: tombstones ``churn forget`` leaves while a service process owns journaled
  rows (``hash``, ``at``), guarded by ``forgotten.lock``;
* ``stray/``: whatever else was found there, moved aside at start-up with a WARNING.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from churn.prediction_store import PredictionStore

log = logging.getLogger(__name__)

OWNER_LOCK = "owner.lock"
DEAD_LETTERS = "dead-letters.jsonl"
FORGOTTEN = "forgotten.jsonl"
STRAY = "stray"
KNOWN_FILES = {DEAD_LETTERS, "dead-letters.lock", FORGOTTEN, "forgotten.lock"}
PROCESS_FOLDER = re.compile(r"^\d+-[0-9a-f]{8}$")
SEGMENT = re.compile(r"^[na]-[0-9A-Za-z-]+-(\d+)\.jsonl$")
HASH_COLUMN = 3  # customer_hash in ROW_COLUMNS
TIME_COLUMN = 0  # logged_at


def journal_root(store: PredictionStore, journal_dir: Path | None = None) -> Path:
    """The folder of this store's journal (``journal_dir``: ``CHURN_PREDICTION_JOURNAL_DIR``)."""
    return (journal_dir or store.journal_dir()) / store.journal_key()


def segment_rows(path: Path) -> int | None:
    """The rows a segment's name declares; None for a file that is not a segment."""
    found = SEGMENT.match(path.name)
    return int(found.group(1)) if found else None


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _replace(path: Path, lines: Sequence[bytes]) -> None:
    """Write ``lines`` to ``path`` whole (a temporary file renamed into place), or remove it."""
    if not lines:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(b"".join(line + b"\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.rename(path)


# -- dead letters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """A row the store refused as data, or a journal line that was not JSON."""

    id: str
    dead_at: str
    reason: str
    row: list[Any] | None = None
    line: str | None = None

    @classmethod
    def of_row(cls, row: bytes, reason: str) -> DeadLetter:
        return cls(_digest(row), _now(), reason, row=orjson.loads(row))

    @classmethod
    def of_line(cls, line: bytes, reason: str) -> DeadLetter:
        return cls(_digest(line), _now(), reason, line=line.decode(errors="replace"))

    def as_json(self) -> bytes:
        body: dict[str, Any] = {"id": self.id, "dead_at": self.dead_at, "reason": self.reason}
        body["row" if self.row is not None else "line"] = (
            self.row if self.row is not None else self.line
        )
        return orjson.dumps(body)

    @property
    def customer_hash(self) -> str | None:
        if self.row is None or len(self.row) <= HASH_COLUMN:
            return None
        value = self.row[HASH_COLUMN]
        return value if isinstance(value, str) else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DeadLetters:
    """The dead-letter file of one journal root (appended by the service, rewritten by the
    commands, both under its flock)."""

    def __init__(self, root: Path) -> None:
        self.path = root / DEAD_LETTERS
        self._lock = root / "dead-letters.lock"

    def append(self, letters: Sequence[DeadLetter]) -> None:
        """Add letters, on disk (fsync) before the caller deletes the segment they came from."""
        if not letters:
            return
        with _locked(self._lock, fcntl.LOCK_EX), self.path.open("ab") as fh:
            fh.write(b"".join(letter.as_json() + b"\n" for letter in letters))
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[DeadLetter]:
        """Every letter once (a crash between writing a letter and deleting its segment writes
        it again at the replay: same row, same id)."""
        with _locked(self._lock, fcntl.LOCK_SH):
            return self._read()

    def _read(self) -> list[DeadLetter]:
        if not self.path.exists():
            return []
        seen: dict[str, DeadLetter] = {}
        for raw in self.path.read_bytes().splitlines():
            if not raw.strip():
                continue
            try:
                body = orjson.loads(raw)
                letter = DeadLetter(
                    body["id"], body["dead_at"], body["reason"], body.get("row"), body.get("line")
                )
            except (orjson.JSONDecodeError, KeyError, TypeError):
                letter = DeadLetter.of_line(raw, "unreadable dead letter")
            seen.setdefault(letter.id, letter)
        return list(seen.values())

    def replay(self, store: PredictionStore) -> tuple[int, list[DeadLetter]]:
        """Insert every letter's row into the store; returns the rows stored and the letters
        kept (a line that is not JSON, or a row the store still refuses, with its new reason)."""
        with _locked(self._lock, fcntl.LOCK_EX):
            letters = self._read()
            rows = [(letter, orjson.dumps(letter.row)) for letter in letters if letter.row]
            kept = [letter for letter in letters if not letter.row]
            stored = 0
            try:
                store.insert_rows(_array([row for _, row in rows]))
                stored = len(rows)
            except Exception:  # one at a time: keep what the store still refuses
                for letter, row in rows:
                    try:
                        store.insert_rows(_array([row]))
                        stored += 1
                    except Exception as exc:
                        kept.append(DeadLetter(letter.id, _now(), store_reason(exc), letter.row))
            _replace(self.path, [letter.as_json() for letter in kept])
        return stored, kept

    def erase(self, customer_hash: str) -> int:
        """Remove the customer's letters; returns how many."""
        with _locked(self._lock, fcntl.LOCK_EX):
            letters = self._read()
            kept = [letter for letter in letters if letter.customer_hash != customer_hash]
            if len(kept) != len(letters):
                _replace(self.path, [letter.as_json() for letter in kept])
        return len(letters) - len(kept)


def store_reason(exc: BaseException) -> str:
    """The store's reason, on one line (no parameters: the engine hides them)."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _array(rows: Sequence[bytes]) -> str:
    return (b"[" + b",".join(rows) + b"]").decode()


# -- erasure --------------------------------------------------------------------------------------


class Tombstones:
    """Customers ``churn forget`` erased while a service process owned journaled rows: that
    process drops their rows logged before the erasure when it delivers them.

    Delivery holds the shared lock from reading the tombstones until its transaction commits;
    ``churn forget`` takes the exclusive lock to add one, so a delivery that read the tombstones
    before the erasure has committed before ``forget`` deletes from the store.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / FORGOTTEN
        self.lock = root / "forgotten.lock"
        self._seen: tuple[float, int] | None = None
        self._current: dict[str, datetime] = {}

    def current(self) -> dict[str, datetime]:
        """The tombstones now (read again when the file changed; call under the lock)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._current = None, {}
            return self._current
        if self._seen != (stat.st_mtime, stat.st_size):
            self._current = {}
            for raw in self.path.read_bytes().splitlines():
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, ValueError):
                    body = orjson.loads(raw)
                    self._current[body["hash"]] = datetime.fromisoformat(body["at"])
            self._seen = (stat.st_mtime, stat.st_size)
        return self._current

    @contextlib.contextmanager
    def shared(self) -> Iterator[dict[str, datetime]]:
        with _locked(self.lock, fcntl.LOCK_SH):
            yield self.current()


def drop_forgotten(
    lines: Sequence[bytes], forgotten: dict[str, datetime]
) -> tuple[list[bytes], int]:
    """Journal lines without the rows of forgotten customers logged before their erasure;
    returns the lines and the rows dropped. Only a line naming one of the hashes is parsed."""
    kept: list[bytes] = []
    dropped = 0
    needles = [h.encode() for h in forgotten]
    for line in lines:
        if not any(n in line for n in needles):
            kept.append(line)
            continue
        try:
            rows = orjson.loads(line)
        except orjson.JSONDecodeError:
            kept.append(line)  # the dead-letter path deals with it
            continue
        left = [r for r in rows if not _forgotten(r, forgotten)]
        dropped += len(rows) - len(left)
        kept.append(orjson.dumps(left))
    return kept, dropped


def _forgotten(row: Any, forgotten: dict[str, datetime]) -> bool:
    if not isinstance(row, list) or len(row) <= HASH_COLUMN:
        return False
    at = forgotten.get(row[HASH_COLUMN]) if isinstance(row[HASH_COLUMN], str) else None
    if at is None:
        return False
    try:
        logged = datetime.fromisoformat(str(row[TIME_COLUMN]).replace(" ", "T"))
    except ValueError:
        return True  # no readable time: erased rather than kept
    if logged.tzinfo is None:  # SQLite's rows: naive UTC
        logged = logged.replace(tzinfo=UTC)
    return logged <= at


@dataclass(frozen=True)
class JournalErasure:
    """What ``churn forget`` did to the journal."""

    journal_rows: int  # erased from segments no live process owns
    dead_letters: int
    live_owners: int  # service processes owning journal folders: a tombstone covers them


def erase_customer(root: Path, customer_hash: str, at: datetime | None = None) -> JournalErasure:
    """Erase one customer from a journal root (see ``churn forget``).

    Under the tombstones' exclusive lock: the segments of folders no live process owns are
    rewritten without the customer's rows (each folder held by its owner flock meanwhile, as an
    adopting process would), the dead letters too; if a live process owns a folder, a tombstone
    is added, which it applies to every row it delivers from then on (its queue and journal
    included). The unowned segments are rewritten with every tombstone (an earlier erasure's
    rows may have been left by a process that stopped before delivering them); so with no live
    owner the tombstones are all spent and the file is removed.
    """
    if not root.exists():
        return JournalErasure(0, 0, 0)
    at = at or datetime.now(UTC)
    tombstones = Tombstones(root)
    erased = live = 0
    with _locked(tombstones.lock, fcntl.LOCK_EX):
        forgotten = {**tombstones.current(), customer_hash: at}
        for folder in sorted(p for p in root.iterdir() if PROCESS_FOLDER.match(p.name)):
            with (folder / OWNER_LOCK).open("ab") as owner:
                try:
                    fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    live += 1
                    continue
                for segment in sorted(folder.glob("*.jsonl")):
                    rows = segment_rows(segment)
                    if rows is None:
                        continue
                    lines = segment.read_bytes().split(b"\n")
                    kept, dropped = drop_forgotten(lines, forgotten)
                    if not dropped:
                        continue
                    erased += dropped
                    if rows - dropped <= 0:
                        segment.unlink()
                        continue
                    # The name carries the rows: the rewritten segment gets its new count.
                    stem = segment.name.removesuffix(".jsonl").rsplit("-", 1)[0]
                    _replace(segment, kept)
                    segment.rename(segment.with_name(f"{stem}-{rows - dropped}.jsonl"))
        dead = DeadLetters(root).erase(customer_hash)
        if live:
            with tombstones.path.open("ab") as fh:
                fh.write(orjson.dumps({"hash": customer_hash, "at": at.isoformat()}) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        else:
            tombstones.path.unlink(missing_ok=True)
    return JournalErasure(erased, dead, live)
