"""The migration runner: discovery, atomic steps, drift, versions, backups."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path
from unittest import mock

from bot_bottle.connection import connect
from bot_bottle.db import open_db
from bot_bottle.errors import (
    CorruptDatabase,
    MigrationDrift,
    MigrationError,
    MigrationFilesError,
    SchemaTooNew,
)
from bot_bottle.schema import backups, migrate
from tests.helpers.support import MIGRATIONS, TempDirTest, digest, schema_of, write_migration

# (up, down) checksums of each shipped migration, as released.
RELEASED_SHA256 = {
    1: ("db3b99c57df27d9404122a421be7d5388ebb51888492d86e50e03a069ed5bb8f",
        "e046a5be41500db266b736c6426bac04d6a99ab4c2e8970d36cd1e0df102707c"),
    2: ("ede1fef7de5ac5cfcb78a9f9b3825029dba952a6c99077b31c92f79c51fffbfc",
        "9860ee99be96f2a80f7d73722a5d2514104167739f3f8bfcca081fb3594d32a1"),
    3: ("1bd2a29806f1d1019bb1d001b99f72421c263fb7d2719e75b9557383e20848b4",
        "9958c47b7bab3616f079be710dcac1b36f341ce71c0542decda30710702269d0"),
    4: ("dcd28ef24b7f31f5832ae029f0b1a38e373456e98db842662a9013a33fcd67a3",
        "0fc2bcd32322f726d3dcd6e448a2f5ef2591a501ca221ffe15f0a00e65d5b2c5"),
    5: ("1af0758ef9d6dad7328f1449d3b463c049c870d85bf6eed1d4bd2ce4992fef1e",
        "75332416c387a22739ae39c34a2d0f8a0cc8fd00e5a6ca7c595484ef58c4e18c"),
    6: ("e932007e184dc15b745109a14090434bcfcf78344d56ecf1a7b52df0a22f97b9",
        "053011a2731be65059e0c31dfe8eb284d16d5030964104b974ab09c87ec8d521"),
    7: ("e19ed891b6b8e175542e1a322fe296ba4cc3d1bf5174520e6022ebcf3f918d02",
        "6667b5607ba365effcfb2c282bd93417b56a3de006c029feb77cce39a4638467"),
}


class SplitStatementsTest(TempDirTest):
    def test_plain_statements(self) -> None:
        """Statements split at their semicolons, comments kept with the statement they precede."""
        self.assertEqual(
            migrate.split_statements("CREATE TABLE a (x);\n-- note\nCREATE TABLE b (y);"),
            ["CREATE TABLE a (x);", "-- note\nCREATE TABLE b (y);"],
        )

    def test_semicolons_in_strings_comments_and_triggers(self) -> None:
        """A ';' inside a string, a quoted name, a comment or a trigger body does not split."""
        sql = (
            "INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
            'CREATE TABLE "odd;name" ([x;y]);\n'
            "/* a ; comment */ SELECT 1;\n"
            "CREATE TRIGGER tr BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no; never'); SELECT 2; END;\n"
        )
        parts = migrate.split_statements(sql)
        self.assertEqual(len(parts), 4)
        self.assertTrue(parts[3].startswith("CREATE TRIGGER") and parts[3].endswith("END;"))

    def test_comment_only_text_has_no_statement(self) -> None:
        """Whitespace and comments alone are no statement."""
        self.assertEqual(migrate.split_statements("-- nothing\n/* here */\n  "), [])

    def test_incomplete_last_statement(self) -> None:
        """A statement without its ';' is an error, not silently dropped."""
        with self.assertRaisesRegex(MigrationFilesError, "not complete"):
            migrate.split_statements("CREATE TABLE a (x);\nCREATE TABLE b (y)")

    def test_shipped_checksums_are_as_released(self) -> None:
        """Known answers: the checksums every existing database records for the shipped migrations.

        A change to how statements are split or normalized that moved one of
        these would make every user's database report drift.
        """
        found = {m.version: (m.up_sha256, m.down_sha256) for m in migrate.discover()}
        self.assertEqual({v: found[v] for v in RELEASED_SHA256}, RELEASED_SHA256)

    def test_unclosed_quotes_cost_linear_time(self) -> None:
        """A long unclosed string of doubled quotes is refused, not backtracked over for ever."""
        for text in ("SELECT '" + "a''" * 50_000, 'SELECT "' + 'a""' * 50_000, "SELECT `" + "a``" * 50_000):
            with self.subTest(text[:8]), self.assertRaisesRegex(MigrationFilesError, "never closed"):
                migrate.split_statements(text)

    def test_unclosed_quote_and_comment(self) -> None:
        """Unclosed strings and block comments are reported."""
        with self.assertRaisesRegex(MigrationFilesError, "never closed"):
            migrate.split_statements("SELECT 'abc;")
        with self.assertRaisesRegex(MigrationFilesError, "never closed"):
            migrate.split_statements("SELECT 1; /* abc")


class DiscoverTest(TempDirTest):
    def folder(self) -> Path:
        return self.tmp / "m"

    def good(self, version: int, name: str = "step") -> None:
        write_migration(self.folder(), version, name, f"CREATE TABLE t{version} (x);", f"DROP TABLE t{version};")

    def test_the_shipped_migrations_are_valid(self) -> None:
        """The repository's own migrations pass every check and start with the history table."""
        found = migrate.discover()
        self.assertGreaterEqual(len(found), 3)
        self.assertEqual([m.version for m in found], list(range(1, len(found) + 1)))
        self.assertEqual(found[0].name, "schema_history")
        self.assertEqual(migrate.migrations_dir(), MIGRATIONS)

    def test_gap_in_numbering(self) -> None:
        """0001 then 0003: the missing 0002 is named."""
        self.good(1)
        self.good(3)
        with self.assertRaisesRegex(MigrationFilesError, "0002 is missing"):
            migrate.discover(self.folder())

    def test_missing_down_file(self) -> None:
        """An up without its down is refused, naming the missing file."""
        self.good(1)
        (self.folder() / "0001_step.down.sql").unlink()
        with self.assertRaisesRegex(MigrationFilesError, r"0001_step\.down\.sql"):
            migrate.discover(self.folder())

    def test_missing_up_file(self) -> None:
        """A down without its up is refused."""
        self.good(1)
        (self.folder() / "0001_step.up.sql").unlink()
        with self.assertRaisesRegex(MigrationFilesError, "no up file"):
            migrate.discover(self.folder())

    def test_duplicate_number(self) -> None:
        """Two migrations numbered alike are refused."""
        self.good(1, "one")
        self.good(1, "other")
        with self.assertRaisesRegex(MigrationFilesError, "two names"):
            migrate.discover(self.folder())

    def test_bad_names(self) -> None:
        """Files not named NNNN_name.(up|down).sql, and 0000, are refused."""
        for bad in ("1_x.up.sql", "0001-x.up.sql", "0001_X.up.sql", "0001_x.sideways.sql", "0000_x.up.sql"):
            with self.subTest(bad=bad):
                shutil.rmtree(self.folder(), ignore_errors=True)
                self.folder().mkdir()
                (self.folder() / bad).write_text("SELECT 1;")
                with self.assertRaises(MigrationFilesError):
                    migrate.discover(self.folder())

    def test_empty_file(self) -> None:
        """A migration file with only comments is refused."""
        write_migration(self.folder(), 1, "empty", "-- nothing yet\n", "SELECT 1;")
        with self.assertRaisesRegex(MigrationFilesError, "no SQL statement"):
            migrate.discover(self.folder())

    def test_transaction_control_is_refused(self) -> None:
        """COMMIT, BEGIN and the runner's pragmas are not allowed inside a migration."""
        for statement in ("COMMIT;", "BEGIN;", "PRAGMA user_version = 9;", "PRAGMA foreign_keys=ON;", "VACUUM;"):
            with self.subTest(statement=statement):
                shutil.rmtree(self.folder(), ignore_errors=True)
                write_migration(self.folder(), 1, "x", f"CREATE TABLE a (x);\n{statement}", "DROP TABLE a;")
                with self.assertRaisesRegex(MigrationFilesError, "not allowed"):
                    migrate.discover(self.folder())

    def test_no_folder(self) -> None:
        """A missing migrations folder says the installation is incomplete."""
        with self.assertRaisesRegex(MigrationFilesError, "incomplete"):
            migrate.discover(self.tmp / "nowhere")


