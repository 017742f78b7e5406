"""What a sidecar writes into sqlite_master that the schema guard read otherwise than SQLite (hostile review 62).

SQLite reads each schema row's type, name and table as C strings, to their
first NUL, and walks no freelist in ``dbstat``; the guard compared the rows
as SQL compares text and trusted ``dbstat`` alone with which pages a DROP
frees. Each test is the sidecar's change, made with its own connection, and
then what the operator does with the real command line.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.errors import SchemaTooNew
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.attacks.test_foreign_schema import REFUSE_REVOCATIONS, SidecarSchemaCase


class SchemaGuardEdgesTest(SidecarSchemaCase):
    def sidecar(self, *statements: str, bumped: bool = True) -> None:
        """Statements a sidecar runs on the host's file with a connection of its own, ``writable_schema`` on."""
        super().sidecar("PRAGMA writable_schema = ON", *statements, "PRAGMA writable_schema = OFF", bumped=bumped)

    def revoke(self) -> str:
        """'grants revoke' as the operator runs it, which must succeed; what it said on stderr."""
        done = self.run_cli("grants", "revoke", self.grant_id[:8], "--reason", "no pastes")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIsNotNone(self.grants.find(self.grant_id).revoked_at)
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        return done.stderr

    def assert_sound(self) -> None:
        checked = self.run_cli("db", "check")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_a_trigger_whose_type_ends_in_a_nul_is_dropped(self) -> None:
        """BROKE before: a row typed 'trigger' || char(0) || 'x' is a trigger to SQLite (it reads the type to the
        NUL) but none to the guard's ``lower(type) IN (...)``: 'grants revoke' failed with "nope", recording
        nothing."""
        self.sidecar("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('trigger' || char(0) "
                     "|| 'x', 'nope', 'audit_log', 0, '" + REFUSE_REVOCATIONS.replace("'", "''") + "')")
        self.assertIn('trigger "nope"', self.revoke())
        self.assert_sound()

    def test_a_view_typed_with_a_nul_under_a_migration_tables_name_is_taken_out(self) -> None:
        """BROKE before: review 61's rules table renamed and a view put under its name, the view's row typed
        'view' || char(0): the guard looked for ``lower(type) = 'view'``, found none, could not make the table
        again, and 'rules add --reject' failed ("cannot modify rules because it is a view")."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("ALTER TABLE rules RENAME TO theirs")
        conn.execute("CREATE VIEW rules AS SELECT * FROM theirs")
        conn.close()
        self.sidecar("UPDATE sqlite_master SET type = 'view' || char(0) WHERE name = 'rules'")
        done = self.run_cli("rules", "add", "--reject", "--bottle", "web-1", "--host", "evil.example", "--notes", "no")
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_an_index_rooted_on_a_free_page_is_taken_out_by_its_row(self) -> None:
        """BROKE before: the sidecar freed an index of its own with ``secure_delete`` off (its pages keep their
        content) and wrote an index row rooted on one of them. ``dbstat`` walks no freelist, so the page read as
        the row's own; the guard's DROP INDEX freed it again, SQLite found the file malformed, and every host
        write failed (no revocation recorded), where before only writes to the indexed table were touched."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("CREATE TABLE junk (x)")
        conn.execute("CREATE INDEX junk_x ON junk (x)")
        conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
                     "INSERT INTO junk SELECT randomblob(100) FROM n")
        leaf = conn.execute("SELECT pageno FROM dbstat WHERE name = 'junk_x' AND pagetype = 'leaf'").fetchone()[0]
        conn.execute("DROP TABLE junk")
        conn.close()
        self.sidecar("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('index', 'evil', "
                     f"'settings', {int(leaf)}, 'CREATE INDEX evil ON settings (name)')")
        self.assertIn('index "evil"', self.revoke())
        self.assert_sound()
        self.approve("web-1", {"host": "later.example"})
        self.assert_sound()

    def test_two_tables_of_the_sidecars_keyed_one_to_the_other_are_both_dropped(self) -> None:
        """BROKE before: two plain CREATE TABLEs and a row in each (no ``writable_schema``): the guard drops a
        sidecar's table that declares a foreign key, and SQLite's DROP TABLE first deletes its rows, checking
        the key of the other table, which held a row referencing one: 'grants revoke' failed with "FOREIGN KEY
        constraint failed", as every host write did, recording nothing."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("CREATE TABLE a_parent (id INTEGER PRIMARY KEY, y REFERENCES settings (name))")
        conn.execute("CREATE TABLE b_child (x REFERENCES a_parent (id))")
        conn.execute("INSERT INTO a_parent (id) VALUES (1)")
        conn.execute("INSERT INTO b_child VALUES (1)")
        conn.close()
        said = self.revoke()
        self.assertIn('table "a_parent", table "b_child"', said)
        self.assert_sound()
        self.approve("web-1", {"host": "later.example"})

    def test_a_version_set_back_with_its_history_does_not_have_the_open_drop_the_audit_log(self) -> None:
        """BROKE before: two plain statements, 'PRAGMA user_version = 2' and the history rows past 2 deleted, and
        the next command's open migrated from 2 under the guard, which held the file to version 2: the audit log
        declares a foreign key and migration 2 makes no such table, so the guard dropped it, every entry with
        it, and migration 3 made it again, empty ('audit verify' lost the log). Now the migration fails on the
        table that is there, as it did before the guard, and the entries stay."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        entries = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        conn.execute("PRAGMA user_version = 2")
        conn.execute("DELETE FROM schema_history WHERE version > 2")
        conn.close()
        done = self.run_cli("audit", "verify")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("table audit_log already exists", done.stderr)
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            self.assertEqual(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0], entries)
        finally:
            conn.close()

    def test_a_version_set_past_the_code_does_not_let_a_trigger_run_in_a_process_that_stays_open(self) -> None:
        """BROKE before: the guard let a file newer than the code through unlooked at (the open refuses one), so
        a sidecar's 'PRAGMA user_version = 99' beside its trigger had the trigger run in every write of a process
        that stays open (dashboard, relay, TUI): the revocation failed with "nope". No migration history
        stands behind that version: the file is held to the migrations the code knows."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "first")  # the set found good
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("PRAGMA user_version = 99")
        conn.execute(REFUSE_REVOCATIONS)
        conn.close()
        self.grants.revoke(self.grant_id[:8], "no pastes", revoked_by="operator")
        self.assertIsNotNone(self.grants.find(self.grant_id).revoked_at)

    def test_a_version_a_newer_history_stands_behind_is_refused_in_a_process_that_stays_open(self) -> None:
        """Where the history records a migration past the code's (a newer bot-bottle's, or one the sidecar wrote
        in too), the write is refused, saying why, as the open would; nothing of the sidecar's runs."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "first")
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("INSERT INTO schema_history (version, name, sha256, applied_at) SELECT 99, 'later', sha256, "
                     "applied_at FROM schema_history WHERE version = 1")
        conn.execute("PRAGMA user_version = 99")
        conn.execute(REFUSE_REVOCATIONS)
        conn.close()
        with self.assertRaisesRegex(SchemaTooNew, "at schema version 99, but this bot-bottle knows only up to"):
            self.grants.revoke(self.grant_id[:8], "no pastes", revoked_by="operator")

    def test_a_view_under_a_migration_tables_name_goes_with_its_instead_of_trigger(self) -> None:
        """BROKE before: review 61's view under the rules table's name, with an INSTEAD OF trigger on it. The guard
        took the view out by its row and left the trigger to its later look, but the connection read the schema
        again in between, found a trigger on a view that was gone, and SQLite refused the whole schema: every
        host write failed ("malformed database schema (v_ins) - no such table: main.rules"), told to restore a
        backup, where before the guard only writes to rules were touched."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("ALTER TABLE rules RENAME TO theirs")
        conn.execute("CREATE VIEW rules AS SELECT * FROM theirs")
        conn.execute("CREATE TRIGGER v_ins INSTEAD OF INSERT ON rules BEGIN SELECT 1; END")
        conn.close()
        self.assertIn('table "rules"', self.revoke())
        done = self.run_cli("rules", "add", "--reject", "--bottle", "web-1", "--host", "evil.example", "--notes", "no")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(len(self.rules_in_file()), 1)
        self.assert_sound()

    def test_an_index_on_a_virtual_column_written_into_the_logs_create_goes_before_the_write_back(self) -> None:
        """BROKE before: review 61's CHECK and generated VIRTUAL column written into the audit log's CREATE, and
        then a plain CREATE INDEX on that column. The guard wrote the migration's CREATE back first, read the
        schema again with the index still there, on a column gone, and SQLite refused the whole schema: every
        host write failed ("malformed database schema (ix) - no such column: v"), told to restore a backup."""
        self.sidecar("UPDATE sqlite_master SET sql = replace(sql, 'details     TEXT NOT NULL', "
                     "'v TEXT GENERATED ALWAYS AS (1) VIRTUAL, details     TEXT NOT NULL "
                     "CHECK (action <> ''grant-revoked'')') WHERE type = 'table' AND name = 'audit_log'")
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("CREATE INDEX ix ON audit_log (v)")
        conn.close()
        said = self.revoke()
        self.assertIn('index "ix"', said)
        self.assertIn('its rows kept): table "audit_log"', said)
        self.cli("audit", "verify")
        self.assert_sound()

    def test_a_keyed_tables_constraint_index_row_with_a_lying_table_goes_with_it(self) -> None:
        """BROKE before: a table of the sidecar's declaring a foreign key, with a UNIQUE column, its constraint
        index's row (no CREATE: SQLite binds it by name) given tbl_name 'settings'. The guard's DROP TABLE freed
        the index with the table but deleted rows by tbl_name, leaving that one bound to nothing: the revocation
        went through, and every later command failed ("orphan index", told to restore a backup) on a file whose
        integrity check had been ok."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("CREATE TABLE evil (a UNIQUE, b REFERENCES settings (name))")
        conn.close()
        self.sidecar("UPDATE sqlite_master SET tbl_name = 'settings' WHERE name = 'sqlite_autoindex_evil_1'")
        self.assertIn('table "evil"', self.revoke())
        self.assert_sound()

    def test_a_migration_tables_constraint_index_row_named_under_a_keyed_table_stays(self) -> None:
        """BROKE before, the other lie: the settings table's constraint index row given the sidecar's keyed table
        as its tbl_name. The guard's DROP TABLE deleted it with the sidecar's table, leaving the settings key
        without its index, and 'config set' failed ("database disk image is malformed", told to restore a
        backup). The table goes by its rows instead, each constraint row by its binding."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("CREATE TABLE evil (b REFERENCES settings (name))")
        conn.close()
        self.sidecar("UPDATE sqlite_master SET tbl_name = 'evil' WHERE name = 'sqlite_autoindex_settings_1'")
        self.assertIn('table "evil"', self.revoke())
        done = self.run_cli("config", "set", "pending-ttl", "2d")
        self.assertEqual(done.returncode, 0, done.stderr)
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            self.assertEqual(conn.execute("SELECT tbl_name FROM sqlite_master WHERE name = "
                                          "'sqlite_autoindex_settings_1'").fetchall(), [("evil",)])
            self.assertEqual(conn.execute("SELECT value FROM settings").fetchall(), [("172800",)])
        finally:
            conn.close()

    def test_a_keyed_table_goes_after_a_cascade_written_into_a_migration_tables_create(self) -> None:
        """The sidecar's keyed table holds the grants' subject hashes, and the grants table's CREATE is given
        'REFERENCES evil (id) ON DELETE CASCADE'. Dropped before the CREATE was written back (as this review's
        first reordering of the guard did), the DROP's delete cascaded into the grants, refused by their
        no-delete trigger, and every host write failed; the keyed tables go after the write-back."""
        other = self.approve("web-1", {"host": "other.example"})
        conn = sqlite3.connect(self.db, isolation_level=None)
        conn.execute("CREATE TABLE evil (id TEXT PRIMARY KEY, x REFERENCES settings (name))")
        conn.execute("INSERT INTO evil (id) SELECT subject_sha256 FROM grants")
        conn.close()
        self.sidecar("UPDATE sqlite_master SET sql = replace(sql, 'subject_sha256 TEXT NOT NULL CHECK', "
                     "'subject_sha256 TEXT NOT NULL REFERENCES evil (id) ON DELETE CASCADE CHECK') "
                     "WHERE name = 'grants'")
        said = self.revoke()
        self.assertIn('table "evil"', said)
        self.assertIsNotNone(self.grants.find(other))
        self.assert_sound()

    def test_a_keyed_table_a_rebuilt_migration_table_cascades_from_goes_by_its_rows(self) -> None:
        """BROKE before: the sidecar rebuilt the grants table with a column 'REFERENCES evil (id) ON DELETE
        CASCADE' (other storage), every grant pointing at one row of its keyed table evil. The guard's DROP
        TABLE evil deleted that row first, the delete cascaded, and every grant row the host had written was
        gone. A keyed table another table references goes by its rows, deleting none (the grants table is then
        rebuilt as its migration made it, every row copied)."""
        self.approve("web-1", {"host": "other.example"})
        conn = sqlite3.connect(self.db, isolation_level=None)
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'grants'").fetchone()[0]
        start = sql.index("(") + 1
        conn.execute("CREATE TABLE evil (id TEXT PRIMARY KEY, x REFERENCES settings (name))")
        conn.execute("INSERT INTO evil (id) VALUES ('k')")
        conn.execute(sql[:start].replace("grants", "g2") + " z TEXT REFERENCES evil (id) ON DELETE CASCADE, "
                     + sql[start:])
        conn.execute("INSERT INTO g2 SELECT 'k', * FROM grants")
        conn.execute("DROP TABLE grants")
        conn.execute("ALTER TABLE g2 RENAME TO grants")
        conn.close()
        self.assertIn('table "evil"', self.revoke())
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            self.assertEqual(conn.execute("SELECT count(*) FROM grants").fetchone()[0], 2)
        finally:
            conn.close()

    def rules_in_file(self) -> list[object]:
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            return conn.execute("SELECT id FROM rules").fetchall()
        finally:
            conn.close()

    def test_a_trigger_under_a_migrations_name_hidden_behind_a_repeat_of_it_is_taken_out(self) -> None:
        """Found by hostile review 65: the audit log's append-only trigger replaced by one refusing revocations,
        and after it a second row 'CREATE TRIGGER IF NOT EXISTS audit_log_no_update ...' (SQLite skips it: the
        name is taken). The guard went by the last row of each name: it took out the second, could not make the
        migration's trigger again ("already exists"), and the first ran inside the revocation ("nope"), the
        guard's work rolled back with it, at every attempt. Rows repeating a name go first."""
        super().sidecar("DROP TRIGGER audit_log_no_update",
                        REFUSE_REVOCATIONS.replace("nope BEFORE", "audit_log_no_update BEFORE"))
        self.sidecar("INSERT INTO sqlite_master VALUES ('trigger', 'audit_log_no_update', 'audit_log', 0, "
                     "'CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE DELETE ON audit_log "
                     "BEGIN SELECT 1; END')")
        said = self.revoke()
        self.assertIn('which SQLite skips (a process with the database file wrote them to hide what is under that '
                      'name): trigger "audit_log_no_update"', said)
        self.assertEqual(self.guarded(), self.made())
        self.assert_sound()

    def test_a_repeated_row_of_a_migration_tables_name_does_not_leave_the_file_unloadable(self) -> None:
        """Found by hostile review 65: a second row 'CREATE TABLE IF NOT EXISTS grants (x)' (SQLite skips it). The
        guard read it as the grants table's CREATE changed, and wrote the migration's over it: two rows making
        the grants table, SQLite refused the schema ("table grants already exists"), and every host write
        failed, the operator told to restore a backup. The repeat is taken out; every grant stays."""
        grants = self.query("SELECT * FROM grants")
        self.sidecar("INSERT INTO sqlite_master VALUES ('table', 'grants', 'grants', 0, "
                     "'CREATE TABLE IF NOT EXISTS grants (x)')")
        self.assertIn('table "grants"', self.revoke())
        self.assertEqual(len(self.query("SELECT * FROM grants")), len(grants))
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master WHERE name = 'grants'"), [(1,)])
        self.assert_sound()
