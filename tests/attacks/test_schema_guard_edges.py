"""What a sidecar writes into sqlite_master that the schema guard read otherwise than SQLite (hostile review 62).

SQLite reads each schema row's type, name and table as C strings, to their
first NUL, and walks no freelist in ``dbstat``; the guard compared the rows
as SQL compares text and trusted ``dbstat`` alone with which pages a DROP
frees. Each test is the sidecar's change, made with its own connection, and
then what the operator does with the real command line.
"""

from __future__ import annotations

import sqlite3

from tests.helpers.host_grants import HostGrantsCase


class SchemaGuardEdgesTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.grant_id = self.approve("web-1", {"host": "pastebin.com"})

    def sidecar(self, *statements: str) -> None:
        """Statements a sidecar runs on the host's file with a connection of its own (``writable_schema`` on)."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA writable_schema = ON")
            for sql in statements:
                conn.execute(sql)
            conn.execute("PRAGMA writable_schema = OFF")
            version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
            conn.execute(f"PRAGMA schema_version = {version + 1}")
        finally:
            conn.close()

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
