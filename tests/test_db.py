"""The host database's location, connection settings and transactions."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

from bot_bottle import connection, db, filesystems
from bot_bottle.connection import check_sqlite_version, close_cleanly, connect, transaction
from bot_bottle.db.checkpointer import IdleCheckpointer
from bot_bottle.errors import CannotOpenDatabase, DatabaseError, SQLiteTooOld
from bot_bottle.filesystems import JOURNAL_ROLLBACK, JOURNAL_WAL, MountEntry, journal_mode_for
from bot_bottle.schema import migrate
from tests.helpers.support import TempDirTest, wait_until

VIRTIOFS = MountEntry("/run/supervise", "virtiofs", "mount0")
BOTTLE_ROW = ("INSERT INTO bottles (slug, state, prepared_at) "
              "VALUES ('web-1', 'prepared', '2026-12-04T00:00:00.000000Z')")


class PathsTest(TempDirTest):
    def test_host_paths_follow_home(self) -> None:
        """The root, directory and file all live under $HOME/.bot-bottle."""
        self.assertEqual(db.bot_bottle_root(), self.home / ".bot-bottle")
        self.assertEqual(db.host_db_dir(), self.home / ".bot-bottle" / "db")
        self.assertEqual(db.host_db_path(), self.home / ".bot-bottle" / "db" / "bot-bottle.db")

    def test_container_constants(self) -> None:
        """The sidecar's path is a constant inside the mounted directory."""
        self.assertEqual(db.DB_DIR_IN_CONTAINER, "/run/supervise")
        self.assertEqual(db.DB_PATH_IN_CONTAINER, "/run/supervise/bot-bottle.db")
        self.assertEqual(os.path.dirname(db.DB_PATH_IN_CONTAINER), db.DB_DIR_IN_CONTAINER)

    def test_fresh_host_database_modes(self) -> None:
        """open_db() on a fresh HOME creates the directory 0700 and the file 0600, at head."""
        conn = db.open_db()
        self.addCleanup(conn.close)
        self.assertEqual(stat.S_IMODE(db.host_db_dir().stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(db.host_db_path().stat().st_mode), 0o600)
        self.assertEqual(migrate.current_version(conn), len(migrate.discover()))

    def test_wal_files_are_created_0600(self) -> None:
        """SQLite's WAL and its shared-memory index, beside the database, have the database's mode."""
        conn = db.open_db()
        self.addCleanup(conn.close)
        with transaction(conn):
            conn.execute("INSERT INTO schema_history (version, name, sha256, applied_at) VALUES (99, 'x', :h, 'now')",
                         {"h": "0" * 64})
            conn.execute("DELETE FROM schema_history WHERE version = 99")
        for suffix in ("-wal", "-shm"):
            with self.subTest(suffix):
                beside = Path(str(db.host_db_path()) + suffix)
                self.assertEqual(stat.S_IMODE(beside.stat().st_mode), 0o600)
        self.assertEqual(sorted(os.listdir(db.host_db_dir())), ["bot-bottle.db", "bot-bottle.db-shm",
                                                                 "bot-bottle.db-wal"])

    def test_the_rollback_journal_is_created_0600(self) -> None:
        """Where WAL is unsafe, the rollback journal, written during a transaction, has the database's mode."""
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS):
            conn = db.open_db()
        self.addCleanup(conn.close)
        rollback_journal = Path(str(db.host_db_path()) + "-journal")
        with transaction(conn):
            conn.execute("INSERT INTO schema_history (version, name, sha256, applied_at) VALUES (99, 'x', :h, 'now')",
                         {"h": "0" * 64})
            self.assertTrue(rollback_journal.exists())
            self.assertEqual(stat.S_IMODE(rollback_journal.stat().st_mode), 0o600)
            conn.execute("DELETE FROM schema_history WHERE version = 99")
        self.assertFalse(rollback_journal.exists(), "DELETE journal mode removes the journal at commit")


