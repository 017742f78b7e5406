"""Standing rejections against a sidecar that writes the database file: the rule's row removed or rewritten.

The operator's rules, typed with the real command line: approve the
company's hosts (``*.example.com``), but never the secrets host
(``secret.example.com --reject``). A sidecar on the mount can write any row,
and drop the triggers that refuse a DELETE or an UPDATE.

Before the fix next to these tests, the standing rules were read from the
``rules`` table alone: a rule the log proves decides, but a rule whose row
is gone decides nothing. The sidecar deleted the rejection's row (or ended,
revoked or rewrote it in the file); the agent, through its real sidecar,
asked for secret.example.com; the operator's next ``proposals list`` said
"no pending proposals", and the approving rule had sealed an approval with a
grant that let GET secret.example.com through. Only ``audit verify`` said
anything ("entry 2 records rule ..., but the rule is gone"). Now a rejecting
rule is also read from its sealed ``rule-added`` entry
(``audit.rule_proofs.logged_rejections``); a revocation the log records still ends it.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.launcher import spawn
from tests.attacks.test_standing_rejections import call
from tests.helpers.support import TempDirTest

# What the sidecar does to the rejection's row, with the table's triggers dropped first.
TAMPERING = {
    "deleted": "DELETE FROM rules WHERE effect = 'reject'",
    "ended": "UPDATE rules SET ends_at = '2999-01-01T00:00:00.000000Z', created_at = '2998-01-01T00:00:00.000000Z' "
             "WHERE effect = 'reject'",
    "revoked in the file": "UPDATE rules SET revoked_at = created_at, revoked_by = 'operator', "
                           "revoke_reason = 'done', revoke_seq = audit_seq WHERE effect = 'reject'",
    "rewritten": "UPDATE rules SET subject = '{\"host\":\"other.example.com\",\"methods\":[],\"paths\":[]}' "
                 "WHERE effect = 'reject'",
    "made approving": "UPDATE rules SET effect = 'approve', ends_at = '2999-01-01T00:00:00.000000Z' "
                      "WHERE effect = 'reject'",
}


class LostRejectionTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        for args in (("--host", "*.example.com", "--for", "30d", "--notes", "the company's hosts"),
                     ("--host", "secret.example.com", "--reject", "--notes", "never the secrets host")):
            added = self.run_cli("rules", "add", "--all-bottles", *args)
            self.assertEqual(added.returncode, 0, added.stderr)
        server, self.url = spawn("web-1", host_db_path(), "--wait-seconds", "1")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=10)))

    def tamper(self, sql: str) -> None:
        """As a sidecar on the mount: drop the rules table's triggers, then change the rejection's row."""
        conn = sqlite3.connect(host_db_path())
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'rules'"
                                        ).fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.execute("PRAGMA ignore_check_constraints = ON")
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def ask(self, **route: Any) -> dict[str, Any]:
        filed = call(self.url, TOOL_EGRESS_ALLOW, {**route, "justification": "for the build"})
        listed = self.run_cli("proposals", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        return call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})

    def test_a_rejection_whose_row_a_sidecar_changed_still_rejects(self) -> None:
        for how, sql in TAMPERING.items():
            with self.subTest(how=how):
                self.setUp_again(sql)
                answer = self.ask(host="secret.example.com", methods=["GET"], paths=[f"/{how.split()[0]}/"])
                self.assertEqual(answer["status"], "rejected", f"row {how}: {answer}")
                self.assertIn("never the secrets host", answer["notes"])
                with QueueStore() as store:
                    allowed = EgressGrants(store.for_bottle("web-1"))
                    self.assertFalse(allowed.allows_route("secret.example.com", "GET", f"/{how.split()[0]}/x"))

    def setUp_again(self, sql: str) -> None:
        """Each way starts from the operator's rules as typed: a fresh home, the rules added, the row changed."""
        self.doCleanups()
        self.setUp()
        self.tamper(sql)

    def test_a_revocation_the_log_records_still_ends_it(self) -> None:
        listed = self.run_cli("rules", "list", "--json")
        rule = next(r for r in json.loads(listed.stdout) if r["effect"] == "reject")
        revoked = self.run_cli("rules", "revoke", rule["id"], "--reason", "the secrets moved")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        listed = self.run_cli("proposals", "list")
        self.assertNotIn("decides nothing", listed.stdout + listed.stderr)  # a revoked rule is no warning
        self.tamper(TAMPERING["deleted"])
        self.assertEqual(self.ask(host="secret.example.com")["status"], "approved")
