"""The audit log's anchor: its newest seal, kept by the host outside the database.

After each append the host writes the newest sequence number and seal to
``~/.bot-bottle/audit-anchors/<id>.json`` (one per database file), so
removing entries from the end, seals and all, is caught: the log must still
reach the anchor's entry, with the same seal. The file holds two slots,
each one JSON line with a checksum; a write goes in place into the slot
that does not hold the last record the writing process synced, so a write
torn by a crash or lost with the power leaves a whole record to read. A
decision syncs the file only where the last sync is
``ANCHOR_SYNC_INTERVAL_SEC`` old (``advance_anchor``).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot_bottle.audit.seal import (
    write_synced,
)
from bot_bottle.errors import AuditTampered, BotBottleError
from bot_bottle.leftovers import hidden_name, remove_stale
from bot_bottle.paths import bot_bottle_root, open_private_file
from bot_bottle.timestamps import utc_now

ANCHOR_DIR = "audit-anchors"


# Bytes per record slot in the anchor file: room for the JSON of any path (4096 bytes, every one escaped).
ANCHOR_SLOT = 32768

# How long a record may stay unsynced before a decision syncs the anchor: what the file loses with the power.
ANCHOR_SYNC_INTERVAL_SEC = 0.05


@dataclass(frozen=True)
class _Synced:
    """What this process knows reached the disk of one anchor file: its last synced record, and where."""

    file: tuple[int, int]  # (st_dev, st_ino): a retired and remade anchor is another file
    slot: int
    record: bytes  # the slot's record up to its newline, as synced
    at: float  # time.monotonic() of the sync
    other: bytes | None  # the other slot's record as this process left it since (written, not synced)


# Per anchor path, this process's last sync of it (``_write_anchor``); None where it knows none.
_SYNCED: dict[Path, _Synced] = {}
# Anchor files whose newest record this process left unsynced: synced as it exits (``_sync_unsynced``).
_UNSYNCED: set[Path] = set()


@dataclass(frozen=True)
class Restart:
    """Where a new audit key took over a log (``bot-bottle audit new-key``): the old proof's last entry.

    Entries up to ``seq`` were sealed with the key ``previous_key`` (None:
    not known); their seals cannot be checked without it, but their chain
    must still end in ``hash`` with ``seal`` stored for entry ``seq``, and
    the seals after it are made with ``key`` over that one.
    """

    seq: int
    seal: str
    hash: str
    key: str
    previous_key: str | None
    at: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, as the anchor file and ``audit head`` hold it."""
        return {"seq": self.seq, "seal": self.seal, "hash": self.hash, "key": self.key,
                "previous_key": self.previous_key, "at": self.at}


@dataclass(frozen=True)
class Anchor:
    """The newest sealed entry of one database's log, as the host last wrote it.

    ``key`` names the key that made ``seal`` (``audit.seal.key_id``; None in
    an anchor written before keys were named), ``restarts`` where a new key
    took over, oldest first.
    """

    database: str
    seq: int
    seal: str
    written_at: str
    key: str | None = None
    restarts: tuple[Restart, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, as the anchor file and ``audit head`` hold it."""
        document: dict[str, object] = {"database": self.database, "seq": self.seq, "seal": self.seal,
                                       "written_at": self.written_at}
        if self.key is not None:
            document["key"] = self.key
            document["restarts"] = [restart.to_dict() for restart in self.restarts]
        return document

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        """The anchor whose ``to_dict`` is ``data``; ``ValueError``, ``KeyError``, ``TypeError`` or
        ``AttributeError`` for anything else."""
        key = data.get("key")
        restarts = tuple(Restart(int(r["seq"]), str(r["seal"]), str(r["hash"]), str(r["key"]),
                                 None if r["previous_key"] is None else str(r["previous_key"]), str(r["at"]))
                         for r in data.get("restarts") or ())
        return cls(str(data["database"]), int(data["seq"]), str(data["seal"]), str(data["written_at"]),
                   None if key is None else str(key), restarts)

    @property
    def restarted_at(self) -> int:
        """The last entry sealed with an earlier key (0: the whole log is this key's)."""
        return self.restarts[-1].seq if self.restarts else 0


def anchor_path(database: Path) -> Path:
    """Where the anchor of the database file ``database`` lives (one file per database path)."""
    return _anchor_in(bot_bottle_root(), _resolved(database))


@functools.lru_cache(maxsize=64)
def _anchor_in(root: Path, resolved: str) -> Path:
    # Once per (root, database) in a process: every decision asks twice (read, then advance).
    name = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:32]
    return root / ANCHOR_DIR / f"{name}.json"


def _resolved(database: Path) -> str:
    """``database``'s real path: its directory's, links followed, and its own name, never followed.

    The database's directory is a sidecar's to write: a link it put in
    place of the database must not move the anchor to another file (one it
    never had, so that a log cut short goes unseen). The host opens no
    database through such a link (``connection.connect``).
    """
    absolute = os.path.abspath(database)
    return os.path.join(_real_path(os.path.dirname(absolute)), os.path.basename(absolute))


@functools.lru_cache(maxsize=64)
def _real_path(absolute: str) -> str:
    # Resolved once per directory in a process (a realpath is an lstat per component, and every decision
    # needs it twice): the process's open connection stays on that file even if a link in the path is moved.
    return os.path.realpath(absolute)


def _anchor_check(anchor: Anchor) -> str:
    """What a slot's ``check`` must be: the sha256 of the record's fields (a torn write fails it)."""
    fields: list[object] = [anchor.database, anchor.seq, anchor.seal, anchor.written_at]
    if anchor.key is not None:
        fields += [anchor.key, [restart.to_dict() for restart in anchor.restarts]]
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("ascii")).hexdigest()


