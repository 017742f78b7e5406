"""A database's files at its path (the database, its ``-wal``, its ``-shm``), as a connection opened them.

A connection keeps the files it opened. A sidecar on the mount can rename a
copy over any of them, and an operator can restore a backup by hand: a
process that stays open would go on reading and deciding on files no other
process sees. ``OpenedFiles`` tells when that happened; ``abandon`` closes a
connection it happened to without letting SQLite checkpoint its old
``-wal`` over what others wrote since (docs/decisions.md, "Journal and
transactions"); ``closing_checked`` does both for a command that opens the
file for a moment, without ``db.Database``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from bot_bottle.connection import close_cleanly
from bot_bottle.errors import DatabaseReplaced
from bot_bottle.paths import file_identity

#: The files a database in WAL mode is made of: the database, its log of commits, and the log's index.
DATABASE_FILE_SUFFIXES = ("", "-wal", "-shm")


class FileChange(NamedTuple):
    """One of a database's files at its path is not the one a connection opened."""

    path: Path
    removed: bool  # nothing is there now (else: another file is)

    def __str__(self) -> str:
        return f"{self.path} was {'removed' if self.removed else 'replaced by another file'}"


class OpenedFiles:
    """A database's files as a connection opened them, to tell when one at the path is another file since.

    A file absent when the connection opened is taken as it is first seen:
    a database in rollback mode has no ``-wal`` or ``-shm``, and when the
    host switches it to WAL later the connection follows, into the files
    made then.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Named once: every read and write looks (three lstat calls, a few microseconds in all).
        self._names = tuple(f"{path}{suffix}" for suffix in DATABASE_FILE_SUFFIXES)
        # Once a connection read the database in WAL mode, its -wal and -shm exist, and an open connection
        # keeps SQLite from deleting them: each is the one the connection uses until it closes.
        self._opened = tuple(file_identity(name) for name in self._names)

    def changed(self) -> FileChange | None:
        """The first of the files at the path that is not the one the connection opened, if any."""
        now = tuple(file_identity(name) for name in self._names)
        if now == self._opened:
            return None
        for name, opened, there in zip(self._names, self._opened, now, strict=True):
            if opened is not None and there != opened:
                return FileChange(Path(name), removed=there is None)
        self._opened = tuple(opened if opened is not None else there
                             for opened, there in zip(self._opened, now, strict=True))
        return None

    def check(self, *, committed: bool = False) -> None:
        """``DatabaseReplaced``, saying what to do, when ``changed`` names a file.

        ``committed``: asked right after a commit, which then went into the
        old file, where no other process may ever read it.
        """
        change = self.changed()
        if change is not None:
            done = ("The write this process had just committed went into the old file, where no other process "
                    "may see it: check whether it is there once restarted, and make it again if not. "
                    if committed else "")
            raise DatabaseReplaced(
                "The database file is gone" if change.removed and change.path == self.path
                else "The database file was replaced",
                f"{change} since this process opened it. It still has the old file open, which no other process "
                f"sees, so it reads and records nothing more. {done}".rstrip(),
                "Put the database back if it was moved by mistake, then restart this process (a dashboard, the "
                "TUI, the relay: stop it and start it again).")

    def close(self, conn: sqlite3.Connection, *, cleanly: bool) -> FileChange | None:
        """Close ``conn``, the connection these files are of: by ``abandon`` once one was replaced, otherwise
        as it is (through ``connection.close_cleanly`` when ``cleanly``); what was replaced, if anything."""
        change = self.changed()
        if change is not None:
            abandon(conn)
        elif cleanly:
            close_cleanly(conn)
        else:
            conn.close()
        return change


def abandon(conn: sqlite3.Connection) -> None:
    """Close a connection whose files were replaced at their path, without the checkpoint of a close if it can.

    The last connection to a database in WAL mode copies its ``-wal`` into
    the database file as it closes, then deletes the ``-wal`` by its name.
    For a connection whose ``-wal`` or ``-shm`` was swapped, that copies its
    old pages over the ones other processes wrote since, and deletes the
    ``-wal`` they use: their rows are lost (tests/test_db_files.py). Python
    3.12 and later can tell SQLite not to. On 3.11 the close is a plain one:
    keeping the connection open instead would leave its old ``-shm`` to any
    connection this process opens to the same file later (SQLite shares one
    per file in a process), which is worse. Only a swap makes this happen,
    and what it loses a sidecar could delete itself (docs/decisions.md).
    """
    no_checkpoint = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
    setconfig = getattr(conn, "setconfig", None)
    if no_checkpoint is not None and setconfig is not None:
        with contextlib.suppress(sqlite3.Error):
            setconfig(no_checkpoint, True)
    conn.close()


@contextlib.contextmanager
def closing_checked(conn: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """``conn`` (just opened on ``path``), closed when the block ends; for a command that opens the file
    without ``db.Database``.

    Were its files replaced meanwhile, it is closed by ``abandon`` and,
    unless the block failed already, ``DatabaseReplaced`` says that what
    the command read or wrote was the old file's: a command that reported
    success would then hide that its work went where no other process
    reads.
    """
    files = OpenedFiles(path)
    try:
        yield conn
    finally:
        change = files.close(conn, cleanly=False)
    if change is not None:
            raise DatabaseReplaced(
            "The database file was replaced",
            f"{change} while this command ran: what it read or wrote was the old file's, which no other process "
            "sees.",
            f"Look at the database at the path ('bot-bottle db status --db {path}') and run the command again.")
