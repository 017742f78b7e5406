"""A sidecar on the mount changes the schema so that its code runs inside the host's writes (``schema.guard``).

Hostile review 60 left this open: a trigger a sidecar added to ``audit_log``
that refused ``grant-revoked`` entries made every revocation fail ("SQLite
error ...: nope"), so the grant stayed in force, with nothing pointing the
operator at the trigger. A trigger runs in whichever transaction fires it,
and the same file is every process's. Each test here is a sidecar's change
to the schema, made with its own connection as it can, and then what the
operator does with the real command line; before the guard, each of them
failed or was undone.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.db import Database
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.schema import guard, migrate
from bot_bottle.schema.guard import SchemaGuard
from tests.helpers.host_grants import HostGrantsCase

REFUSE_REVOCATIONS = ("CREATE TRIGGER nope BEFORE INSERT ON audit_log WHEN NEW.action = 'grant-revoked' "
                      "BEGIN SELECT RAISE(ABORT, 'nope'); END")


class SidecarSchemaCase(HostGrantsCase):
    """The host's file with web-1's grant for pastebin.com (``grant_id``), and a sidecar on the mount at it."""

    def setUp(self) -> None:
        super().setUp()
        self.grant_id = self.approve("web-1", {"host": "pastebin.com"})

    def sidecar(self, *statements: str, bumped: bool = False) -> None:
        """Statements a sidecar runs on the host's file with a connection of its own; ``bumped``: the schema's
        version moved on after them, as every connection then reads the schema again."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for sql in statements:
                conn.execute(sql)
            if bumped:
                version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
                conn.execute(f"PRAGMA schema_version = {version + 1}")
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """``sql``'s rows, read by a connection of the test's own."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def guarded(self) -> dict[tuple[str, str], str]:
        """The triggers and indexes in the file now, by (type, name)."""
        with Database(self.db, migrate_schema=False).read() as conn:
            return {(kind, name): " ".join(sql.split()) for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL")}

    def made(self) -> dict[tuple[str, str], str]:
        """The triggers and indexes the migrations make."""
        known = migrate.discover()
        return {key: " ".join(sql.split()) for key, sql in migrate.expected_schema(known, len(known)).items()
                if key[0] in guard.GUARDED_KINDS}

    def revoke(self, grant_id: str) -> str:
        """'grants revoke' as the operator runs it, which must succeed; what it said on stderr."""
        done = self.run_cli("grants", "revoke", grant_id[:8], "--reason", "no pastes")
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stderr

    def assert_revoked(self, grant_id: str, host: str = "pastebin.com") -> None:
        """Revoked in the file as in the log: no list shows it, and the bottle's sidecar refuses its route."""
        self.assertIsNotNone(self.grants.find(grant_id).revoked_at)
        listed = self.run_cli("grants", "list")
        self.assertNotIn(grant_id[:8], listed.stdout)
        self.assertEqual(listed.stderr, "")
        self.assertFalse(self.lets_through("web-1", host, "GET", "/"))


