"""A rule row's revoke button on the dashboard posts to that row's rule and nowhere else.

A sidecar on the mount writes a row into ``rules`` (CHECK constraints off,
as its own connection may have them) whose id is a path: ``../rule/ID``,
where ID is the operator's standing rejection. The bottles page lists the
row as deciding nothing, with its own revoke button, whose form's address
was built from the id: ``ROOT/rule/../rule/ID/revoke``, which the browser
resolves to ``ROOT/rule/ID/revoke``. Before the fix next to these tests,
measured in headless Chromium: the operator, clearing away the row that
decides nothing, typed a reason and pressed its button, and the operator's
rejection was revoked instead (with a ``rule-revoked`` entry in their name).
Now a row whose id is not one bot-bottle writes gets no button: it decides
nothing, and 'rules revoke' with its id (as 'rules list' shows it) ends it.
"""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import EFFECT_REJECT, STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.standing import rules_in_force
from bot_bottle.timestamps import utc_now
from tests.helpers.dashboard import BrowserCase


class RuleRevokePathsTest(BrowserCase):
    def setUp(self) -> None:
        super().setUp()
        self.grants = GrantStore(database=self.store.db)
        self.real = self.grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_REJECT,
                                         subject={"host": "pastebin.com", "methods": [], "paths": []},
                                         notes="no paste sites", created_by="ann", ends_at=None, now=utc_now())

    def forge(self, statement: str, params: dict[str, str]) -> None:
        raw = sqlite3.connect(self.path, isolation_level=None)
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")
            raw.execute(statement, params)
        finally:
            raw.close()

    def test_a_forged_rule_rows_button_does_not_revoke_the_operators_rejection(self) -> None:
        real = self.real
        self.forge("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                   "created_at, ends_at, created_by, audit_seq) SELECT :id, 'web-1', tool, "
                   "'{\"host\": \"evil.example\", \"methods\": [], \"paths\": []}', subject_sha256, 0, "
                   "'approve', 'stale row', created_at, '2099-01-01T00:00:00.000000Z', created_by, 999999 "
                   "FROM rules WHERE id = :real", {"id": f"../rule/{real.id}", "real": real.id})
        self.press_revoke("rules")

    def test_a_forged_grant_rows_button_does_not_revoke_the_operators_rejection(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": "pypi.org"}), "pip")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        other = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": "evil.example"}), "x")
        self.forge("INSERT INTO grants SELECT :id, queue_key, tool, "
                   "'{\"host\": \"evil.example\", \"methods\": [], \"paths\": []}', subject_sha256, "
                   "starts_at, ends_at, :other, rule_id, decided_by, audit_seq + 999999, revoked_at, revoked_by, "
                   "revoke_reason, revoke_seq FROM grants", {"id": f"../rule/{self.real.id}", "other": other.id})
        self.press_revoke("grants")

    def press_revoke(self, part: str) -> None:
        """The operator clears away the row for evil.example: a reason typed, its revoke button pressed."""
        real = self.real
        self.log_in()
        self.open("/bottles")
        self.settle()
        shown = self.browser.text()
        posted = self.browser.script(
            f"const row = [...document.querySelectorAll('[data-part={part}] tr')]"
            "  .find(tr => tr.textContent.includes('evil.example'));"
            "const form = row && row.querySelector('form');"
            "if (!form) { return null; }"
            "form.querySelector('input[name=reason]').value = 'a stale row';"
            "const action = form.action; form.querySelector('button[value=revoke]').click(); return action;")
        if posted is not None:
            self.assertNotIn(f"/rule/{real.id}/revoke", posted, "BROKE before the fix: the button posts there")
        self.settle()
        deciding = {item.rule.id for item in rules_in_force(self.grants) if item.decides}
        self.assertEqual(deciding, {real.id}, "BROKE before the fix: the forged row's button revoked the rejection")
        self.assertIsNone(posted, "a row whose id bot-bottle never writes gets no button")
        self.assertIn("not bot-bottle's id", shown)
