"""The single host database: where it lives, and the one call that opens it.

On the host the database is ``~/.bot-bottle/db/bot-bottle.db``. Its directory
(and only that directory, so SQLite's journal is shared too) is bind-mounted
read-write into each sidecar at ``/run/supervise``, where the sidecar opens
the constant ``DB_PATH_IN_CONTAINER``. No environment variable points any part
of bot-bottle at another file (docs/decisions.md).

``open_db`` is what hosts and sidecars call: it connects with bot-bottle's
settings (``connect``) and migrates to the newest schema. The host, which
migrates, also sets the journal mode (WAL where every opener shares its
kernel); a sidecar, which never migrates, never switches it.
``files`` tells when a connection's files were replaced at their path;
``checkpointer.IdleCheckpointer`` keeps the WAL short in a process that
stays open. Each of the host's write transactions runs under the schema the
migrations made, and no sidecar's additions to it (``schema.guard``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

from bot_bottle.audit.anchor import anchor_path, mark_sealed_from_start
from bot_bottle.connection import (
    DEFAULT_BUSY_TIMEOUT_SEC,
    connect,
    transaction,
    translate_errors,
)
from bot_bottle.db.files import FileChange, OpenedFiles
from bot_bottle.errors import CannotOpenDatabase, ValidationError
from bot_bottle.paths import (
    DB_DIR_IN_CONTAINER,
    DB_FILENAME,
    DB_PATH_IN_CONTAINER,
    bot_bottle_root,
    host_db_dir,
    host_db_path,
    resolve_db_path,
)
from bot_bottle.schema import migrate
from bot_bottle.schema.guard import SchemaGuard

__all__ = [
    "DB_DIR_IN_CONTAINER",
    "DB_FILENAME",
    "DB_PATH_IN_CONTAINER",
    "Database",
    "DatabaseUser",
    "FileChange",
    "bot_bottle_root",
    "connect",
    "host_db_dir",
    "host_db_path",
    "open_db",
    "resolve_db_path",
    "transaction",
]


MAX_LIMIT = 2**63 - 1  # SQLite's largest integer: a LIMIT past it cannot even be bound


def validate_limit(value: object) -> int | None:
    """``None`` (no limit) or a whole number from 1 to ``MAX_LIMIT``, as a listing's ``limit``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return value


def open_db(
    path: str | os.PathLike[str] | None = None,
    *,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SEC,
    migrate_schema: bool = True,
) -> sqlite3.Connection:
    """Open the database at ``path`` (``None``: the host database) and migrate it to the newest schema.

    With ``migrate_schema=False`` (the sidecar) nothing is migrated: a
    database not exactly at the newest version is refused (``SchemaTooOld``,
    ``SchemaTooNew``) without writing, the journal mode is left as the host
    set it, and a write waits for the lock in SQLite's busy handler where the
    host's processes wait on a watch of commits (``connection.begin_immediate``).

    Creates the directory (0700) and file (0600) where missing. Raises a
    ``BotBottleError`` subclass, leaving the file as it was, for a file that
    is not a database, a corrupt one, a directory, a read-only location, a
    database newer than this code, or migrations that drifted.
    """
    target = resolve_db_path(path)
    if migrate.is_backup(target):
        # Opening migrates: a backup opened in place would stop being the copy it was made to be.
        raise CannotOpenDatabase(
            f"{target} is a backup: bot-bottle never opens one in place, because opening migrates it. "
            f"Copy it and open the copy (cp {target.name} inspect.db; --db inspect.db)"
        )
    conn = connect(target, busy_timeout=busy_timeout, switch_journal=migrate_schema, wait_on_commits=migrate_schema)
    try:
        with translate_errors(target):
            if migrate_schema:
                migrate.upgrade(conn)
                mark_if_log_empty(conn, target)
            else:
                migrate.require_current(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def mark_if_log_empty(conn: sqlite3.Connection, target: Path) -> None:
    """On the host: when the host database's audit log is there and empty, record that outside the database
    (``audit.anchor.mark_sealed_from_start``), so that no entry a sidecar writes into it before the first
    decision is ever sealed as one from before sealing began. One look a host open; a file once. Only the
    host database: it is the one in the directory sidecars get (a ``--db`` file is nobody else's, and the
    throwaway demo's must leave nothing in ``~/.bot-bottle``)."""
    if anchor_path(target) != anchor_path(host_db_path()):
        return
    try:
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM audit_log)").fetchone()[0]
    except sqlite3.OperationalError:  # no audit log (a database kept below its version)
        return
    if empty:
        mark_sealed_from_start(target)


