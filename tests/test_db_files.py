"""A database's files replaced under an open connection: every read and write after it is refused.

A connection keeps the files it opened. A long-running process (the relay,
the dashboard, the TUI) whose database, ``-wal`` or ``-shm`` was swapped at
its path would go on reading and deciding on files no other process sees;
``Database`` refuses instead (``DatabaseReplaced``, naming the file). Other
processes opening, writing and closing the database, the way they do all
day, must change nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import unittest
from pathlib import Path

from bot_bottle.connection import connect
from bot_bottle.db import Database
from bot_bottle.db.checkpointer import IdleCheckpointer
from bot_bottle.db.files import closing_checked
from bot_bottle.errors import DatabaseReplaced
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import REPO, TempDirTest, wait_until

# Another process filing a proposal for each host it is given, and closing cleanly (a checkpoint that
# truncates the -wal).
_FILE_AND_CLOSE = ("import sys\nfrom bot_bottle.queue_store import QueueStore\n"
                   "with QueueStore(sys.argv[1]) as store:\n"
                   "    for host in sys.argv[2:]:\n"
                   "        store.submit('web-2', 'egress-allow', '{\"host\": \"' + host + '\"}', 'elsewhere')\n")


_COUNT = ("import sqlite3, sys\nraw = sqlite3.connect(sys.argv[1])\n"
          "print(raw.execute('PRAGMA integrity_check').fetchone()[0], "
          "raw.execute('SELECT count(*) FROM proposals').fetchone()[0])\n")


class ReplacedFilesTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "files.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "mine")

    def file_elsewhere(self, *hosts: str) -> None:
        """Another process opens the database, files a proposal for each of ``hosts``, and closes it cleanly."""
        done = subprocess.run([sys.executable, "-c", _FILE_AND_CLOSE, str(self.path), *hosts], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_other_processes_opening_writing_and_closing_change_nothing(self) -> None:
        for number in range(3):
            self.file_elsewhere(f"b{number}.example")
        self.assertIsNone(self.store.db.replaced())
        self.assertEqual(len(self.store.pending()), 4)
        self.assertTrue(Path(f"{self.path}-wal").exists(), "an open connection keeps the -wal from being deleted")

    def test_each_file_swapped_or_removed_is_refused(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            for how in ("replaced by another file", "removed"):
                with self.subTest(f"files.db{suffix} {how}"):
                    folder = self.tmp / f"{suffix or 'db'}-{how.split()[0]}"
                    folder.mkdir()
                    path = folder / "files.db"
                    store = QueueStore(path)
                    self.addCleanup(store.close)
                    store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "before")
                    if how == "removed":
                        os.rename(f"{path}{suffix}", folder / f"moved{suffix}")
                    elif suffix:
                        shutil.copyfile(f"{path}{suffix}", folder / "copy")
                        os.rename(folder / "copy", f"{path}{suffix}")
                    else:  # a copy of the whole database, its -wal emptied first so that the copy owns no frame
                        raw = sqlite3.connect(path)
                        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        raw.execute("VACUUM INTO ?", (str(folder / "copy"),))
                        raw.close()
                        os.rename(folder / "copy", path)
                    self.assertEqual(str(store.db.replaced()), f"{path}{suffix} was {how}")
                    with self.assertRaises(DatabaseReplaced) as read:
                        store.pending()
                    self.assertIn(f"{path}{suffix} was {how} since this process opened it", str(read.exception))
                    self.assertIn("restart this process", str(read.exception))
                    with self.assertRaises(DatabaseReplaced):
                        store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "c.example"}', "after the swap")
                    store.close()
                    for moved in folder.glob("moved*"):
                        os.rename(moved, f"{path}{moved.name.removeprefix('moved')}")
                    with QueueStore(path) as fresh:  # what is at the path now: nothing was filed into it
                        self.assertEqual([p.justification for p in fresh.pending()], ["before"])

    def test_a_rollback_database_switched_to_wal_is_followed_then_guarded(self) -> None:
        path = self.tmp / "rollback.db"
        QueueStore(path).close()
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode = DELETE")
        raw.close()
        self.assertFalse(Path(f"{path}-wal").exists())
        with Database(path, migrate_schema=False) as sidecar:  # never switches the journal mode
            with sidecar.read() as conn:
                self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
            with QueueStore(path) as host:  # the host's open switches it to WAL
                host.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "after the switch")
                with sidecar.read() as conn:  # followed into the new files, which are taken as they are
                    self.assertEqual(conn.execute("SELECT count(*) FROM proposals").fetchone()[0], 1)
                self.assertIsNone(sidecar.replaced())
                shutil.copyfile(f"{path}-wal", self.tmp / "copy-wal")
                os.rename(self.tmp / "copy-wal", f"{path}-wal")
                self.assertEqual(str(sidecar.replaced()), f"{path}-wal was replaced by another file")
                with self.assertRaises(DatabaseReplaced):
                    sidecar.read().__enter__()

    def swap_wal_and_shm(self) -> None:
        """What a sidecar on the mount can do: a copy of the -wal renamed over it, the -shm moved away."""
        shutil.copyfile(f"{self.path}-wal", self.tmp / "copy-wal")
        os.rename(f"{self.path}-shm", self.tmp / "old-shm")
        os.rename(self.tmp / "copy-wal", f"{self.path}-wal")

    def assert_every_row_kept(self, count: int) -> None:
        """The database at the path, read by a process of its own (SQLite shares a file's -shm between the
        connections of one process): whole, with ``count`` proposals."""
        read = subprocess.run([sys.executable, "-c", _COUNT, str(self.path)], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual((read.returncode, read.stdout.split()), (0, ["ok", str(count)]), read.stderr)

    @unittest.skipIf(getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None) is None,
                     "this Python cannot close a connection without SQLite's checkpoint (3.12+ can); "
                     "db.files.abandon says why 3.11 closes plainly")
    def test_closing_after_a_swap_loses_no_row_written_since(self) -> None:
        """The last connection to close checkpoints its -wal and deletes the one at the path: the stale one must
        not, or the rows other processes filed meanwhile (into the -wal at the path) are lost."""
        self.swap_wal_and_shm()
        self.file_elsewhere(*(f"b{number}.example" for number in range(40)))
        self.assertIsNotNone(self.store.db.replaced())
        self.store.close()  # the last connection
        self.assert_every_row_kept(41)

    def test_the_idle_checkpointer_stops_at_a_swap(self) -> None:
        """A long-running process's checkpoint thread, on its own connection: after a swap it checkpoints
        nothing more and says why. Its old -wal's pages would go over those other processes wrote (and
        checkpointed) since: without the check, the database read as malformed afterwards."""
        logged: list[str] = []
        # Idle for long enough that the files filed elsewhere come first (each of their commits resets it).
        checkpointer = IdleCheckpointer(self.path, idle=1.0, log=logged.append).start()
        wait_until(lambda: checkpointer.checkpoints >= 1, what="the first checkpoint")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a2.example"}', "mine, before the swap")
        self.swap_wal_and_shm()
        self.file_elsewhere(*(f"b{number}.example" for number in range(40)))
        wait_until(lambda: logged, what="the checkpointer saying it stopped")
        checkpointer.stop()
        self.assertIn(f"checkpoints stopped: {self.path}-wal was replaced by another file", logged[0])
        self.assert_every_row_kept(42)

    def test_a_command_whose_files_were_swapped_says_so(self) -> None:
        """A command that opens the file without ``Database`` (``db upgrade``, ``db backup``...) and whose files
        were swapped while it ran: its work was the old file's, and it says so instead of reporting success."""
        with self.assertRaises(DatabaseReplaced) as swapped, closing_checked(connect(self.path), self.path) as conn:
            self.swap_wal_and_shm()
            conn.execute("SELECT count(*) FROM proposals").fetchone()  # as db backup or db check reads
        self.assertIn(f"{self.path}-wal was replaced by another file while this command ran", str(swapped.exception))
        self.assertIn("run the command again", str(swapped.exception))
        with closing_checked(connect(self.path), self.path) as conn:  # nothing swapped since it opened: as ever
            self.assertEqual(conn.execute("SELECT justification FROM proposals").fetchall(), [("mine",)])
