"""Opening an SQLite file the one way bot-bottle does, and its write transactions.

``connect`` holds every connection setting (docs/decisions.md, "Journal and
transactions"): autocommit mode, WAL where every process that opens the file
shares one kernel (the rollback journal elsewhere), ``synchronous=FULL``,
foreign keys, a busy timeout. Only the host sets the journal mode; a sidecar
uses the file as the host left it. ``transaction`` (writes), ``rolled_back``
(dry runs) and ``read_snapshot`` (consistent reads) are the only places in
the package that say BEGIN, COMMIT or ROLLBACK. ``close_cleanly`` checkpoints
without waiting for anyone before it closes. ``translate_errors`` turns
SQLite's exceptions into the package's own, each with a message that names
the file and what to do.

This module knows nothing of paths on the host or of the schema: ``db`` adds
the host's layout and migrates; ``migrate`` owns the schema.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot_bottle.errors import (
    BotBottleError,
    CannotOpenDatabase,
    CorruptDatabase,
    DatabaseBusy,
    DatabaseError,
    NotADatabase,
    ReadOnlyDatabase,
    SQLiteTooOld,
)
from bot_bottle.file_watch import FileWatch
from bot_bottle.filesystems import set_journal

MIN_SQLITE_VERSION = (3, 37, 0)  # STRICT tables
DEFAULT_BUSY_TIMEOUT_SEC = 5.0
DIR_MODE = 0o700
FILE_MODE = 0o600
# A commit that brings the WAL to this many pages copies them into the database (SQLite's default, said
# here); idle processes checkpoint sooner (db.checkpointer.IdleCheckpointer), so a commit seldom pays for one.
WAL_AUTOCHECKPOINT_PAGES = 1000
# After a checkpoint the WAL file is cut back to this size: it grows past it only while a long read holds
# its snapshot (docs/decisions.md, "Journal and transactions").
JOURNAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024

# Primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
# The extended code for a -shm file that could not be made larger: on a full disk, before any SQLITE_FULL.
_SQLITE_IOERR_SHMSIZE = 4874
_SQLITE_NOTADB = 26


class Connection(sqlite3.Connection):
    """A connection as ``connect`` opens it: it knows the WAL file that tells watchers a commit ended."""

    # ``NAME-wal``; ``transaction`` touches it after each commit (see ``signal_commit``). None: in memory.
    wal_path: str | None = None
    # A write waits for the lock on a watch of commits (``begin_immediate``); the watch; the busy timeout.
    wait_on_commits: bool = False
    lock_watch: FileWatch | None = None
    busy_timeout_ms: int = 0

    def close(self) -> None:
        """Close the connection, and the watch it waited for the lock on."""
        if self.lock_watch is not None:
            self.lock_watch.close()
            self.lock_watch = None
        super().close()


def check_sqlite_version(version: tuple[int, int, int] = sqlite3.sqlite_version_info) -> None:
    """Raise ``SQLiteTooOld`` when ``version`` is below ``MIN_SQLITE_VERSION``."""
    if tuple(version) < MIN_SQLITE_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_SQLITE_VERSION))
        raise SQLiteTooOld(
            f"this Python uses SQLite {have}, but bot-bottle needs SQLite {need} or newer "
            "(for STRICT tables): use a Python built against a newer SQLite"
        )


def translate(exc: sqlite3.Error, path: str | os.PathLike[str]) -> BotBottleError:
    """The package error that says what ``exc``, raised on the database at ``path``, means."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = str(exc)
    where = os.fspath(path)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in message:
        return DatabaseBusy(
            f"{where} stayed locked by another process past the busy timeout: "
            "try again; if it persists, look for a process stuck holding the database open"
        )
    if primary == _SQLITE_READONLY:
        return ReadOnlyDatabase(
            f"{where} is read-only ({message}): bot-bottle must write the database "
            "and its journal beside it; make the file and its directory writable by this user"
        )
    if primary == _SQLITE_CORRUPT or "malformed" in message:
        return CorruptDatabase(
            f"{where} is corrupt ({message}); nothing was changed. Keep a copy, run "
            f"'bot-bottle db check --db {where}' and restore the newest backup "
            "(*.bak beside the database)"
        )
    if primary == _SQLITE_NOTADB or "not a database" in message:
        return NotADatabase(
            f"{where} is not an SQLite database; it was left as it is: "
            "move it away or point --db at the bot-bottle database"
        )
    if primary == _SQLITE_CANTOPEN:
        return CannotOpenDatabase(f"cannot open {where} ({message}): check that its directory exists and is writable")
    if primary == _SQLITE_FULL or (primary == _SQLITE_IOERR and (code == _SQLITE_IOERR_SHMSIZE or _no_space(where))):
        # A full disk often shows as an I/O error first: the -shm's growth fails before a page is written.
        said = "" if primary == _SQLITE_FULL else f" ({message})"
        return DatabaseError(f"the disk holding {where} is full{said}; nothing was committed: free some space and "
                             "retry")
    if primary == _SQLITE_IOERR:
        return DatabaseError(f"I/O error on {where} ({message}); nothing was committed")
    return DatabaseError(f"SQLite error on {where}: {message}")


