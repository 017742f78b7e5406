"""A sidecar rebuilds a migration's table into other storage (``schema.table_rebuild``).

Review 61 left this open: the audit log copied into a table of one column
more with ``CHECK (action <> 'grant-revoked')``, the old one dropped and the
copy renamed into place. Its CREATE then described other storage, so the
guard could not write the migration's text back over its rows; it left the
table and said so, and every revocation failed ("CHECK constraint failed"),
the grant staying in force. Each test is the sidecar's rebuild, made with its
own connection, and then what the operator does with the real command line.
"""

from __future__ import annotations

import sqlite3

from tests.attacks.test_foreign_schema import SidecarSchemaCase

REBUILT = "rebuilt as its migration made it a table a process with the database file had rebuilt"
LEFT = "left as it is a table a process with the database file rebuilt into other columns"
REFUSING = "CHECK (action <> 'grant-revoked')"


class RebuiltTablesCase(SidecarSchemaCase):
    """The sidecar's rebuilds of a migration's table, and what the tests look at after."""

    def rebuild(self, table: str, extra: str = "extra TEXT DEFAULT 'x'", check: str | None = None,
                rows: str = "*", rowid: str | None = None, drop: str | None = None,
                written: tuple[str, str] = ("", "")) -> None:
        """The sidecar rebuilds ``table`` as SQLite's documentation says to, with ``extra`` (a column, first) and
        ``check`` (a table constraint, last) written into its CREATE, and ``drop`` (a column) out of it; the
        rows copied as ``rows`` selects them, with ``rowid`` as their rowids where given; ``written``: text of its
        CREATE replaced (old, new)."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA legacy_alter_table = ON")
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone()[0]
            body = sql.split("(", 1)[1]
            if drop is not None:
                lines = body.split("\n")
                body = "\n".join(line for line in lines if not line.strip().startswith(drop + " "))
            created = f"CREATE TABLE spare ({extra}, {body}".replace(*written)
            if check is not None:
                created = created.replace(") STRICT", f", {check}) STRICT")
            conn.execute(created)
            columns = [name for (name,) in conn.execute("SELECT name FROM pragma_table_info('spare')")][1:]
            names = ", ".join(columns)
            selected = names if rows == "*" else rows
            if rowid is None:
                conn.execute(f"INSERT INTO spare ({names}) SELECT {selected} FROM {table}")
            else:
                conn.execute(f"INSERT INTO spare (rowid, {names}) SELECT {rowid}, {selected} FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE spare RENAME TO {table}")
        finally:
            conn.close()

    def duplicate(self, table: str, column: str, value: object) -> None:
        """The sidecar copies a row of ``table`` with ``column`` set to ``value``."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = OFF")
            cursor = conn.execute(f"SELECT * FROM {table} LIMIT 1")
            names = [d[0] for d in cursor.description]
            row = dict(zip(names, cursor.fetchone(), strict=True)) | {column: value}
            conn.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         list(row.values()))
        finally:
            conn.close()

    def assert_log_rebuilt(self, said: str, entries: list[tuple[object, ...]]) -> None:
        """What 'grants revoke' ``said`` of the audit log, which the host rebuilt: that, the revocation recorded,
        ``entries`` (the log before) kept, the triggers and indexes as the migrations made them, the file sound."""
        self.assertIn(f'{REBUILT} into other columns (its rows copied, its own columns and constraints gone): '
                      'table "audit_log"', said)
        self.assert_revoked(self.grant_id)
        self.assertEqual(self.query("SELECT * FROM audit_log ORDER BY seq")[:len(entries)], entries)
        self.assertEqual(self.guarded(), self.made())
        self.assert_sound()

    def assert_sound(self) -> None:
        checked = self.run_cli("db", "check")
        self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)
        self.cli("audit", "verify")