class RoundTripTest(TempDirTest):
    def test_every_migration_goes_up_and_down_cleanly(self) -> None:
        """Up step by step to head, down to 0 and up again: after each down(N) the schema equals N's."""
        known = migrate.discover()
        path = self.tmp / "rt.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        schemas = {0: schema_of(path)}
        for migration in known:
            migrate.upgrade(conn, migration.version, migrations=known)
            self.assertEqual(migrate.current_version(conn), migration.version)
            schemas[migration.version] = schema_of(path)
            self.assertNotEqual(schemas[migration.version], schemas[migration.version - 1],
                                f"{migration.label} changed nothing")
        for version in range(len(known) - 1, -1, -1):
            migrate.downgrade(conn, version, migrations=known)
            self.assertEqual(migrate.current_version(conn), version)
            self.assertEqual(schema_of(path), schemas[version], f"down to {version}")
        migrate.upgrade(conn, migrations=known)
        self.assertEqual(schema_of(path), schemas[len(known)])
        self.assertEqual(migrate.status(conn, known).drift, ())
        self.assertEqual(conn.execute("PRAGMA foreign_keys").fetchone()[0], 1, "foreign keys back on")


class AtomicityTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.folder = self.tmp / "m"
        shutil.copytree(MIGRATIONS, self.folder)
        self.head = len(migrate.discover(self.folder))
        self.path = self.tmp / "a.db"
        self.conn = connect(self.path)
        self.addCleanup(self.conn.close)
        migrate.upgrade(self.conn, migrations=migrate.discover(self.folder))

    def snapshot(self) -> tuple[object, ...]:
        history = self.conn.execute("SELECT * FROM schema_history ORDER BY version").fetchall()
        return (schema_of(self.path), migrate.current_version(self.conn), history)

    def test_failing_third_statement_leaves_previous_version(self) -> None:
        """A migration whose 3rd statement fails changes nothing; fixed, it applies."""
        version = self.head + 1
        up = "CREATE TABLE extra_a (x);\nCREATE TABLE extra_b (y);\nINSERT INTO no_such_table VALUES (1);\n"
        write_migration(self.folder, version, "broken", up, "DROP TABLE extra_b;\nDROP TABLE extra_a;")
        before = self.snapshot()
        with self.assertRaisesRegex(MigrationError, "statement 3") as caught:
            migrate.upgrade(self.conn, migrations=migrate.discover(self.folder))
        self.assertIn(f"still at version {self.head}", str(caught.exception))
        self.assertEqual(self.snapshot(), before)
        self.assertFalse(self.conn.in_transaction)
        (self.folder / f"{version:04d}_broken.up.sql").write_text(
            up.replace("INSERT INTO no_such_table VALUES (1);", "INSERT INTO extra_a VALUES (1);")
        )
        result = migrate.upgrade(self.conn, migrations=migrate.discover(self.folder))
        self.assertEqual(result.versions, (version,))
        self.assertEqual(migrate.current_version(self.conn), version)

    def test_foreign_key_violation_rolls_back(self) -> None:
        """A migration that leaves a dangling foreign key is rolled back by the check before COMMIT."""
        version = self.head + 1
        up = (
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);\n"
            "CREATE TABLE child (pid INTEGER REFERENCES parent (id));\n"
            "INSERT INTO child VALUES (42);\n"
        )
        write_migration(self.folder, version, "dangling", up, "DROP TABLE child;\nDROP TABLE parent;")
        before = self.snapshot()
        with self.assertRaisesRegex(MigrationError, "foreign-key"):
            migrate.upgrade(self.conn, migrations=migrate.discover(self.folder))
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.conn.execute("PRAGMA foreign_keys").fetchone()[0], 1)

    def test_table_rebuild_with_foreign_keys_off(self) -> None:
        """The 12-step ALTER (rebuild a referenced table) works because the runner turns foreign keys off."""
        version = self.head + 1
        write_migration(
            self.folder, version, "parent",
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, v TEXT);\n"
            "CREATE TABLE child (pid INTEGER REFERENCES parent (id));\n"
            "INSERT INTO parent VALUES (1, 'a');\nINSERT INTO child VALUES (1);",
            "DROP TABLE child;\nDROP TABLE parent;",
        )
        write_migration(
            self.folder, version + 1, "rebuild_parent",
            "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, v TEXT NOT NULL DEFAULT '');\n"
            "INSERT INTO parent_new SELECT id, v FROM parent;\n"
            "DROP TABLE parent;\n"
            "ALTER TABLE parent_new RENAME TO parent;",
            "CREATE TABLE parent_old (id INTEGER PRIMARY KEY, v TEXT);\n"
            "INSERT INTO parent_old SELECT id, v FROM parent;\n"
            "DROP TABLE parent;\n"
            "ALTER TABLE parent_old RENAME TO parent;",
        )
        known = migrate.discover(self.folder)
        migrate.upgrade(self.conn, migrations=known)
        self.assertEqual(self.conn.execute("SELECT pid FROM child").fetchall(), [(1,)])
        migrate.downgrade(self.conn, self.head, migrations=known)
        self.assertEqual(migrate.current_version(self.conn), self.head)


class RefusalTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.folder = self.tmp / "m"
        shutil.copytree(MIGRATIONS, self.folder)
        self.path = self.tmp / "r.db"
        conn = connect(self.path)
        migrate.upgrade(conn, migrations=migrate.discover(self.folder))
        conn.close()

    def test_drift_is_reported_and_refused(self) -> None:
        """An applied migration whose SQL was edited later shows as drift; upgrade refuses and writes nothing."""
        up = self.folder / "0002_supervise_queue.up.sql"
        up.write_text(up.read_text() + "\nCREATE INDEX an_innocent_looking_edit ON proposals (tool);\n")
        before = digest(self.path)
        conn = connect(self.path)
        self.addCleanup(conn.close)
        state = migrate.status(conn, migrate.discover(self.folder))
        self.assertEqual([d.version for d in state.drift], [2])
        self.assertIn("edited", state.drift[0].problem)
        with self.assertRaisesRegex(MigrationDrift, "0002_supervise_queue"):
            migrate.upgrade(conn, migrations=migrate.discover(self.folder))
        self.assertEqual(digest(self.path), before)

    def test_newer_than_code_is_refused(self) -> None:
        """A database past the code's head is refused with both versions named; nothing written."""
        fewer = migrate.discover(self.folder)[:2]
        before = digest(self.path)
        conn = connect(self.path)
        self.addCleanup(conn.close)
        with self.assertRaises(SchemaTooNew) as caught:
            migrate.upgrade(conn, migrations=fewer)
        self.assertIn(f"version {len(migrate.discover(self.folder))}", str(caught.exception))
        self.assertIn("up to 2", str(caught.exception))
        with self.assertRaises(SchemaTooNew):
            migrate.downgrade(conn, 0, migrations=fewer)
        self.assertEqual(digest(self.path), before)

    def test_bad_targets(self) -> None:
        """Upgrading past head, or 'upgrading' downwards, is refused with the way out."""
        conn = connect(self.path)
        self.addCleanup(conn.close)
        known = migrate.discover(self.folder)
        with self.assertRaisesRegex(MigrationError, f"from 0 to {len(known)}"):
            migrate.upgrade(conn, len(known) + 1, migrations=known)
        with self.assertRaisesRegex(MigrationError, "downgrade --to 1"):
            migrate.upgrade(conn, 1, migrations=known)
        with self.assertRaisesRegex(MigrationError, f"at version {len(known)}"):
            migrate.downgrade(conn, len(known) + 1, migrations=known)

    def test_corrupt_database_is_not_migrated(self) -> None:
        """An existing database that fails quick_check is not touched by a migration."""
        conn = connect(self.path)
        conn.execute("PRAGMA user_version = 1")  # pretend 2 and 3 are pending
        conn.execute("DELETE FROM schema_history WHERE version > 1")
        conn.close()
        page_size = 4096
        data = bytearray(self.path.read_bytes())
        # Scribble over the third page (a queue table's b-tree), leaving the header,
        # the schema and the history (pages 1 and 2) readable.
        data[2 * page_size : 2 * page_size + 64] = b"\xff" * 64
        self.path.write_bytes(bytes(data))
        before = digest(self.path)
        conn = connect(self.path)
        self.addCleanup(conn.close)
        with self.assertRaisesRegex(CorruptDatabase, "integrity check"):
            migrate.upgrade(conn, migrations=migrate.discover(self.folder))
        self.assertEqual(digest(self.path), before)


