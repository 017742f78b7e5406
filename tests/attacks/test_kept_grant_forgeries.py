"""Hostile review 59: a sidecar on the mount against the grants the audit log keeps (``[kept by the log]``).

Review 57's leftover made every list show a grant whose row a sidecar hid, from
its sealed approval entry, and ``grants revoke`` end it. A sidecar can still
write the file's rows and append entries it cannot seal: each test here is one
way it used that to hide such a grant from every list again, or to have the
operator's revocation of it refused.
"""

from __future__ import annotations

import shlex
import sqlite3
import sys

from bot_bottle.cli.in_force import grants_listed
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.support import REPO
from tests.helpers.terminal import Terminal


def forged_row(forged: str, audit_seq: str) -> str:
    """The statement a sidecar writes a grant row ``forged`` with, of web-2's for evil.example, otherwise a copy of
    the grant ``:id``'s, claiming the approval entry ``audit_seq`` (an SQL expression over that row)."""
    return ("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
            f"rule_id, decided_by, audit_seq) SELECT '{forged}', 'web-2', tool, "
            "'{\"host\":\"evil.example\",\"methods\":[],\"paths\":[]}', subject_sha256, starts_at, ends_at, "
            f"'{'f' * 32}', NULL, 'root@host', {audit_seq} FROM grants WHERE id = :id")


def forged_flood(count: int) -> str:
    """The statement a sidecar writes ``count`` grant rows with, of web-2's for a.example, ending within the hour."""
    return ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + str(count) + ") "
            "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
            "rule_id, decided_by, audit_seq) SELECT printf('%032x', i), 'web-2', 'egress-allow', "
            "'{\"host\":\"a.example\",\"methods\":[],\"paths\":[]}', printf('%064x', i), "
            "strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '+1 hour'), "
            "printf('%032x', i + 1000), NULL, 'root@host', 100000 + i FROM n")


class KeptGrantForgeriesTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.grant = self.approved("pastebin.com")

    def sidecar(self, *statements: str, grant_id: str | None = None) -> None:
        """Write the host's file as a sidecar on the mount does: its triggers dropped first, then ``statements``
        (``:id``: the grant's id, ``grant_id`` where given, else setUp's)."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            for sql in statements:
                conn.execute(sql, {"id": grant_id or self.grant.id, "short": self.grant.short_id})
        finally:
            conn.close()

    def assert_listed_and_revocable(self, revoke_by: str) -> None:
        """The grant is listed kept by the log, and 'grants revoke' (by ``revoke_by``) ends it for good."""
        listed = self.run_cli("grants", "list")
        self.assertIn(self.grant.short_id, listed.stdout)
        self.assertIn("[kept by the log] ", listed.stdout)
        revoked = self.run_cli("grants", "revoke", revoke_by, "--reason", "no pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        with GrantStore(database=self.store.db) as grants:
            self.assertEqual(grants.against_log().kept, [])

    def test_an_unsealed_revocation_entry_does_not_hide_a_kept_grant(self) -> None:
        """BROKE before the fix: the sidecar deleted the row and appended a 'grant-revoked' entry naming the grant
        (no seal): the log's reading took any revocation entry as a revocation, so no list showed the grant, and
        once the row was put back it was in force again, the operator never having seen it."""
        self.sidecar("DELETE FROM grants WHERE id = :id",
                     "INSERT INTO audit_log (seq, ts, queue_key, action, tool, actor, notes, diff, details, prev_hash, "
                     "hash) SELECT max(seq) + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'web-1', 'grant-revoked', "
                     "'egress-allow', 'root@vm', 'forged', '', json_object('grant', :id), hash, hex(randomblob(32)) "
                     "FROM audit_log")
        listed = self.run_cli("grants", "list")
        self.assertIn(self.grant.short_id, listed.stdout)
        self.assertIn("[kept by the log] ", listed.stdout)
        with GrantStore(database=self.store.db) as grants:
            self.assertEqual([grant.id for grant in grants.against_log().kept], [self.grant.id])
        # Nothing more is recorded past the sidecar's unsealed entry until the operator sets it aside; then the
        # grant is revoked for good.
        self.assert_clean_error(self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "x"), 1, "no seal")

    def test_a_hidden_row_that_claims_another_entry_is_still_revoked(self) -> None:
        """BROKE before the fix: the sidecar marked the row ended and pointed its audit_seq at another entry: the
        list showed the grant kept by the log (its sealed approval's word), but 'grants revoke' read the row's end
        alone and said "ended ...: nothing to revoke", recording nothing, by its short id and by its whole id."""
        self.sidecar("UPDATE grants SET starts_at = '2026-01-01T00:00:00.000000Z', "
                     "ends_at = '2026-01-02T00:00:00.000000Z', audit_seq = 0 WHERE id = :id")
        self.assert_listed_and_revocable(self.grant.id)

    def test_an_ended_row_sharing_the_short_id_does_not_take_the_revocation(self) -> None:
        """BROKE before the fix: the sidecar deleted the row and wrote an ended one whose id shares the grant's
        short id (no list shows it: not in force); the command the list's warning names ('grants revoke SHORT')
        found that row and said it ended, and the grant the log keeps was never revoked."""
        self.sidecar("UPDATE grants SET id = :short || substr('eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee', 9), "
                     "ends_at = '2026-01-02T00:00:00.000000Z', starts_at = '2026-01-01T00:00:00.000000Z', "
                     "audit_seq = 0 WHERE id = :id")
        listed = self.run_cli("grants", "list")
        self.assertIn("[kept by the log] ", listed.stdout)
        revoked = self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "no pastes")
        # Both match the short id: the operator is told so, not that the kept grant ended; its whole id ends it.
        self.assertNotEqual(revoked.returncode, 0)
        self.assertIn("matches several", revoked.stderr)
        self.assert_listed_and_revocable(self.grant.id)

    def test_a_live_row_rewritten_to_say_something_else_shows_the_log_grant(self) -> None:
        """BROKE before the fix: the sidecar rewrote the live row's subject to a harmless host (or its bottle to
        another): 'grants list' showed 'docs.python.org', unmarked, while the log's grant by that id, back in force
        once the row was put back, lets pastebin.com through; now the log's grant is listed, marked."""
        for rewrite in ("UPDATE grants SET subject = '{\"host\":\"docs.python.org\",\"methods\":[],\"paths\":[]}' "
                        "WHERE id = :id", "UPDATE grants SET queue_key = 'web-9' WHERE id = :id",
                        # the BY column: BROKE before the fix, the made-up name was listed, unmarked
                        "UPDATE grants SET decided_by = 'docs.python.org' WHERE id = :id"):
            with self.subTest(rewrite=rewrite):
                self.sidecar(rewrite)
                listed = self.run_cli("grants", "list")
                self.assertIn("[kept by the log] pastebin.com", listed.stdout)
                self.assertIn(f"{self.grant.short_id}\tweb-1", listed.stdout)
                self.assertNotIn("docs.python.org", listed.stdout)
                self.assertNotIn("web-9", listed.stdout)
                self.sidecar("DELETE FROM grants WHERE id = :id")
                self.put_back_row(self.grant)
                self.assertNotIn("kept by the log", self.run_cli("grants", "list").stdout)  # put back: agrees

    def test_a_rewritten_approval_entry_hides_nothing_in_force(self) -> None:
        """The sidecar deleted the row and rewrote the grant's sealed approval entry out of what the lists' scan
        reads (its ts to before the 91 days, its grant's end, tool or action). No list shows the grant while
        nothing passes it on: no sidecar (no row) and no relay (no row, and its entry no longer sealed as it
        reads). Once the sidecar puts the row back, in force for the sidecars that read the file, every list
        shows it, marked [not in the log], and 'grants revoke' ends it; 'audit verify' names the entry throughout.
        Before, a row in force that no sealed approval made was listed as any grant, unmarked."""
        rewrites = {"ts": "UPDATE audit_log SET ts = '2020-01-01T00:00:00.000000Z' WHERE seq = :seq",
                    "end": "UPDATE audit_log SET details = json_set(details, '$.grant.ends_at', "
                           "'2020-01-02T00:00:00.000000Z') WHERE seq = :seq",
                    "tool": "UPDATE audit_log SET details = json_set(details, '$.grant.tool', 'x') WHERE seq = :seq",
                    "action": "UPDATE audit_log SET action = 'operator-edit' WHERE seq = :seq"}
        for index, (name, rewrite) in enumerate(rewrites.items()):
            with self.subTest(rewrite=name):
                host = f"paste{index}.example"
                grant = self.approved(host)
                self.sidecar("DELETE FROM grants WHERE id = :id", rewrite.replace(":seq", str(grant.audit_seq)),
                             grant_id=grant.id)
                self.assertNotIn(grant.short_id, self.run_cli("grants", "list").stdout)
                self.put_back_row(grant)
                listed = self.run_cli("grants", "list")
                self.assertIn(f"{grant.short_id}\tweb-1", listed.stdout)
                self.assertIn(f"[not in the log] {host}", listed.stdout)
                self.assertIn(f"grant {grant.short_id}: its row in the file says in force, but no approval this "
                              "host sealed made it as it reads", listed.stderr)
                self.assertIn(f"'bot-bottle grants revoke {grant.short_id}'", listed.stderr)
                self.assertNotEqual(self.run_cli("audit", "verify").returncode, 0)
                revoked = self.run_cli("grants", "revoke", grant.short_id, "--reason", "no pastes")
                self.assertEqual(revoked.returncode, 0, revoked.stderr)
                self.assertNotIn(grant.short_id, self.run_cli("grants", "list").stdout)

    def test_a_row_a_sidecar_wrote_is_listed_not_in_the_log(self) -> None:
        """A row in force that no approval made (a sidecar wrote it for its own bottle) is listed marked, where it
        was listed as any grant, and 'grants revoke' ends it."""
        forged = "e" * 32
        self.sidecar(forged_row(forged, "audit_seq + 1000"))
        listed = self.run_cli("grants", "list")
        self.assertIn(f"{forged[:8]}\tweb-2", listed.stdout)
        self.assertIn("[not in the log] evil.example", listed.stdout)
        self.assertIn(f"{self.grant.short_id}\tweb-1", listed.stdout)  # the real grant, unmarked
        self.assertNotIn("[not in the log] pastebin.com", listed.stdout)
        revoked = self.run_cli("grants", "revoke", forged[:8], "--reason", "not mine")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertNotIn(forged[:8], self.run_cli("grants", "list").stdout)

    def test_a_flood_of_forged_rows_is_listed_and_counted_not_warned_of_one_by_one(self) -> None:
        """A sidecar writes 300 grant rows: each is listed, marked, but the warnings name the first 12 and count the
        rest, where a line each put 300 lines on stderr before the list."""
        self.sidecar("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
                     "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, "
                     "proposal_id, rule_id, decided_by, audit_seq) SELECT printf('%032x', i), 'web-2', g.tool, "
                     "g.subject, g.subject_sha256, g.starts_at, g.ends_at, printf('%032x', i + 1000), NULL, "
                     "'root@host', g.audit_seq + 1000 + i FROM n, grants g WHERE g.id = :id")
        listed = self.run_cli("grants", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(listed.stdout.count("[not in the log] "), 300)
        warnings = listed.stderr.splitlines()
        self.assertEqual(len(warnings), 13, warnings[:3])
        self.assertIn("and 288 more grant(s) the file and the audit log disagree on", warnings[-1])

    def test_revoking_a_forged_row_that_claims_a_listed_grants_entry_leaves_that_grant(self) -> None:
        """BROKE before the fix (hostile review 60): a sidecar rebuilt the grants table without its UNIQUE on
        audit_seq and wrote a row of web-2's for evil.example claiming the approval entry of web-1's grant, whose
        row stayed as the host wrote it. The forged row was listed [not in the log] with a warning to revoke it;
        'grants revoke' of it said "revoked eeeeeeee (web-2 ...: evil.example ...)" and revoked web-1's grant for
        pastebin.com as well, a grant the operator saw listed, unmarked, and never named."""
        forged = "e" * 32
        self.sidecar("CREATE TABLE rebuilt AS SELECT * FROM grants", "DROP TABLE grants",
                     "ALTER TABLE rebuilt RENAME TO grants", forged_row(forged, "audit_seq"))
        listed = self.run_cli("grants", "list")
        self.assertIn(f"{self.grant.short_id}\tweb-1\tegress-allow\t6d23h\tpastebin.com", listed.stdout)
        self.assertIn("[not in the log] evil.example", listed.stdout)
        revoked = self.run_cli("grants", "revoke", forged[:8], "--reason", "not mine")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        listed = self.run_cli("grants", "list")
        self.assertNotIn(forged[:8], listed.stdout)
        self.assertIn(f"{self.grant.short_id}\tweb-1", listed.stdout)  # still in force, as the operator left it
        with GrantStore(database=self.store.db) as grants:
            self.assertEqual(grants.against_log().kept, [])
        self.assertTrue(self.lets_through("web-1", "pastebin.com", "GET", "/"))

    def test_a_copied_row_of_a_live_grant_does_not_block_its_revocation(self) -> None:
        """BROKE before the fix (hostile review 60): a sidecar rebuilt the grants table without its primary key and
        copied the live grant's row. The list showed the grant once, unmarked, and 'grants revoke' refused it by its
        short id and by its whole id (what the TUI's x and the dashboard's button send), "matches several grants
        (d388d0772b34, d388d0772b34)", while web-1's sidecar passed pastebin.com on."""
        self.sidecar("CREATE TABLE rebuilt AS SELECT * FROM grants", "DROP TABLE grants",
                     "ALTER TABLE rebuilt RENAME TO grants", "INSERT INTO grants SELECT * FROM grants WHERE id = :id")
        self.assertIn(f"{self.grant.short_id}\tweb-1", self.run_cli("grants", "list").stdout)
        revoked = self.run_cli("grants", "revoke", self.grant.id, "--reason", "no pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        self.assertNotIn(self.grant.short_id, self.run_cli("grants", "list").stdout)

    def test_a_second_row_of_a_live_grants_id_does_not_change_what_the_lists_show(self) -> None:
        """BROKE before the fix (hostile review 60): a sidecar rebuilt the grants table without its primary key with
        a second row of the live grant's id before it, saying docs.python.org and ending an hour later. Every list
        (one line an id) showed 'docs.python.org', unmarked, while the first row kept pastebin.com in force for
        web-1's sidecar. Now the grant is listed as its sealed approval records it, marked, and revoked by its id."""
        self.sidecar("CREATE TABLE rebuilt AS SELECT * FROM grants WHERE 0", "INSERT INTO rebuilt SELECT * FROM grants",
                     "UPDATE rebuilt SET subject = json_set(subject, '$.host', 'docs.python.org'), "
                     "ends_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', ends_at, '+1 hour')",
                     "INSERT INTO rebuilt SELECT * FROM grants", "DROP TABLE grants",
                     "ALTER TABLE rebuilt RENAME TO grants")
        self.assertTrue(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        for argv in (("grants", "list"), ("bottles", "show", "web-1")):
            with self.subTest(argv=argv):
                listed = self.run_cli(*argv).stdout
                self.assertIn("[kept by the log] pastebin.com", listed)
                self.assertNotIn("docs.python.org", listed)
        self.assert_listed_and_revocable(self.grant.short_id)
        self.assertFalse(self.lets_through("web-1", "pastebin.com", "GET", "/"))

    def test_a_revoked_copy_of_a_live_grants_row_is_not_what_the_full_list_shows(self) -> None:
        """BROKE before the fix (hostile review 60): a copy of the live grant's row, marked revoked and ending an hour
        later, in a grants table rebuilt without its primary key, had 'grants list --all' (one line an id) say the
        grant was revoked while its row kept it in force for web-1's sidecar."""
        self.sidecar("CREATE TABLE rebuilt AS SELECT * FROM grants", "DROP TABLE grants",
                     "ALTER TABLE rebuilt RENAME TO grants", "INSERT INTO grants SELECT * FROM grants WHERE id = :id",
                     "UPDATE grants SET revoked_at = starts_at, revoked_by = 'root@vm', revoke_reason = 'done', "
                     "ends_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', ends_at, '+1 hour') WHERE rowid = 2")
        self.assertTrue(self.lets_through("web-1", "pastebin.com", "GET", "/"))
        listed = self.run_cli("grants", "list", "--all").stdout
        self.assertIn(f"{self.grant.short_id}\tweb-1\tegress-allow\t6d23h\tpastebin.com", listed)
        self.assertNotIn("revoked", listed)

    def test_forged_rows_ending_sooner_do_not_push_a_kept_grants_warning_into_the_count(self) -> None:
        """BROKE before the fix (hostile review 60): the sidecar hid the real grant's row and wrote 12 rows ending
        within the hour; the warnings, in the list's order (soonest ending first), named the 12 forgeries, and the
        one for the grant the log keeps, the one a sidecar can bring back, was "and 1 more"."""
        self.sidecar("DELETE FROM grants WHERE id = :id")
        self.sidecar(forged_flood(12))
        listed = self.run_cli("grants", "list")
        self.assertEqual(listed.stdout.count("[not in the log] "), 12)
        self.assertIn(f"grant {self.grant.short_id}: kept by the audit log", listed.stderr.splitlines()[0])
        # and on the list, first: the TUI and the dashboard show every row, and a flood ending sooner buried it
        self.assertIn(f"{self.grant.short_id}\tweb-1\tegress-allow", listed.stdout.splitlines()[1])
        with GrantStore(database=self.store.db) as grants:
            self.assertEqual(grants_listed(grants).grants[0].id, self.grant.id)

    def test_the_tui_shows_a_kept_grant_above_a_flood_of_forged_rows(self) -> None:
        """BROKE before the fix (hostile review 60), in tmux: the sidecar hid the real grant's row and wrote 300 rows
        ending within the hour; the TUI's grants view (every row, soonest ending first) showed forgeries for pages
        before the grant the log keeps. It is now the first row, marked."""
        self.sidecar("DELETE FROM grants WHERE id = :id")
        self.sidecar(forged_flood(300))
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                              f"{shlex.quote(sys.executable)} -m bot_bottle supervise", width=120, height=30)
        term.wait_for("q quit")
        term.send("v")
        screen = term.wait_for("[not in the log]")
        self.assertIn(f"{self.grant.short_id}  web-1", screen)
        self.assertIn("[kept by the log] pastebin.com", screen)

    def test_a_table_refusing_the_rows_mark_does_not_stop_a_revocation(self) -> None:
        """BROKE before the fix (hostile review 60): the sidecar added a trigger refusing every UPDATE of the grants
        table; 'grants revoke' (and a standing rejection) failed with "SQLite error ...: nope" and recorded nothing:
        the grant stayed in force for the relay, with no entry ending it. A host write now drops such a trigger
        first (tests/attacks/test_foreign_schema.py); a table's own CHECK, which the sidecar can write into
        the table's definition, refused the mark the same way, and the row, left unmarked, was listed [revoked
        in the log]. Since hostile review 61 the guard writes the table's CREATE back as its migration made it
        (schema.table_text), so the mark goes in too and the grant is revoked in the file as in the log (a
        table rebuilt into other columns is rebuilt as its migration made it: tests/attacks/test_rebuilt_tables.py)."""
        reader = sqlite3.connect(self.db)
        version = int(reader.execute("PRAGMA schema_version").fetchone()[0])
        reader.close()
        self.sidecar("PRAGMA writable_schema = ON",
                     "UPDATE sqlite_master SET sql = replace(sql, ') STRICT', ', CHECK (revoked_at IS NULL)) STRICT') "
                     "WHERE type = 'table' AND name = 'grants'",
                     f"PRAGMA schema_version = {version + 1}")
        revoked = self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "no pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertIn('its rows kept): table "grants"', revoked.stderr)
        self.assertNotIn("pastebin.com", self.run_cli("grants", "list").stdout)
        self.assertIsNotNone(self.grants.find(self.grant.id).revoked_at)
        other = self.approved("paste.example")
        self.assertIn("paste.example", self.run_cli("grants", "list").stdout)
        rejected = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "paste.example", "--reject", "--yes")
        self.assertEqual(rejected.returncode, 0, rejected.stderr)
        self.assertNotIn(other.short_id, self.run_cli("grants", "list").stdout)
        self.assertIsNotNone(self.grants.find(other.id).revoked_at)

    def approved(self, host: str) -> Grant:
        """A grant of web-1's for ``host``, as the operator approves one."""
        return self.grants.find(self.approve("web-1", {"host": host}))