class Database:
    """One open, migrated connection to a database, shared safely between threads.

    The stores build on this. ``read()`` and ``write()`` hold a lock for the
    duration of the block, so threads (the sidecar server runs one per
    request) take turns on the connection; ``write()`` is one ``BEGIN
    IMMEDIATE`` transaction. SQLite errors inside either come out as the
    package's own errors, naming the file.

    Both refuse (``DatabaseReplaced``) once the database, its ``-wal`` or its
    ``-shm`` at the path is not the file the connection opened
    (``replaced``): a connection keeps the files it opened, so a process
    that runs for long (the relay, the dashboard, the TUI) would go on
    reading and deciding on files no other process sees any more, such as
    a copy of the ``-wal`` a sidecar on the mount renamed over the real one.

    On the host (``migrate_schema``), each write transaction first takes
    out the triggers, indexes and keyed tables no migration made, and
    writes back or makes again what a migration made (``schema.guard``): a
    sidecar's trigger would otherwise run inside the host's decisions and
    revocations. A sidecar's own writes are left as they are: whatever a
    trigger could do there, the sidecar could do itself.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SEC,
        migrate_schema: bool = True,
    ) -> None:
        self.path = resolve_db_path(path)
        self._conn = open_db(self.path, busy_timeout=busy_timeout, migrate_schema=migrate_schema)
        self._lock = threading.RLock()
        self._files = OpenedFiles(self.path)  # (opened and migrated: a database in WAL mode has all three)
        self._guard = SchemaGuard() if migrate_schema else None

    def replaced(self) -> FileChange | None:
        """The first of the database's files at its path that is not the one this connection opened, if any
        (``OpenedFiles``)."""
        return self._files.changed()

    def _same_files(self, *, committed: bool = False) -> None:
        """``DatabaseReplaced`` when ``replaced`` names a file (``OpenedFiles.check``)."""
        self._files.check(committed=committed)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads in autocommit mode (each statement sees the latest commit)."""
        with self._lock:
            self._same_files()
            with translate_errors(self.path):
                yield self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one write transaction: committed on success, rolled back on error.

        The files are checked just before the commit, with the write lock
        held (a swap then rolls it back: nothing reached the old file), and
        after it: a sidecar on the mount can hold the lock to keep this
        process waiting as long as it likes and swap a file meanwhile, so
        a check before the lock is taken would prove nothing. Two checks a
        write, a few microseconds each.
        """
        with self._lock:
            try:
                with translate_errors(self.path), transaction(self._conn) as conn:
                    restored = self._guard.hold(conn) if self._guard is not None else []
                    yield conn
                    self._same_files()
            except BaseException:
                if self._guard is not None:
                    self._guard.rolled_back()  # a table it had to leave may be why: said before the error
                raise
            if self._guard is not None:
                self._guard.committed(restored)
            self._same_files(committed=True)

    def say_schema_changes_with(self, say: Callable[[str], None]) -> None:
        """Say what this connection's writes dropped from the schema or made again (``schema.guard``) through
        ``say`` instead of on stderr: the TUI's status line, since a line on stderr lands over its screen; the
        dashboard's pages, since the operator at a browser sees nothing of its stderr."""
        if self._guard is not None:
            self._guard.say = say

    def close(self) -> None:
        """Checkpoint without waiting and close (``close_cleanly``); the object is unusable afterwards.

        Once its files were replaced, closed by ``abandon``, without a
        checkpoint where Python allows: one would copy the old ``-wal``'s
        pages over what other processes wrote since.
        """
        with self._lock:
            self._files.close(self._conn, cleanly=True)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class DatabaseUser:
    """Base of the stores: one ``Database`` of its own (opened from ``db_path``) or one it is handed.

    ``close`` (and leaving a ``with`` block) closes only a ``Database`` the
    store opened itself, so stores that share one, such as a decision and its
    audit entry, never close it under each other.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        database: Database | None = None,
        migrate_schema: bool = True,
    ) -> None:
        self._owns_db = database is None
        self.db = database if database is not None else Database(db_path, migrate_schema=migrate_schema)

    def close(self) -> None:
        """Close the store's connection, unless it was handed a ``Database`` to share."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
