"""A sidecar rebuilds a migration's table and sets the host's own rebuild up to fail or to change what it copies
(hostile reviews 63 to 66, of ``schema.table_rebuild``).

Each test is the sidecar's change, made with its own connection, and then what the operator does with the real
command line.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

from bot_bottle.records import EFFECT_APPROVE, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import later, utc_now
from tests.attacks.test_rebuilt_tables import REBUILT, REFUSING, RebuiltTablesCase

SEQUENCE_VIEW = ("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('view', 'sqlite_sequence', "
                 "'sqlite_sequence', 0, 'CREATE VIEW sqlite_sequence AS SELECT 1 AS name, 2 AS seq')")


class TableRebuildEdgesTest(RebuiltTablesCase):
    def test_a_view_named_sqlite_sequence_does_not_fail_the_rebuild(self) -> None:
        """BROKE before: the rebuild renamed its copy into place with ALTER TABLE, which updates sqlite_sequence
        wherever an object of that name is in the schema; the sidecar's view of that name (written with
        writable_schema, inert otherwise: no migration's table counts with it) made every rename fail ("cannot
        modify sqlite_sequence because it is a view"), the log was left refusing revocations, and 'grants revoke'
        failed with "CHECK constraint failed", the grant in force. The copy is renamed by its schema rows."""
        entries = self.query("SELECT * FROM audit_log ORDER BY seq")
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON", SEQUENCE_VIEW, "PRAGMA writable_schema = OFF", bumped=True)
        said = self.revoke(self.grant_id)
        self.assert_log_rebuilt(said, entries)

    def test_columns_hiding_the_rowid_leave_the_table(self) -> None:
        """Found by hostile review 63: proposals rebuilt with columns named rowid, _rowid_ and oid, its rows at
        rowids 7 and 14; no name read the rowid, so the rebuild copied the rows without it and renumbered them
        1 and 2, under the standing rules' keeper, which goes by them. Now such a table is left, said."""
        self.approve("web-1", {"host": "other.example"})
        self.rebuild("proposals", extra="rowid TEXT, _rowid_ TEXT, oid TEXT", rowid="rowid * 7")
        said = self.revoke(self.grant_id)
        self.assertIn('table "proposals", as columns named rowid, _rowid_ and oid hide its rowids, which a rebuild '
                      "would renumber ('bot-bottle db check' reports it)", said)
        self.assertIn(("oid",), self.query("SELECT name FROM pragma_table_info('proposals')"))  # as it was


    def test_a_constraint_index_row_whose_tbl_name_lies_does_not_stop_every_write(self) -> None:
        """Found by hostile review 64: the audit log rebuilt refusing revocations, and its constraint index's row
        given tbl_name 'grants' (SQLite binds such a row to its table by its name alone) and the last rowid
        there is. The rebuild's DROP TABLE deletes the rows by tbl_name, so that one stayed, naming the page the
        DROP freed under the name the copy's own index then took; loaded after it, it had SQLite find the file
        malformed inside the write, and every host write failed ("is corrupt ... restore the newest backup"),
        where before only revocations did. The rows bound to the dropped table go with it."""
        entries = self.query("SELECT * FROM audit_log ORDER BY seq")
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET tbl_name = 'grants', rowid = 9223372036854775807 "
                     "WHERE name = 'sqlite_autoindex_audit_log_1'", "PRAGMA writable_schema = OFF", bumped=True)
        said = self.revoke(self.grant_id)
        self.assertIn(f'{REBUILT} into other columns', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT * FROM audit_log ORDER BY seq")[:len(entries)], entries)
        self.assertEqual(self.query("SELECT tbl_name FROM sqlite_master WHERE name = 'sqlite_autoindex_audit_log_1'"),
                         [("audit_log",)])
        self.assert_sound()

    def test_a_constraint_index_row_whose_tbl_name_lies_and_before_the_table_does_not_stop_every_write(self) -> None:
        """The same row at the rowid it had: loaded before the table renamed into place, it was an orphan index
        to SQLite ("malformed database schema ... orphan index"), every host write failing with it."""
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET tbl_name = 'grants' || char(0) "
                     "WHERE name = 'sqlite_autoindex_audit_log_1'",
                     "PRAGMA writable_schema = OFF", bumped=True)
        self.assertIn(REBUILT, self.revoke(self.grant_id))
        self.assert_revoked(self.grant_id)
        self.assert_sound()

    def test_a_migration_table_whose_name_is_spelled_in_capitals_keeps_its_rows(self) -> None:
        """Found by hostile review 64: the rules and grants tables' rows renamed 'RULES' and 'GRANTS' (SQLite
        loads a row whose name matches its CREATE case-blind: the same tables). The guard went by the names as
        written: each read as a table no migration made that declares a foreign key, so it dropped them, every
        standing rule and grant with them, and made them again, empty, saying it had dropped what no migration
        made. Their names are written back; every row stays, and the revocation is recorded."""
        self.cli("rules", "add", "--all-bottles", "--host", "evil.example", "--reject", "--notes", "no")
        rules, grants = self.query("SELECT * FROM rules"), self.query("SELECT * FROM grants")
        self.sidecar("PRAGMA writable_schema = ON", "UPDATE sqlite_master SET name = upper(name) "
                     "WHERE type = 'table' AND name IN ('rules', 'grants')", "PRAGMA writable_schema = OFF",
                     bumped=True)
        said = self.revoke(self.grant_id)
        self.assertNotIn("dropped", said)
        self.assertIn('table "GRANTS", table "RULES"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT * FROM rules"), rules)
        self.assertEqual(self.query("SELECT id FROM grants"), [(row[0],) for row in grants])
        self.assertEqual(self.query("SELECT name FROM sqlite_master WHERE type = 'table' AND lower(name) IN "
                                    "('rules', 'grants') ORDER BY name"), [("grants",), ("rules",)])
        self.assert_sound()

    def test_the_audit_log_rebuilt_under_a_name_in_capitals_is_rebuilt(self) -> None:
        """The audit log rebuilt refusing revocations and renamed 'AUDIT_LOG': the guard neither rebuilt it (no
        migration's table by that name) nor made the log again (one was there), but took it out as a table of
        no migration's that declares a foreign key and made an empty log in its place; the sealed anchor then
        refused every write ("entries 1-1 were removed"). Now its name is written back and it is rebuilt."""
        entries = self.query("SELECT * FROM audit_log ORDER BY seq")
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON", "UPDATE sqlite_master SET name = 'AUDIT_LOG' || char(0) || 'x' "
                     "WHERE type = 'table' AND name = 'audit_log'", "PRAGMA writable_schema = OFF", bumped=True)
        said = self.revoke(self.grant_id)
        self.assertIn(REBUILT, said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT * FROM audit_log ORDER BY seq")[:len(entries)], entries)
        self.assertEqual(self.guarded(), self.made())
        self.assert_sound()

    def test_a_schema_row_at_the_last_rowid_does_not_leave_the_schema_unloadable(self) -> None:
        """Found by hostile review 64: a view of the sidecar's at rowid 9223372036854775807, the audit log rebuilt
        refusing revocations. SQLite numbers each new row at random once the last rowid is taken, and loads the
        schema in rowid order: the copy's constraint index landed before the copy (an orphan index: the rebuild
        undone, and the write failed "database disk image is malformed"), or the log's indexes made again landed
        before it, and the write committed a schema no process could load ("malformed database schema
        (audit_log_by_proposal) - no such table: main.audit_log", told to restore a backup). The rows up there
        are numbered down first, in their order."""
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("CREATE VIEW zz AS SELECT 1", "PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET rowid = 9223372036854775807 WHERE name = 'zz'",
                     "PRAGMA writable_schema = OFF", bumped=True)
        self.assertIn(REBUILT, self.revoke(self.grant_id))
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master WHERE name = 'zz' AND rowid < 1000"), [(1,)])
        self.approve("web-1", {"host": "later.example"})

    def test_a_table_made_again_after_a_row_at_the_last_rowid_leaves_the_schema_loadable(self) -> None:
        """The same row, the rules table dropped: made again, empty, its indexes and triggers numbered at random,
        before it as often as not."""
        self.sidecar("DROP TABLE rules", "CREATE VIEW zz AS SELECT 1", "PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET rowid = 9223372036854775807 WHERE name = 'zz'",
                     "PRAGMA writable_schema = OFF", bumped=True)
        self.assertIn('made again, empty, a table', self.revoke(self.grant_id))
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.guarded(), self.made())
        self.cli("rules", "add", "--all-bottles", "--host", "evil.example", "--reject", "--notes", "no")

    def test_a_table_referencing_itself_is_left(self) -> None:
        """The audit log rebuilt with a column referencing its own entries: its DROP would delete its rows first,
        each looking up the rows that reference it in a column with no index, a scan of the whole log for every
        entry (hours at a host's size, under the write lock). Left, said: the revocation fails as the CHECK
        says, nothing of the log changed."""
        self.rebuild("audit_log", extra="back INTEGER REFERENCES audit_log (seq)", check=REFUSING)
        entries = self.query("SELECT count(*) FROM audit_log")
        done = self.run_cli("grants", "revoke", self.grant_id[:8], "--reason", "no pastes")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn('table "audit_log", as it references itself', done.stderr)
        self.assertEqual(self.query("SELECT count(*) FROM audit_log"), entries)


    def test_a_table_referencing_the_log_named_with_a_nul_does_not_leave_the_log(self) -> None:
        """Found by hostile review 65: the audit log rebuilt refusing revocations, and the grants table's row
        named 'grants' || char(0) || 'x' (SQLite reads the name to the NUL: the same table). The rebuild read the
        grants table, which references the log, by its name as written, found no migration's table of that name,
        and left the log: 'grants revoke' failed with "CHECK constraint failed", the grant in force. The name is
        written back first, and the log rebuilt."""
        entries = self.query("SELECT * FROM audit_log ORDER BY seq")
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON", "UPDATE sqlite_master SET name = 'grants' || char(0) || 'x' "
                     "WHERE type = 'table' AND name = 'grants'", "PRAGMA writable_schema = OFF", bumped=True)
        said = self.revoke(self.grant_id)
        self.assertIn('spelled otherwise (its rows kept): table "grants\\x00x"', said)
        self.assertIn(REBUILT, said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT * FROM audit_log ORDER BY seq")[:len(entries)], entries)
        self.assertEqual(self.query("SELECT count(*) FROM sqlite_master WHERE name = 'grants'"), [(1,)])
        self.assert_sound()

    def test_a_table_referencing_the_log_typed_in_capitals_does_not_leave_the_log(self) -> None:
        """Found by hostile review 65: the grants table's row typed 'TABLE' (SQLite loads it as a table). The
        rebuild set the references to the log aside by ``type = 'table'``, so the grants table's were not, and
        the log's DROP deleted its rows first and failed on them ("FOREIGN KEY constraint failed"): the log was
        left refusing revocations, the grant in force. The row's type is written back first."""
        self.rebuild("audit_log", check=REFUSING)
        self.sidecar("PRAGMA writable_schema = ON", "UPDATE sqlite_master SET type = 'TABLE' WHERE name = 'grants'",
                     "PRAGMA writable_schema = OFF", bumped=True)
        said = self.revoke(self.grant_id)
        self.assertIn(REBUILT, said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT type FROM sqlite_master WHERE name = 'grants'"), [("table",)])
        self.assert_sound()

    def add_pattern(self, host: str, kinds: Any) -> str:
        """An approving pattern rule for every bottle, confirmed for ``kinds``; its id."""
        now = utc_now()
        with mock.patch("bot_bottle.grants.subject_kinds", return_value=kinds):
            return self.grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=True, effect=EFFECT_APPROVE,
                                        subject={"host": host, "methods": [], "paths": []}, notes="staging hosts",
                                        ends_at=later(now, 86400), created_by="ann", now=now).id

    def test_a_version_set_back_does_not_have_a_process_that_stays_open_rebuild_away_a_later_migrations_column(
            self) -> None:
        """BROKE before: 'PRAGMA user_version = 8' and any change to the schema (a table of its own), and the next
        write of a process that stays open (dashboard, relay, TUI) held the file to migration 8's schema, where
        the rules table has no 'confirmed' column: the guard rebuilt the rules table as migration 8 made it,
        copying every column but that one, and what each standing rule was confirmed for was gone from the file
        (every later read of the rules failing: "no such column: confirmed"). A column another version of the
        migrations gives the table is not the sidecar's to have dropped: the table is left, and said."""
        rule = self.add_pattern("*.staging", ["internal"])
        rows = self.query("SELECT * FROM rules ORDER BY rowid")
        said: list[str] = []
        self.store.db.say_schema_changes_with(said.append)
        self.sidecar("PRAGMA user_version = 8", "CREATE TABLE junk (x)")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "for the build")
        self.assertEqual(self.query("SELECT * FROM rules ORDER BY rowid"), rows)
        self.assertEqual(self.query(f"SELECT confirmed FROM rules WHERE id = '{rule}'"), [('["internal"]',)])
        self.assertTrue(any(line.startswith("left as it is") and '"rules"' in line and "confirmed" in line
                            for line in said), said)
        self.sidecar("PRAGMA user_version = 10", "DROP TABLE junk")  # and the next write makes the rest again
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "b.example"}', "for the build")
        self.assertEqual(self.query(f"SELECT confirmed FROM rules WHERE id = '{rule}'"), [('["internal"]',)])
        self.assert_sound()