def _anchor_record(anchor: Anchor) -> bytes:
    # "check" first: a record cut short keeps it and fails it. ASCII only, so the length is known.
    return (json.dumps({"check": _anchor_check(anchor), **anchor.to_dict()}) + "\n").encode("ascii")


def _parse_slot(content: bytes, index: int) -> Anchor | None:
    """The anchor in slot ``index`` of the file's content, or None for an empty, torn or damaged slot.

    A record ends at its newline (the rest of the slot is an older, longer
    record's tail). A record without ``check`` is the single record that
    earlier versions wrote (by rename, so never torn).
    """
    record = _slot_record(content, index)
    return None if record is None else _parse_record(record)


def _slot_record(content: bytes, index: int) -> bytes | None:
    """Slot ``index``'s record in the file's content, up to its newline (None: the slot has no newline)."""
    start = index * ANCHOR_SLOT
    end = content.find(b"\n", start, start + ANCHOR_SLOT)
    return None if end < 0 else content[start:end]


@functools.lru_cache(maxsize=8)
def _parse_record(record: bytes) -> Anchor | None:
    """The anchor one slot's record (up to its newline) holds, or None; kept by its exact bytes (``_parse_slot``).

    A decision reads both slots and then writes one: the same bytes are
    parsed and their check recomputed again and again, where only a changed
    record needs it (docs/benchmarks.md, "Throughput"). ``Anchor`` is frozen.
    """
    try:
        data = json.loads(record)
        anchor = Anchor.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if "check" in data and data["check"] != _anchor_check(anchor):
        return None
    return anchor


def _newest_slot(content: bytes) -> tuple[int, Anchor] | None:
    """(slot, anchor) of the newest readable record in the file's content; None if no slot has one."""
    found = [(index, anchor) for index in (0, 1) if (anchor := _parse_slot(content, index)) is not None]
    # A restart keeps the anchor's entry: of two records for one entry, the one with more restarts is newer.
    return max(found, key=lambda item: (item[1].seq, len(item[1].restarts))) if found else None


def read_anchor(database: Path) -> Anchor | None:
    """The database's anchor, or None where none was written; ``AuditTampered`` for an unreadable one."""
    path = anchor_path(database)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditTampered(f"the audit anchor {path} cannot be read ({exc.strerror}): it was damaged or "
                            "replaced") from None
    newest = _newest_slot(content)
    if newest is None:
        raise AuditTampered(f"the audit anchor {path} cannot be read (no whole record in it): it was damaged or "
                            "replaced")
    return newest[1]


