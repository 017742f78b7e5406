"""A standing rule the operator typed as a pattern never approves a name under it that every screen asks about
twice for a kind the pattern was not (``policy.approval.asked_beyond``), through the agent's real sidecar.

The attack: the operator keeps ``*.example.com`` approved for a week (an
ordinary rule: nothing about it is flagged). The agent then asks, through its
real sidecar, for ``10-0-0-5.example.com`` and ``169.254.169.254.example.com``:
names under that pattern that spell a private address and the metadata
service's, each a look-alike that reaches inside, which every screen asks
about twice. BROKE before the fix: the rule approved both at the next look,
grants and all, and the sidecar let requests to them through; the operator
was never asked. Now they wait for the operator, badges shown, while the
rule still approves the plain name under it, and the sidecar refuses them. A
rule for exactly one subject was asked about as that subject (``rules add``
asks for a typed yes), so it still decides it.
"""

from __future__ import annotations

from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

HIDDEN = ("10-0-0-5.example.com", "169.254.169.254.example.com", "xn--pypi-abc.example.com")


class PatternRuleTest(AddressFormsCase):
    def test_a_pattern_leaves_what_is_asked_twice_to_the_operator(self) -> None:
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "*.example.com", "--for", "7d",
                             "--notes", "our preview hosts")
        self.assertEqual(added.returncode, 0, added.stderr)
        asked = {host: call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "a preview build"})
                 for host in (*HIDDEN, "docs.example.com")}
        listed = {p["id"]: p for p in self.listed()}  # the look that applies the rules
        with QueueStore() as store:
            for host, answer in asked.items():
                with self.subTest(host=host):
                    response = store.response(answer["proposal_id"])
                    if host == "docs.example.com":
                        self.assertEqual(response.status if response else None, STATUS_APPROVED)
                        continue
                    self.assertIsNone(response, f"the pattern approved {host}")
                    shown = listed[answer["proposal_id"]]["grants"]
                    self.assertTrue(shown["warnings"], shown)  # waiting, its badges shown
            grants = EgressGrants(store.for_bottle("web-1"))
            self.assertTrue(grants.allows_route("docs.example.com", "GET", "/"))
            for host in HIDDEN:
                self.assertFalse(grants.allows_route(host, "GET", "/latest/meta-data/"), host)

    def test_a_rule_for_exactly_that_host_still_decides_it(self) -> None:
        """The operator typed yes for 10-0-0-5.example.com itself: its rule approves the next ask for it."""
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "10-0-0-5.example.com", "--for", "1d",
                             "--yes")
        self.assertEqual(added.returncode, 0, added.stderr)
        answer = call(self.url, TOOL_EGRESS_ALLOW, {"host": "10-0-0-5.example.com", "justification": "the lab"})
        self.listed()
        with QueueStore() as store:
            response = store.response(answer["proposal_id"])
        self.assertEqual(response.status if response else None, STATUS_APPROVED)
        with GrantStore() as grants:  # closed: a connection left to the GC warns on a later CLI call's stderr
            self.assertEqual(len(grants.listing("web-1")), 1)
