"""A row whose id extends the operator's rule's whole id must not block the revocation of that rule.

A sidecar on the mount writes a row into ``rules`` (CHECK constraints off, as
its own connection may have them) whose id is the operator's rule's whole id
and one digit more. Before the fix next to these tests, measured with the
operator's real command line and the dashboard: ``rules revoke`` with the
rule's whole id (as the TUI's ``x`` and the dashboard's button send it) was
refused ("matches several rules: give more digits", though every digit was
given), so no screen could end the rule: the operator's approving pattern
went on approving, and a standing rejection the operator meant to lift went
on rejecting. Now an id given whole names that rule, whatever other row
starts with it.
"""

from __future__ import annotations

import json
import sqlite3
from urllib.parse import urlencode

from bot_bottle.grants import GrantStore
from bot_bottle.records import EFFECT_APPROVE, STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.standing import keep, rules_in_force
from bot_bottle.timestamps import later, utc_now
from tests.helpers.dashboard import DashboardCase
from tests.helpers.host_grants import HostGrantsCase

_FORGE = ("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, "
          "ends_at, created_by, audit_seq) SELECT :id, queue_key, tool, subject, subject_sha256, pattern, effect, "
          "notes, created_at, ends_at, created_by, 999999 FROM rules WHERE id = :real")


class RuleIdExtensionsTest(HostGrantsCase):
    def setUp(self) -> None:
        super().setUp()
        added = json.loads(self.cli("rules", "add", "--all-bottles", "--host", "*.example.com", "--for", "1d",
                                    "--json"))
        self.rule_id = str(added["id"])
        self.asks = 0

    def approved_now(self) -> bool:
        self.asks += 1
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                     json.dumps({"host": "docs.example.com", "paths": [f"/p{self.asks}/"]}), "docs")
        keep(self.store)
        response = self.store.response(proposal.id)
        return response is not None and response.status == STATUS_APPROVED

    def test_the_whole_id_revokes_the_rule_whatever_row_extends_it(self) -> None:
        self.raw(_FORGE, {"id": self.rule_id + "0", "real": self.rule_id}, unchecked=True)
        self.assertTrue(self.approved_now())
        done = self.run_cli("rules", "revoke", self.rule_id, "--reason", "done with it")
        self.assertEqual(done.returncode, 0, "BROKE before the fix: " + done.stderr)
        self.assertIn(f"revoked rule {self.rule_id[:8]}", done.stdout)
        self.assertFalse(self.approved_now(), "revoked: the next ask waits for the operator")

    def test_a_row_whose_id_is_the_short_id_does_not_take_its_revocation(self) -> None:
        # Only a whole id names its row at once: a row with the id the list shows (8 digits) is still one of
        # several, and the operator is asked for more digits, as before.
        self.raw(_FORGE, {"id": self.rule_id[:8], "real": self.rule_id}, unchecked=True)
        again = self.run_cli("rules", "revoke", self.rule_id[:8], "--reason", "done with it")
        self.assertNotEqual(again.returncode, 0, again.stdout)
        self.assertIn("matches several rules", again.stderr)
        self.assertTrue(self.approved_now())

    def test_the_whole_id_revokes_a_grant_whatever_row_extends_it(self) -> None:
        # The same for a grant (the dashboard's grant button sends its whole id too).
        grant_id = self.approve("web-1", {"host": "pypi.org", "paths": ["/simple/"]})
        self.raw("CREATE TABLE grants_copy AS SELECT * FROM grants")
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": "pypi.org"}), "another")
        self.raw("UPDATE grants_copy SET id = id || '0', audit_seq = audit_seq + 999999, proposal_id = :other",
                 {"other": other.id})
        self.raw("INSERT INTO grants SELECT * FROM grants_copy", unchecked=True)
        done = self.run_cli("grants", "revoke", grant_id, "--reason", "done with it")
        self.assertEqual(done.returncode, 0, "BROKE before the fix: " + done.stderr)
        self.assertIsNotNone(self.grants.find(grant_id).revoked_at)
        self.assertIn(f"revoked {grant_id[:8]}", done.stdout)


class DashboardRuleIdExtensionsTest(DashboardCase):
    def test_the_dashboards_button_revokes_the_rule_whatever_row_extends_it(self) -> None:
        grants = GrantStore(database=self.store.db)
        now = utc_now()
        rule = grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=True, effect=EFFECT_APPROVE,
                               subject={"host": "*.example.com", "methods": [], "paths": []}, notes="docs",
                               created_by="ann", ends_at=later(now, 3600), now=now)
        raw = sqlite3.connect(self.path, isolation_level=None)
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")
            raw.execute(_FORGE, {"id": rule.id + "f", "real": rule.id})
        finally:
            raw.close()
        body = urlencode({"csrf": self.dashboard.csrf, "reason": "done with it", "decision": "revoke"}).encode()
        status, _, page = self.call("POST", f"/rule/{rule.id}/revoke", body=body, headers={
            "Origin": self.origin, "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 303, "BROKE before the fix: " + page)
        self.assertEqual({item.rule.id for item in rules_in_force(grants) if item.decides}, set())
