"""The dashboard flags a routes file naming a host a standing rejection in force rejects, asks twice, and refuses a
form read before the rejection was made (review 68)."""

from __future__ import annotations

import re

from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import subject_of
from bot_bottle.records import EFFECT_REJECT, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.helpers.dashboard import DashboardCase

BEFORE = "routes:\n- pypi.org\n- crates.io\n"
AFTER = BEFORE + "- static.crates.io\n"


class RoutesRejectedDashboardTest(DashboardCase):
    def reject(self, host: str, bottle: str | None = "web-1") -> str:
        with GrantStore(database=self.store.db) as grants:
            rule = grants.add_rule(queue_key=bottle, tool=TOOL_EGRESS_ALLOW, pattern="*" in host,
                                   subject=subject_of(TOOL_EGRESS_ALLOW, f'{{"host": "{host}"}}'),
                                   effect=EFFECT_REJECT, notes="never", ends_at=None, created_by="operator")
        return rule.short_id

    def test_the_page_names_it_asks_twice_and_a_form_read_before_the_rule_records_nothing(self) -> None:
        record_launch_routes(self.store, "web-1", BEFORE)
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, AFTER, "crates mirror", current_file=BEFORE)
        status, _, page = self.call("GET", f"/proposal/{proposal.id}")
        self.assertEqual(status, 200)
        (read_before,) = set(re.findall(r'name="read" value="([0-9a-f]{64})"', page))
        rule = self.reject("*.crates.io", None)
        status, _, page = self.call("GET", f"/proposal/{proposal.id}")
        self.assertIn(f"names static.crates.io, which standing rejection {rule} rejects for every bottle: a rule "
                      "decides egress-allow proposals, so approving this grants it all the same", page)
        _, _, inbox = self.call("GET", "/")
        self.assertIn("badge-rejected", inbox)
        # The form the page carried before the rule: refused, nothing recorded.
        status, _, body = self.post(proposal, "decide", {"status": "approved", "notes": "", "read": read_before})
        self.assertEqual(status, 409, body)
        self.assertIn("a standing rejection for it was made or ended since", body)
        self.assertIsNone(self.store.response(proposal.id))
        # Read now: the approval is asked a second time, naming why, and not recorded until it is answered.
        (read_now,) = set(re.findall(r'name="read" value="([0-9a-f]{64})"', page))
        status, _, body = self.post(proposal, "decide", {"status": "approved", "notes": "", "read": read_now})
        self.assertEqual(status, 200, body)
        self.assertIn("grants a host a standing rejection rejects (rejected)", body)
        self.assertIsNone(self.store.response(proposal.id))
        token = re.findall(r'name="confirm" value="([^"]+)"', body)
        self.assertEqual(len(token), 1, body)
        status, _, body = self.post(proposal, "decide", {"status": "approved", "notes": "", "read": read_now,
                                                         "confirm": token[0]})
        self.assertEqual(status, 303, body)
        self.assertIsNotNone(self.store.response(proposal.id))
