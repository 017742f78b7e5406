"""What decides, shown and ended: standing rules whose rows a sidecar deleted, ended or forged.

A sidecar on the mount can write the database file but not the sealed
audit log, so a standing rejection whose row it deletes or marks revoked
still decides, from its logged entry (``audit.rule_proofs.logged_rejections``), and
a rule row it writes decides nothing. Before the fix next to these tests,
measured with the operator's real command line: after the sidecar deleted
the row of the operator's rejection of pastebin.com, ``rules list`` said
"no rules in force" while every proposal for pastebin.com was still
rejected "by standing rule" whose id no command knew, and ``rules revoke``
refused it ("no rule id starts with ..."); with the row marked revoked
instead, ``rules revoke`` said it was "not in force" while it rejected; and
a forged approving row was listed as in force. Now the list shows what
decides, says where the file and the log disagree, and revoke ends the rule
the log keeps.
"""

from __future__ import annotations

import json
import secrets

from bot_bottle.records import STATUS_REJECTED, TOOL_EGRESS_ALLOW
from bot_bottle.standing import keep
from tests.helpers.host_grants import HostGrantsCase


class KeptRulesTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        self.cli("db", "upgrade")
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject",
                                    "--notes", "no paste sites", "--json"))
        self.rule_id = str(added["id"])
        self.asks = 0

    def rejected_now(self) -> bool:
        """Whether the agent's next ask for pastebin.com is rejected by a standing rule, as the keeper decides."""
        self.asks += 1  # each ask its own path: an identical pending one would be the same proposal
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                     json.dumps({"host": "pastebin.com", "paths": [f"/p{self.asks}/"]}), "paste")
        keep(self.store)
        response = self.store.response(proposal.id)
        return response is not None and response.status == STATUS_REJECTED

    def listed(self) -> list[dict[str, object]]:
        listing: list[dict[str, object]] = json.loads(self.cli("rules", "list", "--json"))
        return listing

    def assert_shown_and_revocable(self) -> None:
        self.assertTrue(self.rejected_now(), "the log keeps the rejection in force")
        (shown,) = self.listed()
        self.assertEqual((shown["id"], shown["decides"]), (self.rule_id, True))
        self.assertIn("kept by the audit log", str(shown["note"]))
        table = self.cli("rules", "list")
        self.assertIn(self.rule_id[:8], table)
        self.assertIn(f"WARNING: rule {self.rule_id[:8]}: kept by the audit log", table)
        self.assertIn("revoked rule", self.cli("rules", "revoke", self.rule_id[:8], "--reason", "paste is fine now"))
        self.assertFalse(self.rejected_now(), "revoked: the next ask waits for the operator")
        self.assertEqual(self.listed(), [])
        verified = self.run_cli("audit", "verify")  # what the sidecar did to the file stays named
        self.assertNotEqual(verified.returncode, 0)
        self.assertIn(f"rule {self.rule_id}", verified.stderr)

    def test_a_rejection_whose_row_was_deleted_is_listed_and_revoked(self) -> None:
        self.raw("DROP TRIGGER rules_no_delete")  # the sidecar's own file: its triggers are no wall
        self.raw("DELETE FROM rules WHERE id = :id", {"id": self.rule_id})
        self.assert_shown_and_revocable()

    def test_a_rejection_whose_row_was_marked_revoked_is_listed_and_revoked(self) -> None:
        self.raw("UPDATE rules SET revoked_at = '2026-01-01T00:00:00.000000Z', revoked_by = 'sidecar', "
                 "revoke_reason = 'x' WHERE id = :id", {"id": self.rule_id}, unchecked=True)
        self.assert_shown_and_revocable()

    def test_a_forged_rule_row_is_listed_as_deciding_nothing(self) -> None:
        forged = secrets.token_hex(16)
        self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                 "created_at, ends_at, created_by, audit_seq) SELECT :id, 'web-1', tool, "
                 "'{\"host\": \"evil.example\", \"methods\": [], \"paths\": []}', subject_sha256, 0, 'approve', "
                 "'looks fine', created_at, '2099-01-01T00:00:00.000000Z', created_by, 999999 FROM rules "
                 "WHERE id = :real", {"id": forged, "real": self.rule_id})
        shown = {str(item["id"]): item for item in self.listed()}
        self.assertTrue(shown[self.rule_id]["decides"])
        self.assertFalse(shown[forged]["decides"])
        self.assertIn("decides nothing", str(shown[forged]["note"]))
        self.assertIn(f"WARNING: rule {forged[:8]}: decides nothing", self.cli("rules", "list"))
        # Revoked, it is not reported as a rule whose grants stay: it decided nothing and made none.
        done = self.cli("rules", "revoke", forged[:12], "--reason", "not mine")
        self.assertIn(f"revoked rule {forged[:8]}, which decided nothing and made no grant (", done)
        self.assertNotIn("the grants it made stay", done)
        self.assertEqual(self.run_cli("audit", "verify").returncode, 1)  # the forged row stays named

    def test_a_forged_row_sharing_the_kept_rules_short_id_does_not_take_its_revocation(self) -> None:
        # The sidecar deletes the rejection's row and writes one of its own whose id starts with the same 8
        # digits, the short id the list shows for both. Before: 'rules revoke' with that short id revoked the
        # forged row and said "revoked rule ..." while every ask for pastebin.com was still rejected.
        self.raw("DROP TRIGGER rules_no_delete")
        forged = self.rule_id[:8] + ("1" if self.rule_id[8] == "0" else "0") + self.rule_id[9:]
        self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                 "created_at, ends_at, created_by, audit_seq) SELECT :id, queue_key, tool, subject, subject_sha256, "
                 "pattern, effect, notes, created_at, ends_at, created_by, 999999 FROM rules WHERE id = :real",
                 {"id": forged, "real": self.rule_id})
        self.raw("DELETE FROM rules WHERE id = :id", {"id": self.rule_id})
        done = self.run_cli("rules", "revoke", self.rule_id[:8], "--reason", "paste is fine now")
        self.assertNotEqual(done.returncode, 0, done.stdout)
        self.assertIn("matches several rules", done.stderr)
        self.assertIn(self.rule_id, done.stderr)
        self.assertIn(forged, done.stderr)
        self.assertTrue(self.rejected_now(), "nothing was revoked, and nothing said it was")
        self.assertIn("revoked rule", self.cli("rules", "revoke", self.rule_id, "--reason", "paste is fine now"))
        self.assertFalse(self.rejected_now(), "the whole id ends the rule the log keeps")

    def test_a_blob_in_a_rule_row_stops_nothing(self) -> None:
        # SQLite keeps whatever type it is given: bot-bottle never writes a blob, a sidecar can. Before, one
        # row with a blob id stopped the keeper's every look ("standing rules and expiry paused": the
        # rejection of pastebin.com no longer applied, on any bottle) and made 'rules list' crash.
        for statement in ("CREATE TABLE rules_copy AS SELECT * FROM rules", "DROP TABLE rules",  # STRICT no more
                          "ALTER TABLE rules_copy RENAME TO rules"):
            self.raw(statement)
        self.raw("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                 "created_at, ends_at, created_by, audit_seq) SELECT x'ff00', NULL, tool, subject, subject_sha256, "
                 "0, 'approve', x'1b5b324a', created_at, '2099-01-01T00:00:00.000000Z', created_by, 999999 "
                 "FROM rules WHERE id = :real", {"real": self.rule_id}, unchecked=True)
        self.assertTrue(self.rejected_now(), "the standing rejection still applies")
        shown = {str(item["id"]): item for item in self.listed()}
        self.assertEqual((shown[self.rule_id]["decides"], shown["x'ff00'"]["decides"]), (True, False))
        self.assertIn("WARNING: rule x'ff00': decides nothing", self.cli("rules", "list"))

    def test_a_second_row_with_a_deciding_rules_id_does_not_say_it_decides_nothing(self) -> None:
        # The sidecar rebuilds the table without its key and adds a changed copy of the proven rejection's row.
        # Before: 'rules list' showed the rejection, and twice more "WARNING: rule ID: decides nothing", its
        # JSON had that id deciding and not, and the inbox said "rule ID decides nothing" while it rejected.
        for statement in ("CREATE TABLE rules_copy AS SELECT * FROM rules", "DROP TABLE rules",
                          "ALTER TABLE rules_copy RENAME TO rules"):
            self.raw(statement)
        self.raw("INSERT INTO rules SELECT id, queue_key, tool, subject, subject_sha256, pattern, effect, "
                 "'changed', created_at, ends_at, created_by, proposal_id, audit_seq, revoked_at, revoked_by, "
                 "revoke_reason, revoke_seq, confirmed FROM rules WHERE id = :real", {"real": self.rule_id})
        said: list[str] = []
        keep(self.store, unproven=lambda rule_id, why: said.append(rule_id))
        self.assertEqual(said, [])
        self.assertTrue(self.rejected_now())
        self.assertEqual([(item["id"], item["decides"]) for item in self.listed()], [(self.rule_id, True)])
        self.assertNotIn("decides nothing", self.cli("rules", "list"))
        # Nor does the copy block its revocation (before: "'ID' matches several rules (ID, ID)", for any id).
        self.assertIn("revoked rule", self.cli("rules", "revoke", self.rule_id[:8], "--reason", "paste is fine"))
        self.assertFalse(self.rejected_now())

    def test_a_rewritten_entry_does_not_revoke_a_rejection(self) -> None:
        # The sidecar rewrites a sealed entry in the middle of the log (its hash and seal no longer match) into
        # a 'rule-revoked' naming the operator's rejection of secret.example.com. Before: that rejection
        # decided nothing, and the operator's approving '*.example.com' rule approved the agent's proposal
        # for secret.example.com, in the keeper of any process that read the log afresh.
        secret, entry = self.secret_rejected_and_a_wildcard_approved()
        self.raw("DROP TRIGGER audit_log_no_update")
        self.raw("UPDATE audit_log SET action = 'rule-revoked', details = :details WHERE seq = :seq",
                 {"details": json.dumps({"rule": secret, "revoked_at": "2026-01-01T00:00:00.000000Z"}),
                  "seq": entry})
        self.assert_secret_rejected_by(secret)
        self.assertIn((secret, True), [(item["id"], item["decides"]) for item in self.listed()])
        self.assertIn(f"entry {entry} does not match its hash", self.run_cli("audit", "verify").stderr)
        # The operator's own revocation, sealed, still ends it (from now on, for this process too).
        self.cli("rules", "revoke", secret, "--reason", "fine now")
        self.assertNotIn(secret, [item["id"] for item in self.listed()])

    def test_a_rewritten_entry_claiming_a_kept_rejections_id_does_not_end_it(self) -> None:
        # The sidecar deletes the row of the rejection of secret.example.com and rewrites a later sealed
        # rule-added entry to carry that rejection's id. Before: the log's reading took the later entry for the
        # rejection, which it could not prove, so the rejection decided nothing ('rules list' did not show it)
        # and the approving '*.example.com' rule approved the agent's proposal for secret.example.com.
        secret, entry = self.secret_rejected_and_a_wildcard_approved()
        self.raw("DROP TRIGGER rules_no_delete")
        self.raw("DELETE FROM rules WHERE id = :id", {"id": secret})
        self.raw("DROP TRIGGER audit_log_no_update")
        self.raw("UPDATE audit_log SET details = json_set(details, '$.rule.id', :id) WHERE seq = :seq",
                 {"id": secret, "seq": entry})
        self.assert_secret_rejected_by(secret)
        self.assertIn((secret, True), [(item["id"], item["decides"]) for item in self.listed()])

    def secret_rejected_and_a_wildcard_approved(self) -> tuple[str, int]:
        """The operator's rejection of secret.example.com, an approving '*.example.com' rule, and two more
        rejections: the rejection's id, and the seq of a later sealed entry a sidecar can rewrite."""
        secret = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "secret.example.com", "--reject",
                                     "--notes", "never", "--json"))["id"]
        self.cli("rules", "add", "--all-bottles", "--host", "*.example.com", "--for", "1d", "--notes", "ok")
        self.cli("rules", "add", "--all-bottles", "--host", "other.org", "--reject")
        self.cli("rules", "add", "--all-bottles", "--host", "more.org", "--reject")
        return str(secret), self.rule_seq("other.org")

    def assert_secret_rejected_by(self, secret: str) -> None:
        """The agent asks for secret.example.com; a fresh process's look (its keeper reads the log whole)
        rejects it by the operator's rejection, not the wildcard's approval."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                     json.dumps({"host": "secret.example.com", "paths": ["/x/"]}), "exfil")
        self.run_cli("proposals", "list")
        response = self.store.response(proposal.id)
        self.assertEqual((response.status, response.decided_by) if response else None,
                         (STATUS_REJECTED, f"rule {secret}"))

    def rule_seq(self, host: str) -> int:
        (shown,) = [item for item in json.loads(self.cli("rules", "list", "--json"))
                    if item["subject"]["host"] == host]
        return int(shown["audit_seq"])

    def test_a_blob_in_a_grant_row_does_not_stop_a_rejecting_rule(self) -> None:
        # Before: with a blob id in one grants row, 'rules add --reject' over a live grant failed with a
        # traceback (the grant it must end could not be sorted), so the operator could add no standing
        # rejection of what that grant let through; 'grants list' crashed too.
        grant = self.approve("web-1", {"host": "example.org", "paths": ["/a/"]})
        for statement in ("CREATE TABLE grants_copy AS SELECT * FROM grants", "DROP TABLE grants",
                          "ALTER TABLE grants_copy RENAME TO grants"):
            self.raw(statement)
        self.raw("INSERT INTO grants SELECT x'ff00', queue_key, tool, subject, subject_sha256, starts_at, ends_at, "
                 "proposal_id, rule_id, decided_by, 999999, revoked_at, revoked_by, revoke_reason, revoke_seq "
                 "FROM grants")
        self.assertIn("x'ff00'", self.cli("grants", "list"))
        added = self.cli("rules", "add", "--all-bottles", "--host", "example.org", "--reject")
        self.assertIn(f"it ended grant {grant[:8]}", added)

    def test_an_unknown_id_is_still_one_clear_error(self) -> None:
        done = self.run_cli("rules", "revoke", "abcdef12", "--reason", "x")
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("no rule id starts with 'abcdef12'", done.stderr)
        self.assertTrue(self.rejected_now())
