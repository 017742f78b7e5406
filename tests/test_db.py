"""The host database's location, connection settings and transactions."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

from bot_bottle import db
from bot_bottle.connection import check_sqlite_version, connect, transaction
from bot_bottle.errors import CannotOpenDatabase, SQLiteTooOld
from bot_bottle.schema import migrate
from tests.helpers.support import TempDirTest


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

    def test_journal_is_created_0600(self) -> None:
        """SQLite's rollback journal, written during a transaction, has the database's mode."""
        conn = db.open_db()
        self.addCleanup(conn.close)
        journal = Path(str(db.host_db_path()) + "-journal")
        with transaction(conn):
            conn.execute("INSERT INTO schema_history (version, name, sha256, applied_at) VALUES (99, 'x', :h, 'now')",
                         {"h": "0" * 64})
            self.assertTrue(journal.exists())
            self.assertEqual(stat.S_IMODE(journal.stat().st_mode), 0o600)
            conn.execute("DELETE FROM schema_history WHERE version = 99")
        self.assertFalse(journal.exists(), "DELETE journal mode removes the journal at commit")


class ConnectTest(TempDirTest):
    def test_settings_read_back(self) -> None:
        """Every connection setting of D3 reads back from SQLite itself."""
        conn = connect(self.tmp / "a.db")
        self.addCleanup(conn.close)
        self.assertIsNone(conn.isolation_level)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual(conn.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL
        self.assertEqual(conn.execute("PRAGMA foreign_keys").fetchone()[0], 1)
        self.assertEqual(conn.execute("PRAGMA busy_timeout").fetchone()[0], 5000)

    def test_busy_timeout_is_configurable(self) -> None:
        """The busy timeout given to connect is the one SQLite uses."""
        conn = connect(self.tmp / "a.db", busy_timeout=0.25)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA busy_timeout").fetchone()[0], 250)

    def test_wal_database_is_switched_back(self) -> None:
        """A database left in WAL mode comes back in rollback-journal mode, its data intact."""
        path = self.tmp / "wal.db"
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("CREATE TABLE t (x)")
        raw.execute("INSERT INTO t VALUES (1)")
        raw.commit()
        raw.close()
        conn = connect(path)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "delete")
        self.assertEqual(conn.execute("SELECT x FROM t").fetchall(), [(1,)])
        self.assertFalse(Path(str(path) + "-wal").exists())

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