def _no_space(path: str) -> bool:
    """True when the filesystem holding ``path`` has no block left for this user (``statvfs``)."""
    try:
        return os.statvfs(os.path.dirname(os.path.abspath(path))).f_bavail == 0
    except OSError:
        return False


@contextmanager
def translate_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise any ``sqlite3.Error`` inside the block as the package error for it."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc, path) from exc


def _create_missing(path: Path) -> None:
    """Create the parent directories (0700) and an empty file (0600) where missing.

    The file is created with O_EXCL, so an existing file is never truncated or
    touched, and a second process that races us simply finds it there.
    """
    try:
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except FileExistsError:
        raise CannotOpenDatabase(f"cannot create {path}: {path.parent} exists and is not a directory") from None
    except OSError as exc:
        raise _os_error(path.parent, exc) from None
    if path.is_dir():
        raise CannotOpenDatabase(f"{path} is a directory, not a database file: point --db at a file")
    if not path.parent.is_dir():
        raise CannotOpenDatabase(f"cannot create {path}: {path.parent} is not a directory")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise _os_error(path, exc) from None
    # A brand-new empty file: no connection anywhere can hold locks on it yet,
    # so closing this descriptor drops nothing (docs/decisions.md, "Journal and transactions").
    os.close(fd)


def _os_error(path: Path, exc: OSError) -> BotBottleError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReadOnlyDatabase(
            f"cannot write {path} ({exc.strerror}): bot-bottle must be able to create and "
            "write the database and its journal there; fix the permissions or choose another --db"
        )
    return CannotOpenDatabase(f"cannot create {path}: {exc.strerror}")


def _refuse_link(path: Path, opened: str | None = None) -> None:
    """``CannotOpenDatabase`` when the database file at ``path`` is a symbolic link (or, given the file SQLite
    ``opened``, when that is not the file at ``path`` itself: a link put in place as it opened).

    SQLite follows a link in place of the database (never one in place of
    its ``-wal`` or ``-shm``), and the database's directory is a sidecar's
    to write: a link there would point the host at a file the sidecar
    chose, such as an older copy of the database, whose audit log lacks
    the entries since (a revocation) and whose anchor is another file
    (tests/attacks/test_db_link_swap.py).
    """
    expected = os.path.join(os.path.realpath(path.parent), path.name)
    if path.is_symlink() or (opened is not None and opened != expected):
        raise CannotOpenDatabase(
            f"{path} is a symbolic link: bot-bottle opens only the database file itself, never a link in its "
            "place (its directory is one sidecars can write); put the database file back at that path"
        )