class BackupTest(TempDirTest):
    def test_backup_before_migrating_existing_data(self) -> None:
        """Migrating a non-empty database first copies it beside itself, named with its version, 0600."""
        known = migrate.discover()
        path = self.tmp / "b.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        first = migrate.upgrade(conn, 1, migrations=known)
        self.assertIsNone(first.backup, "an empty database needs no backup")
        result = migrate.upgrade(conn, migrations=known)
        assert result.backup is not None
        self.assertEqual(result.backup.parent, path.parent)
        self.assertIn(".v0001.", result.backup.name)
        self.assertEqual(stat.S_IMODE(result.backup.stat().st_mode), 0o600)
        copy = sqlite3.connect(result.backup)
        self.addCleanup(copy.close)
        self.assertEqual(copy.execute("PRAGMA user_version").fetchone()[0], 1)

    def test_only_the_last_few_are_kept(self) -> None:
        """Repeated migrations keep only the newest BACKUPS_KEPT pre-migration backups."""
        known = migrate.discover()
        path = self.tmp / "k.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        migrate.upgrade(conn, migrations=known)
        made = []
        for _ in range(migrate.BACKUPS_KEPT + 2):
            made.append(migrate.downgrade(conn, 1, migrations=known).backup)
            made.append(migrate.upgrade(conn, migrations=known).backup)
        left = sorted(p.name for p in path.parent.glob("k.db.v*.bak"))
        self.assertEqual(len(left), migrate.BACKUPS_KEPT)
        self.assertEqual(left, sorted(p.name for p in made[-migrate.BACKUPS_KEPT :] if p))

    def test_backup_never_overwrites(self) -> None:
        """backup_to refuses an existing destination and the database itself."""
        path = self.tmp / "o.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        existing = self.tmp / "taken.bak"
        existing.write_text("mine")
        with self.assertRaisesRegex(migrate.BackupError, "already exists"):
            migrate.backup_to(conn, existing)
        self.assertEqual(existing.read_text(), "mine")
        with self.assertRaises(migrate.BackupError):
            migrate.backup_to(conn, path)


    def test_a_stamp_another_process_took_gives_way_to_the_next(self) -> None:
        """BROKE before (.ci/run, 8 processes opening a fresh file at once): two stamped their backups in the same
        microsecond, and the second's open failed ("... already exists; choose another name for the backup").
        The backup goes under the next stamp; the other process's file is left as it was."""
        path = self.tmp / "s.db"
        conn = connect(path)
        self.addCleanup(conn.close)
        migrate.upgrade(conn, 1, migrations=migrate.discover())
        taken = self.tmp / "s.db.v0001.20261207T000000000001Z.bak"
        taken.write_text("the other process's")
        stamps = iter(["20261207T000000000001Z", "20261207T000000000001Z", "20261207T000000000002Z"])
        with mock.patch.object(backups, "_utc_stamp", lambda: next(stamps)):
            made = migrate.backup_before_migration(conn, 1)
        assert made is not None
        self.assertEqual(made.name, "s.db.v0001.20261207T000000000002Z.bak")
        self.assertEqual(taken.read_text(), "the other process's")