class RebuiltTablesTest(RebuiltTablesCase):

    def test_the_audit_log_rebuilt_refusing_revocations_is_rebuilt_and_the_revocation_recorded(self) -> None:
        """BROKE before (review 61's leftover): 'grants revoke' failed with "CHECK constraint failed", recording
        nothing, and the sidecar passed pastebin.com on. Now the log is rebuilt as its migration made it, every
        entry kept and the chain whole, its triggers made again, and the revocation recorded."""
        entries = self.query("SELECT * FROM audit_log ORDER BY seq")
        self.rebuild("audit_log", check=REFUSING)
        said = self.revoke(self.grant_id)
        self.assert_log_rebuilt(said, entries)
        with self.assertRaises(sqlite3.DatabaseError):  # append-only again
            self.query("UPDATE audit_log SET notes = 'x' WHERE seq = 1")

    def test_proposals_rebuilt_keep_their_rowids(self) -> None:
        """The standing rules' keeper goes by proposals' rowids: the rebuild copies them, not renumbers them."""
        self.approve("web-1", {"host": "other.example"})
        self.rebuild("proposals", rowid="rowid * 7")
        before = self.query("SELECT rowid, id FROM proposals ORDER BY rowid")
        self.assertIn(f'{REBUILT}', self.revoke(self.grant_id))
        self.assertEqual(self.query("SELECT rowid, id FROM proposals ORDER BY rowid"), before)
        self.assertEqual([rowid for rowid, _ in before], [7, 14])
        self.assertEqual(self.guarded(), self.made())
        self.assert_sound()

    def test_a_table_referencing_the_log_with_a_cascade_is_rebuilt_first(self) -> None:
        """The grants table rebuilt with its audit_seq 'REFERENCES audit_log ON DELETE CASCADE', the log rebuilt
        refusing revocations: the log's rebuild deletes its old rows as it drops it, and the cascade would have
        deleted every grant. The grants table is rebuilt first, its reference plain again, then the log; every
        grant row stays."""
        self.approve("web-1", {"host": "other.example"})
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'grants'").fetchone()[0]
        finally:
            conn.close()
        self.assertIn("audit_seq      INTEGER NOT NULL UNIQUE REFERENCES audit_log (seq)", sql)
        self.rebuild("grants", extra="audit_seq2 INTEGER REFERENCES audit_log (seq) ON DELETE CASCADE",
                     rows="*")
        self.query("UPDATE grants SET audit_seq2 = audit_seq")  # each grant hangs on its approval's entry
        self.rebuild("audit_log", check=REFUSING)
        said = self.revoke(self.grant_id)
        self.assertIn('table "grants", table "audit_log"\n', said)
        self.assertEqual(self.query("SELECT count(*) FROM grants"), [(2,)])
        self.assert_revoked(self.grant_id)
        self.assert_sound()

    def test_a_table_a_cascading_reference_to_which_cannot_be_rebuilt_is_left(self) -> None:
        """Where the table referencing the log with a cascade cannot be rebuilt itself (a grant row ending as it
        starts, which its migration's CHECK refuses), the log is not dropped either: the revocation fails as
        the sidecar's CHECK says, closed, and not one grant row is deleted."""
        self.approve("web-1", {"host": "other.example"})
        self.rebuild("grants", extra="audit_seq2 INTEGER REFERENCES audit_log (seq) ON DELETE CASCADE",
                     written=("CHECK (ends_at > starts_at)", ""))
        self.query("UPDATE grants SET audit_seq2 = audit_seq")
        self.query("UPDATE grants SET ends_at = starts_at WHERE id <> '" + self.grant_id + "'")
        self.rebuild("audit_log", check=REFUSING)
        done = self.run_cli("grants", "revoke", self.grant_id[:8], "--reason", "no pastes")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("CHECK constraint failed", done.stderr)
        self.assertEqual(self.query("SELECT count(*) FROM grants"), [(2,)])
        self.assertEqual(self.query("PRAGMA quick_check"), [("ok",)])

    def test_a_table_missing_a_column_is_left_and_said(self) -> None:
        """A column of its migration's gone: not the host's to make up. Left, said with why, the write goes on."""
        self.rebuild("settings", drop="set_by")
        said = self.revoke(self.grant_id)
        self.assertIn(f'{LEFT} than its migration\'s: table "settings", as its column set_by is gone', said)
        self.assert_revoked(self.grant_id)

    def test_rows_the_migrations_checks_refuse_leave_the_table_as_it_was(self) -> None:
        """The sidecar's rebuilt bottles table holds a row its migration's CHECK refuses: the rebuild fails, its
        savepoint undone (the sidecar's table and row as they were), said with SQLite's reason, and the rest of
        the write goes on."""
        self.rebuild("bottles")
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("PRAGMA writable_schema = ON")  # the sidecar wrote the CHECK out of its copy's CREATE
            conn.execute("UPDATE sqlite_master SET sql = replace(sql, 'AND slug NOT GLOB', 'OR slug NOT GLOB') "
                         "WHERE name = 'bottles'")
            conn.execute("PRAGMA schema_version = 9999")
        finally:
            conn.close()
        self.duplicate("bottles", "slug", "NOT-A-SLUG")
        said = self.revoke(self.grant_id)
        self.assertIn(f'{LEFT} than its migration\'s: table "bottles", as rebuilding it failed: CHECK constraint '
                      'failed', said)
        self.assert_revoked(self.grant_id)
        self.assertIn(("NOT-A-SLUG",), self.query("SELECT slug FROM bottles"))
        self.assertEqual(self.query("PRAGMA quick_check"), [("ok",)])

    def test_a_rebuilt_table_of_the_sidecars_keyed_to_the_log_with_a_cascade_goes_first(self) -> None:
        """A table of the sidecar's own referencing the log with a cascade is taken out before the log is
        rebuilt (its own rows alone deleted), and nothing of the host's goes with it."""
        self.query("CREATE TABLE evil (s INTEGER REFERENCES audit_log (seq) ON DELETE CASCADE)")
        self.query("INSERT INTO evil SELECT seq FROM audit_log")
        self.rebuild("audit_log", check=REFUSING)
        entries = self.query("SELECT count(*) FROM audit_log")[0][0]
        said = self.revoke(self.grant_id)
        self.assertIn('table "evil"', said)
        self.assertIn(REBUILT, said)
        self.assertEqual(self.query("SELECT count(*) FROM audit_log")[0][0], entries + 1)
        self.assert_sound()
