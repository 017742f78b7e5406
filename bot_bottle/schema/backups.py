"""Backups of the database: consistent copies, named so they are found and never opened in place.

``backup_to`` writes a snapshot with ``Connection.backup`` under a hidden
partial name and moves it into place without ever replacing a file (a hard
link, or on a filesystem without them a reserved name renamed over). The
migration runner backs up before it changes a database
(``backup_before_migration``, keeping the last ``BACKUPS_KEPT`` and every
older one that holds audit entries the database no longer has; the host
database's go outside the directory sidecars see), and ``db backup`` uses
the same copy. Partial files of a killed backup are removed by
the next one.
"""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot_bottle.connection import FILE_MODE, database_path
from bot_bottle.errors import BackupError
from bot_bottle.leftovers import hidden_name, publish, remove_stale, sync_folder
from bot_bottle.paths import host_backups_dir, host_db_path

BACKUPS_KEPT = 3


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup_to(conn: sqlite3.Connection, destination: Path) -> Path:
    """Copy the database behind ``conn`` to ``destination`` (0600) with ``Connection.backup``.

    The copy is a consistent snapshot (in WAL mode, taken while every writer
    goes on), in the rollback journal's mode so that it is one file, written
    under a hidden partial name and moved into place only when whole. An existing ``destination`` is never
    overwritten: ``BackupError`` is raised instead. Partial files left by a
    backup that was killed are removed first.
    """
    destination = destination.resolve()
    if destination.is_dir():  # as cp would take it: into it, under a name of its own; said, not guessed
        raise BackupError(f"{destination} is a folder; name the backup file to write in it "
                          f"({destination / 'bot-bottle-copy.db'})")
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose another name for the backup")
    if not destination.parent.exists():
        raise BackupError(f"cannot write the backup: there is no folder {destination.parent} (create it first, "
                          "or name a file in a folder that exists)")
    if not destination.parent.is_dir():
        raise BackupError(f"cannot write the backup: {destination.parent} is not a folder")
    if database_path(conn) and Path(database_path(conn)).resolve() == destination:
        raise BackupError("the backup file cannot be the database itself")
    remove_stale_partials(destination.parent)
    partial = hidden_name(destination, "partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as exc:
        raise BackupError(f"cannot write the backup {destination}: {exc.strerror}") from None
    os.close(fd)
    try:
        copy = sqlite3.connect(partial)
        try:
            conn.backup(copy)
            # The copy takes the source's header, WAL mode included; a backup is one file that opens
            # anywhere, read-only too, without leaving a -wal and -shm beside it.
            copy.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError as exc:
            # The error comes from the copy's side: name the backup's disk, not the database's.
            raise BackupError(f"cannot write the backup {destination}: {exc} (on the disk holding "
                                 f"{destination.parent}); the database was not changed") from None
        finally:
            copy.close()
        _publish(partial, destination)
        sync_folder(destination.parent)  # the name, too: a backup is kept for when the disk's power went
    except FileExistsError:
        raise BackupError(f"{destination} already exists; choose another name for the backup") from None
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _publish(partial: Path, destination: Path) -> None:
    """Give the finished copy its name, never replacing a file that took the name meanwhile."""
    try:
        publish(partial, destination, FILE_MODE)
    except FileExistsError:
        raise
    except OSError as exc:
        raise BackupError(f"cannot write the backup {destination}: {exc.strerror}") from None


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove partial backup files whose writer process is gone (killed mid-backup); the ones removed.

    SQLite's files beside a partial go with it: the copy's rollback journal (a killed ``db backup`` of a
    large file left a ``-journal`` at every kill), and the ``-wal`` and ``-shm`` of a copy killed before it
    left WAL mode."""
    return [path for suffix in ("partial", "partial-journal", "partial-wal", "partial-shm")
            for path in remove_stale(folder, suffix)]


def _backup_name_re(db_name: str) -> re.Pattern[str]:
    return re.compile(re.escape(db_name) + r"\.v(\d{4})\.(\d{8}T\d{12}Z)\.bak")


BACKUP_NAME_RE = re.compile(r".+\.v\d{4}\.\d{8}T\d{12}Z\.bak")


def is_backup(path: Path) -> bool:
    """Whether ``path`` is one of bot-bottle's backups, which are never opened in place: any ``.bak`` (the
    ones taken before a migration and ``db backup``'s ``manual-`` ones alike), or a file in the host's
    backups directory."""
    return path.name.endswith(".bak") or path.resolve().parent == host_backups_dir().resolve()


def backups_dir(db_file: Path) -> Path:
    """Where ``db_file``'s pre-migration backups go.

    The host database's go to ``~/.bot-bottle/backups`` (0700), outside the
    directory every sidecar has mounted read-write, so a sidecar that damages
    the database cannot also delete its backups. Any other database's go
    beside it.
    """
    if db_file.resolve() == host_db_path().resolve():
        folder = host_backups_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder
    return db_file.parent


def backup_before_migration(conn: sqlite3.Connection, version: int) -> Path | None:
    """Back up the database as ``NAME.vNNNN.STAMP.bak`` (``backups_dir``); keep the last few.

    Older backups are removed, except one that holds audit entries the
    database no longer has (after a downgrade): those are never pruned.
    Returns the backup's path, or ``None`` for an in-memory database.
    """
    source = database_path(conn)
    if not source:
        return None
    db_file = Path(source)
    folder = backups_dir(db_file)
    path = _backup_under_a_new_stamp(conn, folder / f"{db_file.name}.v{version:04d}")
    pattern = _backup_name_re(db_file.name)
    ours = sorted(
        (match.group(2), entry)
        for entry in folder.iterdir()
        if (match := pattern.fullmatch(entry.name))
    )
    for _, old in ours[:-BACKUPS_KEPT]:
        if not _holds_audit_entries_not_in(old, conn):
            old.unlink(missing_ok=True)
    return path


def _backup_under_a_new_stamp(conn: sqlite3.Connection, stem: Path, tries: int = 5) -> Path:
    """``backup_to`` ``STEM.STAMP.bak``, under the next stamp where another process took that name first: two
    processes opening a fresh file at once, woken by the same commit, stamped their backups in the same
    microsecond, and the second's open failed ("... already exists; choose another name")."""
    tried = 0
    while True:
        destination = stem.with_name(f"{stem.name}.{_utc_stamp()}.bak")
        try:
            return backup_to(conn, destination)
        except BackupError:
            tried += 1
            if tried == tries or not destination.exists():
                raise  # not a name another took (or taken every time): said as it is


_AUDIT_ROW = ("SELECT seq, ts, queue_key, action, tool, proposal_id, actor, notes, diff, details, prev_hash, hash "
              "FROM audit_log")


def _holds_audit_entries_not_in(backup: Path, conn: sqlite3.Connection) -> bool:
    """True when ``backup``'s audit log has an entry the live database's log lacks (or cannot be read).

    Every entry is compared whole, not only the newest one's hash: a sidecar
    can change an entry's text in the live file and leave its hash column
    as it was, and then this backup may be the only copy of what it said.
    """
    try:
        copy = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return True
    try:
        try:
            kept = copy.execute(f"{_AUDIT_ROW} ORDER BY seq")
            first = kept.fetchone()
        except sqlite3.Error as exc:
            return "no such table" not in str(exc)  # no audit log at all: nothing to keep it for
        if first is None:
            return False
        live = conn.execute(f"{_AUDIT_ROW} ORDER BY seq")
        # Both in sequence order: the live log must hold every backed-up entry, unchanged, in its place.
        return live.fetchone() != first or any(live.fetchone() != row for row in kept)
    except sqlite3.Error:
        return True
    finally:
        copy.close()

