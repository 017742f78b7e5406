"""What a daily operator reads from the less-visited verbs (``rules``, ``bottles``, ``audit``, ``relay``, ``db``)
says the same thing the same way everywhere, and says nothing untrue.

Each test names what it broke before its fix.
"""

from __future__ import annotations

import json

from bot_bottle.grants import GrantStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.cli.test_proposals_cmds import CliTestCase


class NewRuleLineTest(CliTestCase):
    def test_rules_add_and_remember_answer_a_new_rule_in_the_same_words(self) -> None:
        """BROKE before the fix: 'rules add' answered 'rule X: approve HOST (...) for web-1, 7d', and '--remember'
        'rule Y: approves the same again for web-1, until T (7d) ('rules revoke Y' ends it)': two wordings of one
        thing, and only one said how to end it."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        code, out, err = self.approve(filed, "--for", "7d", "--remember", "bottle")
        self.assertEqual((code, err), (0, ""))
        remembered = GrantStore(database=self.store.db).remembered_by_decision(filed.id)
        assert remembered is not None
        self.assertIn(f"rule {remembered['id'][:8]}: approves the same again for web-1, until "
                      f"{remembered['ends_at']} (7d) ('rules revoke {remembered['id'][:8]}' ends it)", out)
        code, out, err = self.cli("rules", "add", "--bottle", "web-1", "--host", "docs.python.org", "--for", "7d")
        self.assertEqual((code, err), (0, ""))
        added = json.loads(self.cli("rules", "list", "--json")[1])[0]
        self.assertEqual(out.splitlines()[0],
                         f"rule {added['id'][:8]}: approves docs.python.org (any method; every path) for web-1, "
                         f"until {added['ends_at']} (7d) ('rules revoke {added['id'][:8]}' ends it)")
        code, out, err = self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.assertEqual((code, err), (0, ""))
        added = json.loads(self.cli("rules", "list", "--json")[1])[0]
        self.assertEqual(out.splitlines()[0],
                         f"rule {added['id'][:8]}: rejects pastebin.com (any method; every path) for every bottle, "
                         f"for good ('rules revoke {added['id'][:8]}' ends it)")