class ForeignSchemaTest(SidecarSchemaCase):

    def test_a_trigger_refusing_revocation_entries_is_dropped_and_the_revocation_recorded(self) -> None:
        """BROKE before the guard (review 60's leftover): 'grants revoke' failed with "nope", recording nothing,
        and the sidecar passed pastebin.com on."""
        self.sidecar(REFUSE_REVOCATIONS)
        said = self.revoke(self.grant_id)
        self.assertIn('dropped what no migration made', said)
        self.assertIn('trigger "nope"', said)
        self.assertEqual(said.count("\n"), 1, said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def test_a_trigger_undoing_the_revoked_mark_is_dropped_first(self) -> None:
        """BROKE before the guard: a trigger cleared the row's revoked mark as soon as the host set it, so the
        revocation committed with the row still in force for every sidecar that reads the file."""
        self.sidecar("CREATE TRIGGER unrevoke AFTER UPDATE OF revoked_at ON grants BEGIN "
                     "UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_seq = NULL, "
                     "revoke_reason = NULL WHERE id = NEW.id; END")
        self.revoke(self.grant_id)
        self.assert_revoked(self.grant_id)

    def test_a_partial_unique_index_refusing_a_second_revocation_is_dropped(self) -> None:
        """BROKE before the guard: an index a sidecar added let one 'grant-revoked' entry in and refused the next,
        so the first revocation went through and every later one failed ("UNIQUE constraint failed")."""
        other = self.approve("web-1", {"host": "paste.example"})
        self.sidecar("CREATE UNIQUE INDEX one_revocation ON audit_log (action) WHERE action = 'grant-revoked'")
        self.revoke(self.grant_id)
        self.revoke(other)
        self.assert_revoked(self.grant_id)
        self.assert_revoked(other, "paste.example")
        self.assertNotIn(("index", "one_revocation"), self.guarded())

    def test_a_migration_trigger_rewritten_is_made_again_as_its_migration_made_it(self) -> None:
        """The sidecar replaced audit_log_no_update (the log's append-only guard) by a trigger of the same name
        that refuses revocations: it is made again from its migration, and the revocation goes through."""
        self.sidecar("DROP TRIGGER audit_log_no_update",
                     "CREATE TRIGGER audit_log_no_update BEFORE INSERT ON audit_log "
                     "WHEN NEW.action = 'grant-revoked' BEGIN SELECT RAISE(ABORT, 'nope'); END")
        said = self.revoke(self.grant_id)
        self.assertIn('made again as its migration made it what a process with the database file had changed: '
                      'trigger "audit_log_no_update"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def test_a_trigger_hidden_under_a_reserved_name_with_the_version_kept_is_dropped(self) -> None:
        """Written into sqlite_master directly (``writable_schema``), under a name SQLite reserves for itself
        and which ``db check``'s comparison skips, with the schema's version left as it was: every new
        connection still loads it."""
        self.sidecar("PRAGMA writable_schema = ON",
                     "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('trigger', "
                     "'sqlite_nope', 'audit_log', 0, '" + REFUSE_REVOCATIONS.replace("nope BEFORE", "sqlite_nope "
                                                                                      "BEFORE").replace("'", "''")
                     + "')", "PRAGMA writable_schema = OFF")
        said = self.revoke(self.grant_id)
        self.assertIn('trigger "sqlite_nope"', said)
        self.assert_revoked(self.grant_id)

    def test_a_trigger_whose_type_is_spelled_in_capitals_is_dropped(self) -> None:
        """BROKE before (hostile review 61): SQLite loads a schema row whatever the case of its ``type`` (it
        compares the row with the CREATE case-blind), but the guard looked for ``type IN ('index', 'trigger')``
        as SQL compares text, by case: a row written as 'TRIGGER' ran inside every host write, and 'grants
        revoke' failed with "nope", recording nothing."""
        self.sidecar("PRAGMA writable_schema = ON",
                     "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('TRIGGER', 'nope', "
                     "'audit_log', 0, '" + REFUSE_REVOCATIONS.replace("'", "''") + "')",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")
        said = self.revoke(self.grant_id)
        self.assertIn('trigger "nope"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def renamed(self, kind: str, made: str, name: str) -> None:
        """The sidecar makes ``made`` (a CREATE of a trigger or index called ``name`` in lower case), then writes
        ``name`` into its sqlite_master row in capitals: SQLite loads a row whose name matches its CREATE
        case-blind, while its DROP deletes the row by the CREATE's name as SQL compares text."""
        self.sidecar(made, "PRAGMA writable_schema = ON",
                     f"UPDATE sqlite_master SET name = upper(name) WHERE type = '{kind}' AND name = '{name}'",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")

    def test_an_index_whose_row_names_it_in_capitals_is_dropped_leaving_the_file_sound(self) -> None:
        """BROKE before (hostile review 61): the guard's DROP freed the index's pages and left its row, which
        deleted nothing, pointing at them: the next process to open the file found it malformed, and every
        command failed ("database disk image is malformed") until a backup was restored."""
        self.renamed("index", "CREATE INDEX spare ON audit_log (action)", "spare")
        said = self.revoke(self.grant_id)
        self.assertIn('index "SPARE"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())
        checked = self.run_cli("db", "check")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_a_trigger_whose_row_names_it_in_capitals_stays_out_of_a_process_that_stays_open(self) -> None:
        """BROKE before (hostile review 61): the guard's DROP took the trigger out of the connection but left
        its row, which it then kept as the set found good; once the sidecar made the connection load the
        schema again (any change, here a table of its own), the trigger was back and the guard, finding the
        rows it had found good, let it run: the dashboard's revocation failed with "nope"."""
        self.renamed("trigger", REFUSE_REVOCATIONS, "nope")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "first")
        self.sidecar("CREATE TABLE mine (x)")
        self.grants.revoke(self.grant_id[:8], "no pastes", revoked_by="operator")
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def audit_log_details_written_as(self, column: str) -> None:
        """The sidecar writes ``column`` in place of the audit log's details column in its CREATE in sqlite_master
        (``writable_schema``, no rebuild); the operator revokes: the CREATE is written back as the migration made
        it, said, the grant revoked, and the log's entries kept whole."""
        self.sidecar("PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET sql = replace(sql, 'details     TEXT NOT NULL', "
                     f"'{column.replace(chr(39), chr(39) * 2)}') WHERE type = 'table' AND name = 'audit_log'",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")
        said = self.revoke(self.grant_id)
        self.assertIn('its rows kept): table "audit_log"', said)
        self.assert_revoked(self.grant_id)
        self.cli("audit", "verify")

    def test_a_check_written_into_the_audit_logs_create_is_written_back_out(self) -> None:
        """BROKE before (hostile review 61): the sidecar wrote ``CHECK (action <> 'grant-revoked')`` into the audit
        log's CREATE in sqlite_master (``writable_schema``, no rebuild, no trigger), and every revocation failed
        ("CHECK constraint failed"), as under review 60's trigger: the guard looked at no table. The CREATE is
        written back as the migration made it, the log's entries kept."""
        self.audit_log_details_written_as("details     TEXT NOT NULL CHECK (action <> 'grant-revoked')")
        checked = self.run_cli("db", "check")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_a_check_written_in_with_a_virtual_column_beside_it_is_written_back_out(self) -> None:
        """BROKE on review 61's first table check: a generated VIRTUAL column, which no row stores, added to the
        CREATE along with the CHECK made the columns differ from the migration's, and the table was left as
        rebuilt into other storage, the revocation refused."""
        self.audit_log_details_written_as("v TEXT GENERATED ALWAYS AS (1) VIRTUAL, details     TEXT NOT NULL "
                                          "CHECK (action <> 'grant-revoked')")

    def test_an_index_taking_the_next_migrations_name_is_dropped_before_the_migration(self) -> None:
        """BROKE before (hostile review 61): the guard held only ``Database.write``, not the migrations run at
        open. On a database one version behind (the host's bot-bottle upgraded since; here 'db downgrade'), the
        sidecar made an index under the name the next migration gives its own: the upgrade at open failed
        ("index audit_log_routes_revoked already exists"), and with it every command, 'grants revoke' too."""
        self.cli("db", "downgrade", "--to", "9")
        self.sidecar("CREATE UNIQUE INDEX audit_log_routes_revoked ON audit_log (action) "
                     "WHERE action = 'grant-revoked'")
        said = self.revoke(self.grant_id)
        self.assertIn('index "audit_log_routes_revoked"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def test_a_trigger_runs_in_no_migration(self) -> None:
        """BROKE before (hostile review 61): a trigger of the sidecar's ran inside a migration's transaction at
        open, as in the host's writes. Here one on the schema history that refuses the next version's row."""
        self.cli("db", "downgrade", "--to", "9")
        self.sidecar("CREATE TRIGGER nope BEFORE INSERT ON schema_history BEGIN SELECT RAISE(ABORT, 'nope'); END")
        said = self.revoke(self.grant_id)
        self.assertIn('trigger "nope"', said)
        self.assert_revoked(self.grant_id)

    def test_a_table_made_a_virtual_table_of_no_module_is_left_and_the_write_goes_on(self) -> None:
        """BROKE on review 61's first table check: relay_credentials' row rewritten as ``CREATE VIRTUAL TABLE ...
        USING nosuch`` made the look at its columns raise "no such module", and every host write with it, where
        only the writes to that table (none here) would fail."""
        self.sidecar("PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET rootpage = 0, sql = 'CREATE VIRTUAL TABLE relay_credentials USING "
                     "nosuch (x)' WHERE name = 'relay_credentials'",
                     "DELETE FROM sqlite_master WHERE tbl_name = 'relay_credentials' AND lower(type) <> 'table'",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")
        said = self.revoke(self.grant_id)
        self.assertIn('table "relay_credentials"', said)
        self.assert_revoked(self.grant_id)

    def forged(self, kind: str, name: str, table: str, sql: str, *, root_of: str = "audit_log") -> None:
        """A schema row the sidecar writes (``writable_schema``) for ``sql``, its pages said to be ``root_of``'s."""
        self.sidecar("PRAGMA writable_schema = ON",
                     f"INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) SELECT '{kind}', '{name}', "
                     f"'{table}', rootpage, '{sql}' FROM sqlite_master WHERE name = '{root_of}'",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")

    def assert_log_whole(self) -> None:
        """The audit log is there, whole, and the file sound."""
        self.cli("audit", "verify")
        checked = self.run_cli("db", "check")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.assertIn(self.grant_id[:8], self.cli("grants", "list", "--all"))

    def test_an_index_row_naming_the_audit_logs_pages_is_taken_out_without_freeing_them(self) -> None:
        """BROKE before (hostile review 61): the guard's DROP INDEX frees the pages the index's row names, and the
        sidecar's row (an index of the settings, which the host's reads and revocation never use) named the
        audit log's own: each host write freed the log's pages in its transaction and then failed on them
        ("database disk image is malformed"), rolled back, so no revocation or decision could be recorded, where
        without the guard the row harmed no write. The sidecar made the guard its instrument."""
        self.forged("index", "evil", "settings", "CREATE INDEX evil ON settings (set_by)")
        said = self.revoke(self.grant_id)
        self.assertIn('index "evil"', said)
        self.assert_revoked(self.grant_id)
        self.assert_log_whole()

    def test_a_migrations_index_rewritten_onto_the_audit_logs_pages_is_made_again_without_freeing_them(
            self) -> None:
        """BROKE before (hostile review 61): as above, under a migration's index name with other text, which the
        guard dropped to make again."""
        self.sidecar("DROP INDEX rules_live")
        self.forged("index", "rules_live", "rules", "CREATE INDEX rules_live ON rules (tool, queue_key, id)")
        said = self.revoke(self.grant_id)
        self.assertIn('index "rules_live"', said)
        self.assert_revoked(self.grant_id)
        self.assert_log_whole()
        self.assertEqual(self.guarded(), self.made())

    def test_a_table_row_naming_the_audit_logs_pages_is_taken_out_without_freeing_them(self) -> None:
        """BROKE before (hostile review 61): the same with a table of the sidecar's declaring a foreign key,
        which the guard dropped (DROP TABLE frees the pages too)."""
        self.forged("table", "evil", "evil", "CREATE TABLE evil (x TEXT REFERENCES audit_log (action))")
        said = self.revoke(self.grant_id)
        self.assertIn('table "evil"', said)
        self.assert_revoked(self.grant_id)
        self.assert_log_whole()

    def test_thirty_thousand_triggers_are_taken_out_in_a_moment(self) -> None:
        """BROKE before (hostile review 61): the sidecar wrote 30,000 trigger rows in 0.04 s (``writable_schema``);
        the guard's DROPs, each looking through sqlite_master, held the write lock for 20 s (100,000: minutes),
        every other host process waiting."""
        self.sidecar("PRAGMA writable_schema = ON",
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) "
                     "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) SELECT 'trigger', 't' || i, "
                     "'proposals', 0, 'CREATE TRIGGER t' || i || ' AFTER INSERT ON proposals BEGIN SELECT 1; END' "
                     "FROM n", "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")
        said = self.revoke(self.grant_id)  # (the time it takes is measured in docs/benchmarks.md, not asserted)
        self.assertIn("and 29995 more", said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())

    def test_a_view_put_under_the_rules_tables_name_is_taken_out_and_the_rejection_recorded(self) -> None:
        """BROKE before (hostile review 61): the sidecar renamed the rules table and made a view of that name,
        and the operator's standing rejection failed, recording nothing: "cannot modify rules because it is a
        view" before this review's guard of foreign-key tables, "no such table: main.theirs" after it (the
        renamed table, declaring keys, dropped; the view left). The table is made again, empty, and the
        rejection goes in."""
        self.sidecar("PRAGMA legacy_alter_table = ON", "ALTER TABLE rules RENAME TO theirs",
                     "CREATE VIEW rules AS SELECT * FROM theirs")
        done = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--notes", "no")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn('made again, empty, a table', done.stderr)
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        self.assertIn("pastebin.com", self.cli("rules", "list"))

    def test_a_trigger_runs_not_in_the_rewrite_of_old_checksums_at_open(self) -> None:
        """BROKE before (hostile review 61): the sidecar wrote migration 1's checksum from before statement
        checksums (a public constant) into the schema history, so the host's open rewrites it, in a transaction
        of its own, and a trigger refusing that UPDATE failed the open, and every command with it."""
        self.sidecar(f"UPDATE schema_history SET sha256 = '{migrate.LEGACY_FILE_SHA256[1]}' WHERE version = 1",
                     "CREATE TRIGGER nope BEFORE UPDATE ON schema_history BEGIN SELECT RAISE(ABORT, 'nope'); END")
        said = self.revoke(self.grant_id)
        self.assertIn('trigger "nope"', said)
        self.assert_revoked(self.grant_id)

    def test_a_table_of_the_sidecars_referencing_the_audit_log_is_dropped(self) -> None:
        """BROKE before (hostile review 61): one plain CREATE TABLE, a foreign key on a column of the audit log
        that is no key, and every host write to the log failed ("foreign key mismatch - "evil" referencing
        "audit_log""): no revocation, decision or rejection could be recorded. The guard looked at no table."""
        self.sidecar("CREATE TABLE evil (x TEXT REFERENCES audit_log (action))")
        said = self.revoke(self.grant_id)
        self.assertIn('table "evil"', said)
        self.assert_revoked(self.grant_id)
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "second")
        self.cli("proposals", "reject", proposal.id[:8], "--reason", "no")
        self.assertNotIn(("table", "evil"), self.tables())

    def test_a_table_of_the_sidecars_with_a_key_of_its_own_is_dropped_whole(self) -> None:
        """The same table with a TEXT PRIMARY KEY (a constraint index, no CREATE of its own) and rows: taken out
        by its schema rows, as before, its pages and its index's were left unused, and the next migration's
        integrity check refused the file ("Page 14 is never used"). Its pages are its and its index's alone,
        so it is dropped, and the file stays whole."""
        self.sidecar("CREATE TABLE evil (id TEXT PRIMARY KEY, x TEXT REFERENCES audit_log (action))",
                     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                     "INSERT INTO evil (id) SELECT printf('%040d', i) FROM n")
        said = self.revoke(self.grant_id)
        self.assertIn('table "evil"', said)
        self.assert_revoked(self.grant_id)
        with Database(self.db, migrate_schema=False).read() as conn:
            self.assertEqual(conn.execute("PRAGMA quick_check").fetchall(), [("ok",)])
        self.assertEqual(self.run_cli("db", "check").returncode, 0)

    def test_a_table_under_a_reserved_name_referencing_the_audit_log_is_taken_out(self) -> None:
        """The same table written as ``sqlite_evil`` (``writable_schema``): SQLite refuses to DROP a name it
        reserves, so its schema rows are deleted instead, and the file stays readable for the next process."""
        self.sidecar("CREATE TABLE evil (x TEXT)", "PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET name = 'sqlite_evil', tbl_name = 'sqlite_evil', "
                     "sql = 'CREATE TABLE sqlite_evil (x TEXT REFERENCES audit_log (action))' WHERE name = 'evil'",
                     "PRAGMA writable_schema = OFF", "PRAGMA schema_version = 9999")
        said = self.revoke(self.grant_id)
        self.assertIn('table "sqlite_evil"', said)
        self.assert_revoked(self.grant_id)
        self.assertNotIn(("table", "sqlite_evil"), self.tables())

    def tables(self) -> set[tuple[str, str]]:
        """The tables in the file now, by (type, name)."""
        with Database(self.db, migrate_schema=False).read() as conn:
            return {(kind, name) for kind, name in conn.execute(
                "SELECT lower(type), name FROM sqlite_master WHERE lower(type) = 'table'")}

    def test_the_schema_version_set_back_does_not_hide_a_trigger_from_a_process_that_stays_open(self) -> None:
        """The dashboard and the relay keep one connection open. The sidecar added a trigger after that
        connection's last write, let it load the schema with a read, and set the schema's version back to
        the number it had: a guard that looked only when the number moved would let the trigger run."""
        host = Database(self.db)
        self.addCleanup(host.close)
        queue = QueueStore(database=host)
        queue.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "first")
        with host.read() as conn:
            version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        self.sidecar("CREATE TRIGGER nope BEFORE INSERT ON proposals BEGIN SELECT RAISE(ABORT, 'nope'); END")
        with host.read() as conn:
            conn.execute("SELECT count(*) FROM proposals").fetchone()
        self.sidecar(f"PRAGMA schema_version = {version}")
        queue.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "second")
        self.assertNotIn(("trigger", "nope"), self.guarded())

    def test_a_missing_unique_index_the_rows_no_longer_allow_is_said_and_the_write_goes_on(self) -> None:
        """The sidecar dropped proposals_dedupe and filed the same request twice: the index cannot be made
        again over those rows, so the host says so once and goes on with its write, rather than refuse every
        decision and revocation from then on."""
        self.sidecar("DROP INDEX proposals_dedupe",
                     "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at, "
                     "expires_at) SELECT lower(hex(randomblob(16))), queue_key, tool, payload, payload_sha256, "
                     "justification, created_at, expires_at FROM proposals WHERE archived_at IS NULL")
        said = self.revoke(self.grant_id)
        self.assertIn('could not make again over the rows there now: index "proposals_dedupe"', said)
        self.assert_revoked(self.grant_id)

    def test_the_sidecars_own_writes_leave_the_schema_as_they_find_it(self) -> None:
        """Only the host restores: a sidecar's store neither drops nor makes anything (what a trigger could do
        there, the sidecar could do itself)."""
        self.sidecar("CREATE TRIGGER mine AFTER INSERT ON proposals BEGIN SELECT 1; END")
        with Database(self.db, migrate_schema=False).write() as conn:
            conn.execute("SELECT 1")
        self.assertIn(("trigger", "mine"), self.guarded())

    def test_names_are_escaped_and_a_flood_is_one_line(self) -> None:
        """A name is the sidecar's to choose: an escape sequence in it reaches no terminal, and 300 triggers are
        one warning naming five and counting the rest."""
        self.sidecar('CREATE TRIGGER "\x1b]0;owned\x07x" AFTER INSERT ON proposals BEGIN SELECT 1; END',
                     *(f"CREATE TRIGGER t{n:03} AFTER INSERT ON proposals BEGIN SELECT 1; END" for n in range(300)))
        said = self.revoke(self.grant_id)
        self.assertNotIn("\x1b", said)
        self.assertNotIn("\x07", said)
        self.assertIn(r'trigger "\x1b]0;owned\x07x"', said)
        self.assertIn("and 296 more", said)
        self.assertEqual(said.count("\n"), 1, said)
        self.assertEqual(self.guarded(), self.made())


class SchemaGuardTest(HostGrantsCase):
    def test_a_good_schema_is_looked_at_and_left_alone(self) -> None:
        """Nothing to do: nothing said, nothing changed, the second look the cheap one."""
        keeper = SchemaGuard()
        with self.store.db.write() as conn:
            self.assertEqual(keeper.hold(conn), [])
            self.assertEqual(keeper.hold(conn), [])

    def test_a_write_rolled_back_says_nothing_and_the_next_one_drops_it_again(self) -> None:
        """The drop is the write's: rolled back with it, it is not said, and the next write does it again."""
        said: list[str] = []
        keeper = SchemaGuard(say=said.append)
        raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("CREATE TRIGGER nope BEFORE INSERT ON proposals BEGIN SELECT RAISE(ABORT, 'nope'); END")
        for _ in range(2):
            raw.execute("BEGIN IMMEDIATE")
            self.assertEqual(len(keeper.hold(raw)), 1)
            raw.execute("ROLLBACK")
        self.assertEqual(said, [])
        self.assertIn(("trigger", "nope"), {(kind, name) for kind, name in raw.execute(
            "SELECT type, name FROM sqlite_master")})
        raw.execute("BEGIN IMMEDIATE")
        keeper.committed(keeper.hold(raw))
        raw.execute("COMMIT")
        self.assertEqual(len(said), 1)
        self.assertNotIn(("trigger", "nope"), {(kind, name) for kind, name in raw.execute(
            "SELECT type, name FROM sqlite_master")})

    def test_a_trigger_changed_only_inside_its_literals_layout_is_made_again(self) -> None:
        """A comparison with layout aside would call two spaces in a string literal the same as one: the
        trigger is made again from its migration's exact text on any difference, said or not."""
        raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(raw.close)
        (sql,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'grants_no_delete'").fetchone()
        raw.execute("DROP TRIGGER grants_no_delete")
        raw.execute(sql.replace("never deleted", "never  deleted"))
        keeper = SchemaGuard()
        with self.store.db.write() as conn:
            keeper.hold(conn)
        self.assertEqual(raw.execute("SELECT sql FROM sqlite_master WHERE name = 'grants_no_delete'").fetchone(),
                         (sql,))