@contextlib.contextmanager
def _anchor_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def advance_anchor(database: Path, seq: int, seal: str, key: str) -> None:
    """Record ``(seq, seal)``, made with the key named ``key``, as the database's anchor, unless it is further on.

    Written after the entry's transaction committed (an anchor ahead of the
    log would be a false alarm), under a lock so that concurrent deciders
    never move it backwards, in place into the slot that does not hold the
    last record it synced: overwriting a block the file already has costs
    one flush where a new file renamed into place cost a journal commit too,
    and the flush is made at most every ``ANCHOR_SYNC_INTERVAL_SEC``
    (``_write_slot``; docs/benchmarks.md, "Throughput"). A crash mid-write
    leaves a slot that fails its check, and the record before it is read.
    The restarts the anchor holds are carried over.
    """
    _write_anchor(database, lambda old: None if old is not None and old.seq >= seq else
                  Anchor(_resolved(database), seq, seal, utc_now(), key, old.restarts if old is not None else ()))


def restart_anchor(database: Path, restart: Restart) -> Anchor:
    """Record that a new key takes over the database's log after ``restart.seq`` (``audit new-key``); the anchor.

    The anchor keeps its entry (the old proof's end, which ``restart``
    names), now made with ``restart.key`` from there on.
    """
    written: list[Anchor] = []

    def restarted(old: Anchor | None) -> Anchor:
        seq, seal = (old.seq, old.seal) if old is not None else (restart.seq, restart.seal)
        anchor = Anchor(_resolved(database), seq, seal, utc_now(), restart.key,
                        (*(old.restarts if old is not None else ()), restart))
        written.append(anchor)
        return anchor

    # Synced at once: an anchor that lost its restart would read the new key's seals as forged.
    _write_anchor(database, restarted, sync=True)
    return written[0]


def _write_anchor(database: Path, update: Callable[[Anchor | None], Anchor | None], sync: bool = False) -> None:
    """Write ``update(newest record)`` as the database's anchor (nothing when it returns None), under the lock.

    ``sync``: synced before this returns, whenever the last sync was.
    """
    path = anchor_path(database)
    with _anchor_lock(path):
        # Opened by name under the lock: a retired anchor (renamed aside under the same lock) is never written.
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            anchor = update(None)
            if anchor is None:
                return
            # The first anchor of this database: a whole file renamed into place, so it is never seen empty.
            remove_stale(path.parent, "new", path.name)  # what a writer killed before its rename left
            temporary = hidden_name(path, "new")
            write_synced(temporary, _record(anchor, database).decode("ascii"))
            os.replace(temporary, path)
            _sync_path(path.parent, directory=True)  # the rename, too: a power cut must not leave the log anchorless
            _SYNCED.pop(path, None)
            return
        try:
            content = os.pread(fd, 2 * ANCHOR_SLOT, 0)
            newest = _newest_slot(content)
            if newest is None:
                raise AuditTampered(f"the audit anchor {path} cannot be read (no whole record in it): it was "
                                    "damaged or replaced")
            anchor = update(newest[1])
            if anchor is None:
                return
            record = _record(anchor, database)
            known = _SYNCED[path] = _write_slot(fd, record, content, newest[0], _SYNCED.get(path), sync)
            if known.record == record[:-1]:  # the record written is the one synced
                _UNSYNCED.discard(path)
            else:
                _UNSYNCED.add(path)
        finally:
            os.close(fd)