def _check_writable(path: Path) -> None:
    # access(2) also answers EROFS for root, and for root permission bits do
    # not matter, so this is right for every user.
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ReadOnlyDatabase(
            f"the directory {path.parent} is not writable: SQLite writes the database's "
            "journal beside it, so bot-bottle cannot use the database there; "
            "make the directory writable by this user or choose another --db"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise ReadOnlyDatabase(
            f"{path} is not readable and writable by this user: "
            "fix its permissions (bot-bottle creates it 0600) or choose another --db"
        )


def connect(
    path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SEC, switch_journal: bool = True,
    wait_on_commits: bool = False,
) -> sqlite3.Connection:
    """Open (creating where missing) the SQLite file at ``path`` with bot-bottle's settings.

    The connection is in autocommit mode; write through ``transaction``. The
    file is checked to be a readable, writable SQLite database before
    anything is written to it; on any problem a ``DatabaseError`` subclass is
    raised and the file is left as it was. With ``switch_journal`` (the
    host) the file is put in the journal mode ``filesystems.journal_mode_for`` gives
    its directory: WAL where every opener shares this kernel, so that no read
    ever holds up a writer, the rollback journal elsewhere. A sidecar passes
    False and uses whichever mode the host left (SQLite follows a switch
    made while it is open). With ``wait_on_commits`` (the host's processes)
    a write waits for the lock on a watch of commits (``begin_immediate``).
    The connection may be shared between threads as long as the caller
    serialises its use.
    """
    check_sqlite_version()
    target = Path(path)
    _create_missing(target)
    _refuse_link(target)
    _check_writable(target)
    with translate_errors(target):
        conn = sqlite3.connect(
            target, timeout=busy_timeout, isolation_level=None, check_same_thread=False, factory=Connection
        )
    try:
        _refuse_link(target, opened=database_path(conn))
        with translate_errors(target):
            # Read the header and the schema first: a file that is not a
            # database, or is corrupt, fails here, before any write.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if switch_journal:
                set_journal(conn, target)
            conn.execute("PRAGMA synchronous = FULL")  # in WAL too: every commit is on disk before it returns
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
    except BaseException:
        conn.close()
        raise
    conn.wal_path = f"{target}-wal"
    conn.wait_on_commits = wait_on_commits
    conn.busy_timeout_ms = int(busy_timeout * 1000)
    return conn


def signal_commit(conn: sqlite3.Connection) -> None:
    """Tell watchers of the file that a commit has ended: touch ``NAME-wal`` (nothing in rollback mode).

    A WAL commit writes its frames, syncs them, and only then publishes them
    in the shared-memory index, which no file event reports; a reader woken
    by the frames' write would look too early and sleep out its whole poll
    interval. So every commit through ``transaction`` ends by setting the
    WAL file's times, which inotify reports as IN_ATTRIB
    (``file_watch.FileWatch.commits`` wakes on it). One system call; never
    through a symbolic link (the directory is a sidecar's to write), and a
    missing file (the rollback journal) is no error.
    """
    wal = getattr(conn, "wal_path", None)
    if wal:
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(wal, follow_symlinks=False)


def signal_decision(database: str | os.PathLike[str]) -> None:
    """Tell waiters for decisions that a commit recording audit entries has ended: touch the database file.

    Every decision (and every expiry, and every rule's decision) records its
    audit entry in the same transaction (``AuditStore.recording`` calls this
    once that has committed), so a waiter for a decision sleeps on this
    file's IN_ATTRIB (``FileWatch.decisions``) and no longer wakes for
    every filing and archive of every other bottle: with 16 sidecars waiting,
    two commits in three woke all 16 to find nothing (docs/benchmarks.md,
    "Throughput"). Other writes to the database file (a checkpoint's) are
    IN_MODIFY, which that watch ignores. One system call; never through a
    symbolic link; any error is ignored: the watch is a hint and waiters
    still look every poll interval.
    """
    with contextlib.suppress(OSError, NotImplementedError):
        os.utime(database, follow_symlinks=False)


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """A PASSIVE checkpoint: copy what the WAL holds into the file, waiting for no reader or writer.

    Returns SQLite's (busy, frames in the WAL, frames copied); (0, -1, -1) in
    rollback mode.
    """
    busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(log), int(copied)


def close_cleanly(conn: sqlite3.Connection) -> None:
    """Checkpoint without waiting, cut an emptied WAL file to nothing, and close.

    The last connection to close removes the WAL itself; one that is not
    the last still leaves it empty when no reader needs it (a TRUNCATE
    checkpoint, tried once with no busy wait, so no writer waits behind a
    close). A checkpoint is housekeeping: whatever it meets, the close goes on.
    """
    try:
        busy, log, copied = checkpoint(conn)
        if busy == 0 and log >= 0 and log == copied:
            conn.execute("PRAGMA busy_timeout = 0")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def database_path(conn: sqlite3.Connection) -> str:
    """The file behind the connection's main database ('' for an in-memory one)."""
    for _, name, filename in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(filename)
    return ""


# How long a host writer waiting for the lock sleeps at most between tries when no commit wakes it (a
# holder that rolled back, or wrote without signalling): SQLite's busy handler sleeps 1, 2, 5, 10 ms and more.
LOCK_RETRY_SEC = 0.002


def begin_immediate(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE; on a host connection, the write lock taken the moment its holder's commit ends.

    SQLite's busy handler sleeps 1, 2, 5, 10 ms and more between tries,
    blind to when the lock is let go; an operator decides one proposal at a
    time, so the decider's waits were the plane's (2.1 ms a decision with 16
    sidecars filing). A connection opened ``wait_on_commits`` (the host's)
    that finds the lock taken sleeps on a watch of the file's commits
    (``FileWatch.commits``: each ends with ``signal_commit``) and tries again
    as one ends, or after ``LOCK_RETRY_SEC``, until its busy timeout has
    passed ("locked", as before). Sidecars keep SQLite's handler: sixteen
    woken at every commit cost more than they gained (docs/benchmarks.md,
    "Throughput at bot-bottle's settings"). The handler is off for the BEGIN
    alone (a rollback-journal commit waits on it for readers); without
    inotify it waits, as before.
    """
    if not isinstance(conn, Connection) or not conn.wait_on_commits or not conn.wal_path:
        conn.execute("BEGIN IMMEDIATE")
        return
    database = conn.wal_path.removesuffix("-wal")
    deadline = time.monotonic() + conn.busy_timeout_ms / 1000
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not isinstance(translate(exc, database), DatabaseBusy) or remaining <= 0:
                    raise
            if conn.lock_watch is None:
                conn.lock_watch = FileWatch.commits(database)
                if conn.lock_watch is None:  # no inotify here: SQLite's busy handler waits what is left
                    conn.execute(f"PRAGMA busy_timeout = {max(1, int(remaining * 1000))}")
                    conn.execute("BEGIN IMMEDIATE")
                    return
                continue  # once more now the watch is there: a commit may have ended before it was
            conn.lock_watch.wait(min(LOCK_RETRY_SEC, remaining))
    finally:
        conn.execute(f"PRAGMA busy_timeout = {conn.busy_timeout_ms}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception.

    IMMEDIATE takes the write lock before the first read, so the busy timeout
    applies and no read-then-write upgrade can fail with SQLITE_BUSY midway.
    A failed COMMIT is rolled back too, so the connection never stays inside
    a transaction after this block. A commit ends with ``signal_commit``.
    """
    begin_immediate(conn)
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    signal_commit(conn)


@contextmanager
def rolled_back(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that is always rolled back: a dry run of writes, to see what they would do."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every statement in the block sees the same committed state.

    In autocommit mode each statement sees the latest commit, so two reads in a
    row can straddle another process's commit. A deferred BEGIN keeps one
    snapshot from the first read to the end of the block instead. In WAL mode
    that holds up no writer, however long the block; in rollback mode it holds
    SQLite's shared lock, which every commit must wait out.
    """
    conn.execute("BEGIN DEFERRED")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing was written; ending it is all that matters
