"""A grant a sidecar hides from the operator's lists by its row, to bring it back later: hostile review 57's leftover.

A sidecar on the mount can write the grants table. It marked a live grant's
row revoked, or ended, or deleted it: no sidecar or relay passed the grant on
while it was so, but ``grants list``, ``bottles show``, the TUI and the
dashboard listed grants from their rows alone, so the operator was never
shown it and had no reason to revoke it, and once the sidecar put the row
back it was in force again. Now every list shows, marked, the grants the
audit log records as made and not revoked that no row in force shows
(``grant_entries.kept_by_log_in``), and ``grants revoke`` ends one even where
its row is gone.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot_bottle.audit.grant_entries import RowsAgainstLog
from bot_bottle.audit.seal import key_path
from bot_bottle.cli.dashboard.pages import grants_section
from bot_bottle.cli.in_force import KEPT_BY_LOG, grant_subjects, grants_listed
from bot_bottle.decisions import decide
from bot_bottle.grant_records import Grant
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.helpers.host_grants import HostGrantsCase

# How a sidecar hides the row, by the grant's id (``:id``); each is undone by putting the row back as it was.
HIDINGS = {
    "marked revoked": "UPDATE grants SET revoked_at = starts_at, revoked_by = 'root@vm', revoke_reason = 'x', "
                      "revoke_seq = 1 WHERE id = :id",
    "marked ended": "UPDATE grants SET starts_at = '2026-01-01T00:00:00.000000Z', "
                    "ends_at = '2026-01-02T00:00:00.000000Z' WHERE id = :id",
    "deleted": "DELETE FROM grants WHERE id = :id",
}


class HiddenGrantRowsTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.grant = self.grants.find(self.approve("web-1", {"host": "pastebin.com"}))

    def sidecar(self, sql: str, grant_id: str) -> None:
        """Write the host's file as a sidecar on the mount does: the grants' triggers dropped first."""
        self.raw(sql, {"id": grant_id}, untriggered="grants")

    def put_back(self, grant: Grant) -> None:
        """The sidecar puts the row back as the host wrote it."""
        self.sidecar("DELETE FROM grants WHERE id = :id", grant.id)
        self.put_back_row(grant)

    def test_every_list_shows_a_hidden_grant_marked_and_revoke_ends_it(self) -> None:
        """BROKE before the fix: each hiding took the grant out of 'grants list' ('no grants in force'), 'bottles
        show', the TUI's grants view and the dashboard's bottles page."""
        for hiding, sql in HIDINGS.items():
            with self.subTest(hiding=hiding):
                grant = self.fresh_grant(hiding)
                self.sidecar(sql, grant.id)
                listed = self.run_cli("grants", "list")
                self.assertEqual(listed.returncode, 0, listed.stderr)
                self.assertIn(grant.short_id, listed.stdout)
                self.assertIn("[kept by the log] ", listed.stdout)
                self.assertIn(f"grant {grant.short_id}: {KEPT_BY_LOG} ('bot-bottle grants revoke {grant.short_id}')",
                              listed.stderr)
                (shown,) = [g for g in json.loads(self.run_cli("grants", "list", "--json").stdout)
                            if g["id"] == grant.id]
                self.assertEqual(shown["note"], KEPT_BY_LOG)
                self.assertEqual(shown["ends_at"], grant.ends_at)  # the log's word, not the row's
                self.assertIn("[kept by the log] ", self.run_cli("bottles", "show", grant.queue_key).stdout)
                on_screens = grants_listed(self.grants)
                page = grants_section(on_screens.grants, datetime.now(UTC), root="/r", csrf="t",
                                      subjects=grant_subjects(self.grants, on_screens.grants), listed=on_screens)
                self.assertIn(grant.short_id, page)
                self.assertIn("kept by the audit log", page)
                revoked = self.run_cli("grants", "revoke", grant.short_id, "--reason", "no pastes")
                self.assertEqual(revoked.returncode, 0, revoked.stderr)
                self.assertEqual(self.grants.against_log().kept, [])
                self.assertNotIn(grant.short_id, self.run_cli("grants", "list").stdout)

    def test_a_revoked_grant_whose_row_is_put_back_is_marked_revoked(self) -> None:
        """Hidden, revoked by the operator, then put back by the sidecar as it was: the grant is listed as the file
        says, in force (sidecars that read the file pass it on), marked with what the log says; revoking it again
        says it was revoked already, and 'audit verify' names the row."""
        self.sidecar(HIDINGS["marked revoked"], self.grant.id)
        revoked = self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "no pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.put_back(self.grant)
        listed = self.run_cli("grants", "list")
        self.assertIn(f"{self.grant.short_id}\tweb-1", listed.stdout)
        self.assertIn("[revoked in the log] ", listed.stdout)
        self.assertIn(f"grant {self.grant.short_id}: its row in the file says in force, but the audit log records it "
                      "revoked at ", listed.stderr)
        self.assertIn("by root@", listed.stderr)
        again = self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "again")
        self.assert_clean_error(again, 1, "was revoked already")
        verify = self.run_cli("audit", "verify")
        self.assertNotEqual(verify.returncode, 0, verify.stdout)
        self.assertIn(self.grant.id, verify.stdout + verify.stderr)

    def test_a_grant_really_ended_is_not_kept(self) -> None:
        """The operator's revocation, a grant a newer routes file replaced, and the rows in force: none is marked,
        and a revocation entry a sidecar wrote (no seal) marks no row in force as revoked."""
        first, second = "routes:\n- a.com\n", "routes:\n- a.com\n- b.com\n"
        for text in (first, second):  # the second's approval ends the first's grant (replaced)
            filed = self.store.submit("web-2", TOOL_EGRESS_BLOCK, text, "docs", current_file=first)
            decide(filed.id, STATUS_APPROVED, store=self.store)
        revoked = self.run_cli("grants", "revoke", self.grant.short_id, "--reason", "no pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        listed = self.run_cli("grants", "list")
        self.assertEqual((listed.returncode, listed.stderr), (0, ""))
        self.assertNotIn("kept by the log", listed.stdout)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}))
        (live,) = self.grants.listing()  # the second routes file's
        self.append_entry("'web-2', 'grant-revoked', 'egress-block', 'root@vm', 'forged', '', "
                          "json_object('grant', :grant)", live.id)
        self.assertEqual(self.grants.against_log().revoked, {})

    def test_an_approval_entry_a_sidecar_wrote_keeps_nothing(self) -> None:
        """A sidecar appends an approval entry recording a grant that has no row: it can write the entry, not seal
        it, so no list shows a grant 'kept by the log' that the host never made (nor a flood of them)."""
        record = {"id": "f" * 32, "tool": TOOL_EGRESS_ALLOW, "subject": {"host": "evil.example", "methods": [],
                                                                         "paths": []},
                  "starts_at": self.grant.starts_at, "ends_at": self.grant.ends_at, "rule_id": None}
        self.append_entry("'web-1', 'approved', 'egress-allow', 'root@host', 'ok', '', "
                          "json_object('grant', json(:grant))", json.dumps(record))
        self.assertEqual(self.grants.against_log().kept, [])
        self.assertNotIn("f" * 8, self.run_cli("grants", "list").stdout)

    def test_a_grant_made_before_a_new_audit_key_is_not_marked(self) -> None:
        """BROKE before the fix: after 'audit new-key', every grant still in force that the earlier key had sealed
        was listed [not in the log], with a warning to revoke it: its seal is the earlier key's, which this host
        no longer checks ('audit verify' holds those entries to their chain)."""
        key_path().rename(self.tmp / "old.key")
        restarted = self.run_cli("audit", "new-key", "--yes")
        self.assertEqual(restarted.returncode, 0, restarted.stderr)
        listed = self.run_cli("grants", "list")
        self.assertEqual((listed.returncode, listed.stderr), (0, ""))
        self.assertIn(f"{self.grant.short_id}\tweb-1", listed.stdout)
        self.assertNotIn(" in the log] ", listed.stdout)
        self.assertEqual(self.grants.against_log(), RowsAgainstLog([], {}))

    def append_entry(self, values: str, grant: str) -> None:
        """A sidecar appends an audit entry with ``values`` (queue_key to details; ``:grant`` is ``grant``),
        linked to the last entry's hash, which it can compute, and with no seal, which it cannot make."""
        self.raw("INSERT INTO audit_log (seq, ts, queue_key, action, tool, actor, notes, diff, details, prev_hash, "
                 f"hash) SELECT max(seq) + 1, ts, {values}, hash, hex(randomblob(32)) FROM audit_log", {"grant": grant})

    def fresh_grant(self, hiding: str) -> Grant:
        """A grant of its own for each hiding: web-1's, then one of another bottle each."""
        if hiding == next(iter(HIDINGS)):
            return self.grant
        return self.grants.find(self.approve(f"web-{3 + list(HIDINGS).index(hiding)}", {"host": "pastebin.com"}))