def _write_slot(fd: int, record: bytes, content: bytes, newest: int, known: _Synced | None,
                sync: bool) -> _Synced:
    """Write ``record`` into the anchor file ``fd`` (holding ``content``) beside its last synced one; that one, now.

    The record goes into the slot that does not hold the last record this
    process synced, so whatever the power takes, one whole record stays on
    the disk: that one, or a newer one if it made it. Where this process
    cannot tell which slot that is (it never synced this file, or the file
    is not as it left it: another process wrote, and perhaps synced, since),
    it syncs what the file holds first. (A sync by another process that
    wrote nothing since, its exit's or one before a write that failed, goes
    unseen: the record it made durable may then be written over, and a power
    cut leaves this process's own last synced record, older but whole.) The
    new record is synced only where the last sync is
    ``ANCHOR_SYNC_INTERVAL_SEC`` old (or ``sync``), or as the process exits
    (``_sync_unsynced``): a sync costs the decider most of a millisecond, and
    all an unsynced record risks is the anchor lagging the log after a power
    cut, which proves less and accuses nothing
    (``audit_store.AuditStore.recording``). A killed process loses nothing:
    its write is the kernel's already.
    """
    status = os.fstat(fd)
    file = (status.st_dev, status.st_ino)
    if known is None or known.file != file or _slot_record(content, known.slot) != known.record or \
            _slot_record(content, 1 - known.slot) != known.other:
        os.fdatasync(fd)
        known = _Synced(file, newest, _slot_record(content, newest) or b"", time.monotonic(),
                        _slot_record(content, 1 - newest))
    slot = 1 - known.slot
    if os.pwrite(fd, record, slot * ANCHOR_SLOT) != len(record):  # a full disk: the record is torn, not written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if not sync and time.monotonic() - known.at < ANCHOR_SYNC_INTERVAL_SEC:
        return dataclasses.replace(known, other=record[:-1])
    os.fdatasync(fd)
    return _Synced(file, slot, record[:-1], time.monotonic(), _slot_record(content, 1 - slot))


@atexit.register
def _sync_unsynced() -> None:
    """Sync the anchor files whose newest record this process left unsynced (at its exit)."""
    for path in list(_UNSYNCED):  # a daemon thread may still be deciding
        with contextlib.suppress(OSError):  # retired or forgotten since: nothing of ours is left to sync
            _sync_path(path)


def _sync_path(path: Path, *, directory: bool = False) -> None:
    """``fdatasync`` the file at ``path``, or ``fsync`` the directory: what was written or renamed there stays."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        (os.fsync if directory else os.fdatasync)(fd)
    finally:
        os.close(fd)


def _record(anchor: Anchor, database: Path) -> bytes:
    record = _anchor_record(anchor)
    if len(record) > ANCHOR_SLOT:
        raise BotBottleError(f"the database path {database} is too long to anchor its audit log")
    return record


def any_anchor() -> bool:
    """True if this host has anchored any audit log (kept or retired): its key sealed something."""
    try:
        return any(entry.suffix == ".json" and not entry.name.startswith(".")
                   for entry in (bot_bottle_root() / ANCHOR_DIR).iterdir())
    except OSError:
        return False


def retire_anchor(database: Path) -> Path | None:
    """Move the database's anchor aside (its log was exported and dropped on purpose); the new name."""
    path = anchor_path(database)
    with _anchor_lock(path):
        if not path.exists():
            return None
        retired = path.with_name(f"{path.stem}.retired-{utc_now().replace(':', '')}.json")
        _sync_path(path)  # whatever a decision left unsynced goes with it, whole
        os.replace(path, retired)
        # Durable before the log is dropped: an anchor a power cut brought back would accuse the emptied log.
        _sync_path(path.parent, directory=True)
        _UNSYNCED.discard(path)
        return retired


def sealed_from_start(database: Path) -> bool:
    """Whether every entry of the database's log is the host's to have sealed: it saw the log empty
    (``mark_sealed_from_start``), or retired an anchor of it. An entry without a seal was then written
    without the host, wherever it is: without this, a sidecar's entries in a log no anchor covered yet (a
    new database before its first decision, or one whose anchor was just retired, its seals deleted) were
    sealed by the host's next decision as if they came from before sealing began
    (tests/attacks/test_unsealed_start.py)."""
    path = anchor_path(database)
    if path.with_suffix(".start").exists():
        return True
    try:
        return any(entry.name.startswith(f"{path.stem}.retired-") for entry in path.parent.iterdir())
    except OSError:
        return False


def mark_sealed_from_start(database: Path) -> None:
    """Record, outside the database, that the host saw its log empty: from now on it seals every entry itself
    (``sealed_from_start``). Idempotent; a file of no content beside the anchor."""
    path = anchor_path(database).with_suffix(".start")
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(open_private_file(path, os.O_WRONLY | os.O_CREAT))
    _sync_path(path.parent, directory=True)


def forget_anchor(database: Path) -> None:
    """Remove the anchor (with its lock file and start mark) of a database thrown away with its log (the demo's)."""
    path = anchor_path(database)
    for leftover in (path, path.with_suffix(".lock"), path.with_suffix(".start")):
        leftover.unlink(missing_ok=True)
