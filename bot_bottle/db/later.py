"""``LaterWrites``: rows that ride on a process's next write transaction instead of a commit of their own.

Some writes are bookkeeping that nobody waits on: a sidecar's archive of a
proposal it has answered (``queue_store.BottleQueue.archive``). A commit of
its own costs a sync under the write lock, which every other bottle's filing
and every decision wait behind; carried by the next write, it costs one
UPDATE there. Nothing is lost that a crash could not lose anyway: a row not
yet written is what a process killed just before writing it leaves.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TypeVar

from bot_bottle.db import Database
from bot_bottle.errors import BotBottleError, DatabaseError

Row = dict[str, object]
W = TypeVar("W")


class LaterWrites:
    """Rows for ``statement`` kept by key, written by the next write through ``carried`` (or ``riding``),
    after ``delay`` seconds in a transaction of their own if no write comes first (a timer thread), or by
    ``flush`` (as the store closes). Safe to share between threads.
    """

    def __init__(self, db: Database, statement: str, delay: float, *, key: str) -> None:
        self._db = db
        self._key = key  # the parameter of a row that is its key
        self._statement = statement
        self._delay = delay
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        # Held through each write of their own (the timer's, ``flush``'s), so that ``flush`` waits for a
        # timer's write under way instead of finding nothing kept and letting the store close under it.
        self._writing = threading.Lock()

    def add(self, row: Row) -> Row:
        """Keep ``row`` (the statement's parameters), unless one with its key is kept: the one kept."""
        with self._lock:
            kept = self._rows.setdefault(str(row[self._key]), row)
            if self._timer is None:
                self._timer = threading.Timer(self._delay, self._write_alone)
                self._timer.daemon = True
                self._timer.start()
        return kept

    def kept(self, key: str) -> Row | None:
        """The row kept under ``key`` that no write has carried yet, if any."""
        with self._lock:
            return self._rows.get(key)

    @contextmanager
    def riding(self, write: AbstractContextManager[W], connection: Callable[[W], sqlite3.Connection]) -> Iterator[W]:
        """``write`` (a write transaction; ``connection`` gives its connection) that writes the rows kept first.

        The rows are taken once the transaction holds this process's
        connection, not before: a row kept by another thread meanwhile (its
        check read under the same lock, ``QueueStore._archive_later``) is
        either written by this transaction or left for the next, never
        missed by a read this transaction makes after writing what it took
        (a filing's dedupe, which once answered a request with the old
        rejection its sidecar had just archived). Rows not written are given
        back if the block or its commit fails, for the next write to carry.
        Writing one twice is harmless: the statement must only ever set what
        is not set yet.
        """
        taken: list[Row] = []
        try:
            with write as handle:
                with self._lock:
                    taken, self._rows = list(self._rows.values()), {}
                self.write_in(connection(handle), taken)
                yield handle
        except BaseException:
            if taken:  # less those ``write_in`` dropped
                with self._lock:
                    self._rows = {**{str(row[self._key]): row for row in taken}, **self._rows}
            raise

    @contextmanager
    def carried(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the database (``Database.write``) that writes the rows kept first."""
        with self.riding(self._db.write(), lambda conn: conn) as conn:
            yield conn

    def write_in(self, conn: sqlite3.Connection, rows: list[Row]) -> None:
        """Run the statement for each row in the caller's write transaction.

        One that fails (a trigger a sidecar added refuses it, or raises any
        other error for it) is dropped (taken out of ``rows``): a write
        carrying it must not fail for it, again and again.
        A trigger that rolled the whole transaction back (``RAISE(ROLLBACK)``)
        fails this write with ``DatabaseError`` before anything else of it ran:
        carrying on would run the caller's statements one commit each, outside
        any transaction and its write lock.
        """
        for row in list(rows):
            try:
                conn.execute(self._statement, row)
            except sqlite3.DatabaseError as exc:
                rows.remove(row)
                if not conn.in_transaction:
                    raise DatabaseError(
                        f"the database rolled back this write while it wrote a row kept for it ({exc}; a trigger "
                        f"can do that): nothing of the write was committed and that row is dropped: try again"
                    ) from None

    def flush(self) -> None:
        """Write what is kept now, in a transaction of its own (nothing when nothing is); a failure leaves it
        unwritten, as a crash would: closing must still close."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._write_alone()

    def _write_alone(self) -> None:
        with self._writing:
            with self._lock:
                self._timer = None
                if not self._rows:
                    return
            with suppress(BotBottleError, sqlite3.Error), self.carried():
                pass
