"""Hostile review 60: a sidecar on the mount forges a grant on an entry sealed before 'audit new-key'.

Every list marks a row in force that no approval this host sealed made as it
reads, ``[not in the log]``. Entries before a new audit key took over carry the
earlier key's seal, which this host no longer checks: the lists took any
approval entry numbered up to the restart as made, unchecked. A sidecar rewrote
one (or any entry up to there into an approval) to record a grant of its
choosing, wrote the row to match, and every list showed the forgery as any
grant, unmarked, while the sidecars that read the file passed it on. Those
entries are held to their chain, which must end in the hash the anchor recorded
at the restart ('audit verify' does the same): a sidecar cannot rewrite one
without breaking it.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.audit.chain import SELECT, compute_hash
from bot_bottle.audit.grant_entries import RowsAgainstLog
from bot_bottle.audit.seal import key_path
from bot_bottle.grant_records import Grant
from bot_bottle.policy.subjects import subject_sha256
from tests.helpers.host_grants import HostGrantsCase

EVIL = {"host": "evil.example", "methods": [], "paths": []}


class RestartGrantForgeriesTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.grant = self.grants.find(self.approve("web-1", {"host": "pastebin.com"}))
        key_path().rename(self.tmp / "old.key")
        restarted = self.run_cli("audit", "new-key", "--yes")
        self.assertEqual(restarted.returncode, 0, restarted.stderr)

    def forge(self, grant: Grant, bottle: str) -> None:
        """The sidecar rewrites ``grant``'s approval entry (sealed with the earlier key) and its row to record a
        grant of ``bottle``'s for evil.example, the entry's hash made again over what it now says."""
        self.raw("UPDATE audit_log SET queue_key = :bottle, details = json_set(details, '$.grant.subject.host', "
                 "'evil.example') WHERE seq = :seq", {"bottle": bottle, "seq": grant.audit_seq},
                 untriggered="audit_log")
        self.raw("UPDATE grants SET queue_key = :bottle, subject = json_set(subject, '$.host', 'evil.example'), "
                 "subject_sha256 = :digest WHERE id = :id",
                 {"bottle": bottle, "id": grant.id, "digest": subject_sha256(grant.tool, EVIL)},
                 untriggered="grants")
        with sqlite3.connect(self.db) as conn:
            row = conn.execute(f"{SELECT} WHERE seq = :seq", {"seq": grant.audit_seq}).fetchone()
        self.raw("UPDATE audit_log SET hash = :hash WHERE seq = :seq",
                 {"hash": compute_hash(*row[:11]), "seq": grant.audit_seq}, untriggered="audit_log")

    def test_a_forged_row_on_an_earlier_keys_entry_is_marked(self) -> None:
        """BROKE before the fix: the forged grant of web-2's for evil.example was listed unmarked, no warning,
        as a grant the operator made, while web-2's sidecar (it reads the file) let evil.example through."""
        self.forge(self.grant, "web-2")
        self.assertTrue(self.lets_through("web-2", "evil.example", "GET", "/"))  # the forgery is in force
        listed = self.run_cli("grants", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(f"{self.grant.short_id}\tweb-2", listed.stdout)
        self.assertIn("[not in the log] evil.example", listed.stdout)
        self.assertIn(f"grant {self.grant.short_id}: its row in the file says in force", listed.stderr)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}, frozenset({self.grant.id})))

    def test_an_earlier_keys_entry_rewritten_keeps_nothing(self) -> None:
        """Without a row, the rewritten entry is no grant the log keeps: before, it was listed [kept by the log],
        a grant of web-2's for evil.example the operator never made, as if a sidecar had hidden its row."""
        self.forge(self.grant, "web-2")
        self.raw("DELETE FROM grants WHERE id = :id", {"id": self.grant.id}, untriggered="grants")
        self.assertNotIn("evil.example", self.run_cli("grants", "list").stdout)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}))

    def test_an_earlier_keys_grant_untouched_is_not_marked(self) -> None:
        """The honest case: the grant the earlier key sealed is listed as any grant."""
        self.approve("web-3", {"host": "example.org"})  # one under the new key too
        listed = self.run_cli("grants", "list")
        self.assertEqual((listed.returncode, listed.stderr), (0, ""))
        self.assertNotIn(" in the log] ", listed.stdout)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}))

    def test_a_grant_revoked_before_the_new_key_is_not_kept(self) -> None:
        """BROKE before the fix (honest use): a grant revoked before 'audit new-key' was listed [kept by the log]
        after it, with a warning that a sidecar had hidden it: its revocation entry carries the earlier key's seal,
        which this host no longer checks, so the lists passed it by. It is held to its chain as the approval is."""
        revoked_before = self.grants.find(self.approve("web-5", {"host": "example.net"}))
        self.grants.revoke(revoked_before.id, "done", revoked_by="ann@laptop")
        (self.tmp / "key2").write_bytes(key_path().read_bytes())
        key_path().unlink()
        restarted = self.run_cli("audit", "new-key", "--yes")
        self.assertEqual(restarted.returncode, 0, restarted.stderr)
        listed = self.run_cli("grants", "list")
        self.assertEqual((listed.returncode, listed.stderr), (0, ""))
        self.assertNotIn("example.net", listed.stdout)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}))