class StatementChecksumTest(TempDirTest):
    """Checksums cover a migration's statements, not its comments; old whole-file checksums migrate."""

    def setUp(self) -> None:
        super().setUp()
        self.folder = self.tmp / "migrations"
        shutil.copytree(MIGRATIONS, self.folder)
        self.path = self.tmp / "c.db"
        open_db(self.path).close()

    def status(self) -> migrate.Status:
        conn = connect(self.path)
        self.addCleanup(conn.close)
        return migrate.status(conn, migrate.discover(self.folder))

    def test_a_comment_edit_is_not_drift_and_a_statement_edit_is(self) -> None:
        """Rewording a comment (or the layout) keeps the checksum; changing SQL is drift."""
        up = self.folder / "0003_audit_log.up.sql"
        up.write_text("-- a reworded comment\n" + up.read_text().replace("    seq ", "    seq\t\t", 1))
        self.assertEqual(self.status().drift, ())
        up.write_text(up.read_text().replace("'audit_log is append-only'", "'audit_log is read-only'", 1))
        self.assertEqual([d.version for d in self.status().drift], [3])

    def test_legacy_whole_file_checksums_are_accepted_then_rewritten(self) -> None:
        """A history written by the runner before statement checksums is not drift, and opening rewrites it."""
        raw = sqlite3.connect(self.path, isolation_level=None)
        for version, legacy in migrate.LEGACY_FILE_SHA256.items():
            raw.execute("UPDATE schema_history SET sha256 = ? WHERE version = ?", (legacy, version))
        raw.close()
        state = self.status()
        self.assertEqual((state.drift, state.legacy_checksums), ((), (1, 2, 3)))
        open_db(self.path).close()
        known = migrate.discover()
        conn = sqlite3.connect(self.path)
        self.addCleanup(conn.close)
        stored = dict(conn.execute("SELECT version, sha256 FROM schema_history"))
        self.assertEqual(stored, {m.version: m.up_sha256 for m in known})
