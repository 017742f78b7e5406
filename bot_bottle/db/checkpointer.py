"""``IdleCheckpointer``: a process that stays open keeps the WAL short, so commits seldom have to."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Self

from bot_bottle.connection import checkpoint, connect
from bot_bottle.db.files import OpenedFiles
from bot_bottle.errors import BotBottleError
from bot_bottle.file_watch import FileWatch
from bot_bottle.paths import resolve_db_path

# How long commits must pause before an idle process checkpoints, and how often it looks without inotify.
IDLE_CHECKPOINT_SEC = 0.5
POLL_CHECKPOINT_SEC = 5.0


class IdleCheckpointer:
    """A thread that copies the WAL into the database once commits pause, so commits seldom have to.

    SQLite checkpoints in the connection whose commit brings the WAL to
    ``WAL_AUTOCHECKPOINT_PAGES``: that caller pays for copying every page
    since the last one. A process that stays open (the sidecar's server,
    the relay) runs this thread instead: it sleeps on the commit watch and,
    once ``idle`` seconds pass without a commit (and once after it starts),
    runs a PASSIVE checkpoint on a connection of its own, which waits for no
    reader and no writer. Without
    inotify it checkpoints every ``POLL_CHECKPOINT_SEC``. It never sets the
    journal mode; in rollback mode a checkpoint does nothing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, idle: float = IDLE_CHECKPOINT_SEC,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.path = resolve_db_path(path)
        self._idle = idle
        self._log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self.checkpoints = 0  # how many it ran (for tests and benchmarks)

    def start(self) -> Self:
        """Start the thread (returns self)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, after one last checkpoint if a commit came since the previous one."""
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            conn = connect(self.path, switch_journal=False)
        except BotBottleError as exc:
            self._log(f"the WAL is left to SQLite's own checkpoints: {exc}")
            return
        files = OpenedFiles(self.path)
        watch = FileWatch.commits(self.path)
        committed = True  # the WAL may hold commits from before the watch: one checkpoint once idle
        failing = False
        try:
            while not self._stop.is_set():
                if watch is not None:
                    if watch.wait(self._idle):
                        committed = True
                        continue
                elif self._stop.wait(POLL_CHECKPOINT_SEC):
                    break
                if committed:
                    if not self._still_ours(files):
                        return
                    failing = self._checkpoint(conn, failing)
                    committed = watch is None
            if committed and watch is not None and self._still_ours(files):
                self._checkpoint(conn, failing)
        finally:
            if watch is not None:
                watch.close()
            files.close(conn, cleanly=True)

    def _still_ours(self, files: OpenedFiles) -> bool:
        """Whether the files at the path are still the ones this connection opened; if not, says so (and this
        thread stops): a checkpoint would copy the old ``-wal``'s pages over what other processes wrote since."""
        change = files.changed()
        if change is not None:
            self._log(f"checkpoints stopped: {change} since this process opened it (restart it)")
        return change is None

    def _checkpoint(self, conn: sqlite3.Connection, failing: bool) -> bool:
        """One passive checkpoint; True while they fail (logged once per outage)."""
        try:
            checkpoint(conn)
        except sqlite3.Error as exc:
            if not failing:
                self._log(f"checkpoint failed, SQLite's own will run instead: {exc}")
            return True
        self.checkpoints += 1
        return False
