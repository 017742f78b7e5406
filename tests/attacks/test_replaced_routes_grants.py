"""A routes file the operator replaced cannot come back through its own grant.

Hostile review 51: approving an ``egress-block`` grants its file (its
sha256, for 7 days), and the same file filed again is answered by that grant
while it is in force. The operator approved a file naming
``evil-exfil.example.net``, then one dropping it; the sidecar filed the first
again, was answered "approved" by the first grant, still in force, and put
the host back with no one asked. Approving a routes file now ends the
bottle's other routes grants, each with an audit entry.
"""

from __future__ import annotations

import json

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import STATUS_APPROVED, STATUS_MODIFIED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, Proposal
from tests.cli.test_proposals_cmds import CliTestCase

FIRST = "routes:\n- a.com\n"
WITH_EVIL = "routes:\n- a.com\n- evil-exfil.example.net\n"
DROPPED = "routes:\n- a.com\n- b.com\n"


class ReplacedRoutesGrantTest(CliTestCase):
    def file(self, payload: str, current: str | None, bottle: str = "web-1") -> Proposal:
        return self.store.submit(bottle, TOOL_EGRESS_BLOCK, payload, "routine update", current_file=current)

    def live(self, bottle: str = "web-1", tool: str = TOOL_EGRESS_BLOCK) -> list[str]:
        with GrantStore(self.store.db.path) as grants:
            return [grant.proposal_id for grant in grants.live(bottle, tool)]

    def test_the_replaced_file_filed_again_asks_the_operator(self) -> None:
        evil = self.file(WITH_EVIL, FIRST)
        decide(evil.id, STATUS_APPROVED, store=self.store)
        self.assertEqual(self.file(WITH_EVIL, FIRST).id, evil.id)  # filed again now: its grant answers
        dropping = self.file(DROPPED, WITH_EVIL)
        decide(dropping.id, STATUS_APPROVED, store=self.store)
        self.assertEqual(self.live(), [dropping.id])
        again = self.file(WITH_EVIL, FIRST)  # the sidecar files the replaced file again, word for word
        self.assertNotEqual(again.id, evil.id)
        self.assertIsNone(self.store.response(again.id), "a new proposal: the operator is asked")
        # Ended with an entry that names what replaced it, and the log still verifies.
        code, out, _ = self.cli("grants", "list", "--all", "--json")
        self.assertEqual(code, 0)
        ended = [grant for grant in json.loads(out) if grant["proposal_id"] == evil.id]
        self.assertEqual(len(ended), 1)
        self.assertIn(f"replaced by the routes file approved on proposal {dropping.short_id}",
                      ended[0]["revoke_reason"])
        code, out, err = self.cli("audit", "verify")
        self.assertEqual(code, 0, out + err)

    def test_a_modification_replaces_too_and_other_grants_stand(self) -> None:
        evil = self.file(WITH_EVIL, FIRST)
        decide(evil.id, STATUS_APPROVED, store=self.store)
        elsewhere = self.file(WITH_EVIL, FIRST, bottle="web-2")
        decide(elsewhere.id, STATUS_APPROVED, store=self.store)
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(route.id, STATUS_APPROVED, store=self.store)
        modified = self.file(WITH_EVIL + "- c.example\n", WITH_EVIL)
        decide(modified.id, STATUS_MODIFIED, final_file=DROPPED, store=self.store)
        self.assertEqual(self.live(), [modified.id])
        self.assertEqual(self.live("web-2"), [elsewhere.id], "another bottle's routes file is its own")
        self.assertEqual(self.live(tool=TOOL_EGRESS_ALLOW), [route.id], "a route is no routes file")