class ConnectTest(TempDirTest):
    def test_settings_read_back(self) -> None:
        """Every connection setting of docs/decisions.md reads back from SQLite itself."""
        conn = connect(self.tmp / "a.db")
        self.addCleanup(conn.close)
        self.assertIsNone(conn.isolation_level)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL
        self.assertEqual(conn.execute("PRAGMA foreign_keys").fetchone()[0], 1)
        self.assertEqual(conn.execute("PRAGMA busy_timeout").fetchone()[0], 5000)
        self.assertEqual(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0], connection.WAL_AUTOCHECKPOINT_PAGES)
        self.assertEqual(conn.execute("PRAGMA journal_size_limit").fetchone()[0],
                         connection.JOURNAL_SIZE_LIMIT_BYTES)

    def test_busy_timeout_is_configurable(self) -> None:
        """The busy timeout given to connect is the one SQLite uses."""
        conn = connect(self.tmp / "a.db", busy_timeout=0.25)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA busy_timeout").fetchone()[0], 250)


class JournalModeTest(TempDirTest):
    """WAL where every opener shares this kernel, set by the host alone; the rollback journal elsewhere."""

    def rollback_database(self, name: str) -> Path:
        path = self.tmp / name
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode = DELETE")
        raw.execute("CREATE TABLE t (x)")
        raw.execute("INSERT INTO t VALUES (1)")
        raw.commit()
        raw.close()
        return path

    def test_which_mode_each_filesystem_gets(self) -> None:
        """Local filesystems get WAL; shared and unknown ones the rollback journal; no mount table (macOS) WAL."""
        cases = [(MountEntry("/", "ext4", "/dev/vda"), JOURNAL_WAL), (MountEntry("/", "tmpfs", "tmpfs"), JOURNAL_WAL),
                 (VIRTIOFS, JOURNAL_ROLLBACK), (MountEntry("/h", "nfs4", "filer:/h"), JOURNAL_ROLLBACK),
                 (MountEntry("/h", "fuse.grpcfuse", "grpcfuse"), JOURNAL_ROLLBACK),
                 (MountEntry("/o", "weirdfs", "none"), JOURNAL_ROLLBACK), (None, JOURNAL_WAL)]
        for entry, want in cases:
            with self.subTest(entry=entry), mock.patch.object(filesystems, "filesystem_of", return_value=entry):
                mode, why = journal_mode_for(self.tmp)
                self.assertEqual(mode, want)
                self.assertTrue(why)
        self.assertEqual(journal_mode_for(self.tmp)[0], JOURNAL_WAL, "this test's own directory is local")

    def test_the_host_switches_an_existing_database_to_wal(self) -> None:
        """A database made in rollback mode is in WAL after the next host-side open, its data intact."""
        path = self.rollback_database("old.db")
        conn = connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(conn.execute("SELECT x FROM t").fetchall(), [(1,)])
        again = sqlite3.connect(path)
        self.addCleanup(again.close)
        self.assertEqual(again.execute("PRAGMA journal_mode").fetchone()[0], "wal", "the mode is the file's")

    def test_a_sidecar_never_switches_it(self) -> None:
        """open_db(migrate_schema=False), the sidecar's open, uses the rollback journal the host left."""
        path = self.tmp / "host.db"
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS):
            db.open_db(path).close()  # the host made it where WAL is unsafe
        with sqlite3.connect(path) as raw:
            self.assertEqual(raw.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        sidecar = db.open_db(path, migrate_schema=False)
        self.addCleanup(sidecar.close)
        with transaction(sidecar):
            sidecar.execute(BOTTLE_ROW)
        self.assertEqual(sidecar.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual(connect(path, switch_journal=False).execute("PRAGMA journal_mode").fetchone()[0], "delete")

    def test_a_sidecar_follows_the_hosts_switch(self) -> None:
        """A sidecar open in rollback mode when the host switches to WAL goes on working, in WAL."""
        path = self.tmp / "both.db"
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS):
            db.open_db(path).close()
        sidecar = db.open_db(path, migrate_schema=False)
        self.addCleanup(sidecar.close)
        host = db.open_db(path)
        self.addCleanup(host.close)
        self.assertEqual(host.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        with transaction(sidecar):
            sidecar.execute(BOTTLE_ROW)
        self.assertEqual(host.execute("SELECT state FROM bottles WHERE slug = 'web-1'").fetchone(), ("prepared",))
        self.assertEqual(sidecar.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_wal_where_it_is_unsafe_is_switched_back(self) -> None:
        """On a filesystem that may cross a VM boundary, a WAL database comes back to the rollback journal."""
        path = self.tmp / "wal.db"
        connect(path).close()
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS):
            conn = connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertFalse(Path(str(path) + "-wal").exists())

    def test_wal_that_cannot_be_switched_back_is_refused(self) -> None:
        """If another process keeps it open in WAL there, the host refuses, naming why, rather than use it."""
        path = self.tmp / "held.db"
        holder = connect(path)
        self.addCleanup(holder.close)
        holder.execute("CREATE TABLE t (x)")
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS), \
                self.assertRaisesRegex(DatabaseError, "virtiofs.*could not be switched to the rollback journal"):
            connect(path, busy_timeout=0.1)

    def test_a_switch_that_meets_a_long_transaction_waits_for_the_next_open(self) -> None:
        """A reader in rollback mode outlasting the busy timeout: the open succeeds, in the rollback journal."""
        path = self.rollback_database("busy.db")
        reader = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(reader.close)
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM t").fetchall()
        conn = connect(path, busy_timeout=0.1)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        reader.execute("COMMIT")
        later = connect(path)
        self.addCleanup(later.close)
        self.assertEqual(later.execute("PRAGMA journal_mode").fetchone()[0], "wal")


class CommitSignalTest(TempDirTest):
    """Each commit ends by touching NAME-wal, which is how watchers learn that it is over."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "s.db"
        self.conn = connect(self.path)
        self.addCleanup(self.conn.close)
        with transaction(self.conn):
            self.conn.execute("CREATE TABLE t (x)")
        self.wal = Path(str(self.path) + "-wal")

    def changed(self) -> int:
        return self.wal.stat().st_ctime_ns

    def test_a_commit_touches_the_wal_and_a_rollback_does_not(self) -> None:
        os.utime(self.wal, ns=(0, 0))
        before = self.changed()
        with transaction(self.conn):
            self.conn.execute("INSERT INTO t VALUES (1)")
        self.assertGreater(self.wal.stat().st_mtime_ns, 0, "the commit set the WAL's times")
        os.utime(self.wal, ns=(0, 0))
        with self.assertRaises(ValueError), transaction(self.conn):
            self.conn.execute("INSERT INTO t VALUES (2)")
            raise ValueError("no")
        self.assertEqual(self.wal.stat().st_mtime_ns, 0, "nothing committed, nothing signalled")
        self.assertGreaterEqual(self.changed(), before)

    def test_a_symlink_in_place_of_the_wal_is_touched_itself(self) -> None:
        """The directory is a sidecar's to write: the signal never follows a link to a file of the host's."""
        victim = self.tmp / "victim"
        victim.write_text("host file")
        os.utime(victim, ns=(0, 0))
        conn = sqlite3.connect(self.tmp / "other.db")
        conn.close()
        other = connection.Connection(":memory:")
        self.addCleanup(other.close)
        link = self.tmp / "other.db-wal"
        link.symlink_to(victim)
        other.wal_path = str(link)
        connection.signal_commit(other)
        self.assertEqual(victim.stat().st_mtime_ns, 0)

    def test_rollback_mode_has_no_wal_and_no_error(self) -> None:
        with mock.patch.object(filesystems, "filesystem_of", return_value=VIRTIOFS):
            conn = connect(self.tmp / "r.db")
        self.addCleanup(conn.close)
        with transaction(conn):
            conn.execute("CREATE TABLE t (x)")
        self.assertFalse(Path(str(self.tmp / "r.db") + "-wal").exists())


class CheckpointTest(TempDirTest):
    """The WAL kept short: a clean close empties it without waiting, an idle process checkpoints it."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "c.db"
        self.keeper = connect(self.path)  # another process's connection: the WAL outlives each close below
        self.addCleanup(self.keeper.close)
        with transaction(self.keeper):
            self.keeper.execute("CREATE TABLE t (x)")
        self.wal = Path(str(self.path) + "-wal")

    def in_the_file_itself(self) -> int:
        """Rows in the database file, leaving the WAL aside: what checkpoints have copied."""
        raw = sqlite3.connect(f"{self.path.as_uri()}?immutable=1", uri=True)
        try:
            return int(raw.execute("SELECT count(*) FROM t").fetchone()[0])
        except sqlite3.DatabaseError:
            # Not even the table yet, or a checkpoint midway: the file alone is inconsistent until it ends.
            return -1
        finally:
            raw.close()

    def test_a_clean_close_empties_the_wal(self) -> None:
        conn = connect(self.path)
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        self.assertGreater(self.wal.stat().st_size, 0)
        close_cleanly(conn)
        self.assertEqual(self.wal.stat().st_size, 0)
        self.assertEqual(self.in_the_file_itself(), 1)

    def test_a_close_waits_for_no_reader(self) -> None:
        """A reader holding a snapshot keeps the WAL; the close neither waits for it nor fails."""
        conn = connect(self.path)
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        self.keeper.execute("BEGIN")
        self.keeper.execute("SELECT count(*) FROM t").fetchone()
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
        started = time.monotonic()
        close_cleanly(conn)
        self.assertLess(time.monotonic() - started, connection.DEFAULT_BUSY_TIMEOUT_SEC / 2)
        self.assertGreater(self.wal.stat().st_size, 0, "the reader's snapshot is still in the WAL")
        self.assertEqual(self.keeper.execute("SELECT count(*) FROM t").fetchone()[0], 1, "its snapshot stands")
        self.keeper.execute("COMMIT")

    def test_an_idle_process_checkpoints(self) -> None:
        with IdleCheckpointer(self.path, idle=0.05) as checkpointer:
            with transaction(self.keeper):
                self.keeper.execute("INSERT INTO t VALUES (1)")
            wait_until(lambda: self.in_the_file_itself() == 1, what="a checkpoint after the commit")
            # One commit may wake the watch more than once (its WAL write, then its touch of NAME-wal), so a
            # second checkpoint may follow the first; after that, with no commit, none.
            time.sleep(0.3)
            runs = checkpointer.checkpoints
            time.sleep(0.5)
            self.assertEqual(checkpointer.checkpoints, runs, "no commit, no checkpoint")

    def test_no_checkpoint_while_commits_keep_coming(self) -> None:
        """It waits for a pause: commits every 20 ms against an idle time of 1 s see none until they stop."""
        with IdleCheckpointer(self.path, idle=1.0) as checkpointer:
            wait_until(lambda: checkpointer.checkpoints == 1, what="the checkpoint once idle after the start")
            for number in range(20):
                with transaction(self.keeper):
                    self.keeper.execute("INSERT INTO t VALUES (:n)", {"n": number})
                time.sleep(0.02)
            during = checkpointer.checkpoints
            wait_until(lambda: checkpointer.checkpoints > during, what="the checkpoint after the pause")
        self.assertEqual(during, 1)
        self.assertEqual(self.in_the_file_itself(), 20)


class BadPathTest(TempDirTest):
    """What connect refuses before it writes anything."""

    def test_directory_in_place_of_the_file(self) -> None:
        """A directory where the database file should be is refused, and left alone."""
        (self.tmp / "d.db").mkdir()
        with self.assertRaisesRegex(CannotOpenDatabase, "is a directory"):
            connect(self.tmp / "d.db")
        self.assertTrue((self.tmp / "d.db").is_dir())

    def test_file_in_place_of_the_directory(self) -> None:
        """A file where the database's directory should be is refused."""
        (self.tmp / "notdir").write_text("x")
        with self.assertRaisesRegex(CannotOpenDatabase, "not a directory"):
            connect(self.tmp / "notdir" / "a.db")

    def test_old_sqlite_is_refused(self) -> None:
        """An SQLite older than 3.37 is refused with a message naming both versions."""
        with self.assertRaises(SQLiteTooOld) as caught:
            check_sqlite_version((3, 31, 1))
        self.assertIn("3.31.1", str(caught.exception))
        self.assertIn("3.37.0", str(caught.exception))
        check_sqlite_version((3, 37, 0))


class TransactionTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.conn = connect(self.tmp / "t.db")
        self.addCleanup(self.conn.close)
        with transaction(self.conn):
            self.conn.execute("CREATE TABLE t (x INTEGER)")

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM t").fetchone()[0])

    def test_commits(self) -> None:
        """A block that ends normally is committed and leaves no transaction open."""
        with transaction(self.conn):
            self.conn.execute("INSERT INTO t VALUES (1)")
        self.assertFalse(self.conn.in_transaction)
        other = sqlite3.connect(self.tmp / "t.db")
        self.addCleanup(other.close)
        self.assertEqual(other.execute("SELECT count(*) FROM t").fetchone()[0], 1)

    def test_rolls_back_on_any_exception(self) -> None:
        """Exceptions, KeyboardInterrupt included, roll the whole block back."""
        for exc in (ValueError("x"), KeyboardInterrupt()):
            with self.assertRaises(type(exc)), transaction(self.conn):
                self.conn.execute("INSERT INTO t VALUES (1)")
                raise exc
            self.assertFalse(self.conn.in_transaction)
            self.assertEqual(self.count(), 0)

    def test_takes_the_write_lock_at_begin(self) -> None:
        """BEGIN IMMEDIATE: a second writer waits at BEGIN (and times out there), not at its first write."""
        other = connect(self.tmp / "t.db", busy_timeout=0.1)
        self.addCleanup(other.close)
        with transaction(self.conn), self.assertRaisesRegex(sqlite3.OperationalError, "locked"):
            other.execute("BEGIN IMMEDIATE")
        self.assertFalse(other.in_transaction)


class WriteLockWaitTest(TempDirTest):
    """``begin_immediate`` on a host connection (``wait_on_commits``): a writer that finds the lock taken
    gets it once the holder is done, or "locked" after its busy timeout, its busy timeout as it was."""

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "t.db"
        self.holder = connect(self.path)
        self.addCleanup(self.holder.close)
        with transaction(self.holder):
            self.holder.execute("CREATE TABLE t (x INTEGER)")

    def waiter(self, busy_timeout: float = 5.0, wait_on_commits: bool = True) -> sqlite3.Connection:
        conn = connect(self.path, busy_timeout=busy_timeout, wait_on_commits=wait_on_commits)
        self.addCleanup(conn.close)
        return conn

    def write_while_held(self, conn: sqlite3.Connection, release: str, watched: bool = True) -> list[BaseException]:
        """Write on ``conn`` in a thread while ``self.holder`` holds the lock, then ``release`` it."""
        errors: list[BaseException] = []
        started = threading.Event()

        def write() -> None:
            started.set()
            try:
                with transaction(conn):
                    conn.execute("INSERT INTO t VALUES (2)")
            except BaseException as exc:  # reported to the test
                errors.append(exc)

        self.holder.execute("BEGIN IMMEDIATE")
        self.holder.execute("INSERT INTO t VALUES (1)")
        thread = threading.Thread(target=write)
        thread.start()
        started.wait(5)
        if watched:  # the writer found the lock taken and sleeps on the commit watch
            wait_until(lambda: getattr(conn, "lock_watch", None) is not None, what="the writer waiting")
        else:
            time.sleep(0.05)  # most likely waiting in SQLite's busy handler now; the outcome is the same
        self.holder.execute(release)
        if release == "COMMIT":
            connection.signal_commit(self.holder)
        thread.join(10)
        self.assertFalse(thread.is_alive())
        return errors

    def values(self) -> list[int]:
        return [int(row[0]) for row in self.holder.execute("SELECT x FROM t ORDER BY x")]

    def test_the_lock_is_taken_after_a_commit(self) -> None:
        waiter = self.waiter()
        self.assertEqual(self.write_while_held(waiter, "COMMIT"), [])
        self.assertEqual(self.values(), [1, 2])
        self.assertEqual(waiter.execute("PRAGMA busy_timeout").fetchone()[0], 5000, "the busy timeout as it was")

    def test_the_lock_is_taken_after_a_rollback_which_signals_nothing(self) -> None:
        self.assertEqual(self.write_while_held(self.waiter(), "ROLLBACK"), [])
        self.assertEqual(self.values(), [2])

    def test_a_sidecars_connection_waits_in_sqlites_busy_handler(self) -> None:
        sidecar = self.waiter(wait_on_commits=False)
        self.assertEqual(self.write_while_held(sidecar, "COMMIT", watched=False), [])
        self.assertIsNone(getattr(sidecar, "lock_watch", None), "no watch was opened")
        self.assertEqual(self.values(), [1, 2])

    def test_without_inotify_sqlites_busy_handler_waits(self) -> None:
        waiter = self.waiter()
        with mock.patch.object(connection.FileWatch, "commits", return_value=None):
            self.assertEqual(self.write_while_held(waiter, "COMMIT", watched=False), [])
        self.assertEqual(self.values(), [1, 2])
        self.assertEqual(waiter.execute("PRAGMA busy_timeout").fetchone()[0], 5000)

    def test_a_lock_held_past_the_busy_timeout_is_an_error_and_nothing_is_written(self) -> None:
        waiter = self.waiter(busy_timeout=0.2)
        with transaction(self.holder):
            self.holder.execute("INSERT INTO t VALUES (1)")
            with self.assertRaisesRegex(sqlite3.OperationalError, "locked"), transaction(waiter):
                waiter.execute("INSERT INTO t VALUES (2)")
        self.assertFalse(waiter.in_transaction)
        self.assertEqual(self.values(), [1])
        self.assertEqual(waiter.execute("PRAGMA busy_timeout").fetchone()[0], 200)
        with transaction(waiter):  # and the next write, the lock free, goes through
            waiter.execute("INSERT INTO t VALUES (3)")
        self.assertEqual(self.values(), [1, 3])

    def test_host_and_sidecar_writers_in_processes_lose_nothing(self) -> None:
        """Four host and four sidecar processes of 50 writes each, contending for the lock: each write once."""
        script = (
            "import sys\n"
            "from bot_bottle.connection import connect, transaction\n"
            "conn = connect(sys.argv[1], switch_journal=False, wait_on_commits=int(sys.argv[2]) % 2 == 0)\n"
            "for i in range(50):\n"
            "    with transaction(conn):\n"
            "        conn.execute('INSERT INTO t VALUES (?)', (int(sys.argv[2]) * 1000 + i,))\n"
        )
        processes = [subprocess.Popen([sys.executable, "-c", script, str(self.path), str(n)]) for n in range(8)]
        self.assertEqual([process.wait(120) for process in processes], [0] * 8)
        self.assertEqual(self.values(), sorted(n * 1000 + i for n in range(8) for i in range(50)))


class DatabaseTest(TempDirTest):
    def test_threads_share_one_connection(self) -> None:
        """Many threads writing through one Database lose nothing and never interleave transactions."""
        database = db.Database(self.tmp / "x.db")
        self.addCleanup(database.close)
        with database.write() as conn:
            conn.execute("CREATE TABLE n (v INTEGER)")

        def work() -> None:
            for _ in range(50):
                with database.write() as conn:
                    (value,) = conn.execute("SELECT count(*) FROM n").fetchone()
                    conn.execute("INSERT INTO n VALUES (:v)", {"v": value})

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with database.read() as conn:
            values = [v for (v,) in conn.execute("SELECT v FROM n ORDER BY v")]
        self.assertEqual(values, list(range(400)))
