"""A routes file naming a dotless loopback or metadata name in YAML's other forms (review 13).

Review 12 read a dotless name (``localhost``, ``metadata``, ``ip6-localhost``,
``instance-data``) as a host only where a host stands on its line: after a
host key, or as a list item. YAML writes the same value in other ways, each
``host: <name>`` to a YAML reader: the value on the next line (a plain
scalar continued, or a ``>-`` / ``|`` block scalar), or after an anchor
(``&h``) or a tag (``!!str``); and a list written one item a line, as JSON
is most often written (``"localhost",`` alone on its line). Before the fix next to this test, measured
with the agent's real sidecar and the operator's listing: each such file
was summed up as "routes file: names no new host", with no look-alike
warning and no typed yes asked.
"""

from __future__ import annotations

import time

from bot_bottle.policy.approval import approval_of
from bot_bottle.policy.host_text import hosts_in_text
from bot_bottle.records import TOOL_EGRESS_BLOCK
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

FORMS = {"routes:\n  - host:\n      localhost\n": "localhost",
         "routes:\n  - host: &h metadata\n": "metadata",
         "routes:\n  - host: !!str ip6-localhost\n": "ip6-localhost",
         "routes:\n  - host: >-\n      instance-data\n": "instance-data",
         "routes:\n  - host: |-\n      localhost\n": "localhost",
         '{"routes": [{"hosts": [\n  "docs.python.org",\n  "localhost",\n  "pypi.org"\n]}]}\n': "localhost",
         "hosts: [\n  ip6-loopback,\n  pypi.org\n]\n": "ip6-loopback"}


class RoutesFileYamlFormsTest(AddressFormsCase):
    def test_each_form_is_named_and_warned_of(self) -> None:
        for routes, host in FORMS.items():
            with self.subTest(routes=routes):
                approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
                self.assertIn(host, approval.grants[0].removeprefix("routes file: adds ").split(", "))
                self.assertTrue(any(f"host {host} is not what it looks like" in c.text for c in approval.cautions),
                                approval)
                self.assertTrue(approval.needs_confirmation)

    def test_filed_by_the_agent_the_listing_says_so(self) -> None:
        call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": "routes:\n  - host:\n      localhost\n",
                                           "justification": "local tests"})
        (proposal,) = self.listed()
        self.assertIn("adds localhost", proposal["grants"]["summary"])
        self.assertTrue(any(w["kind"] == "look-alike" for w in proposal["grants"]["warnings"]), proposal["grants"])

    def test_prose_naming_such_a_word_is_no_host(self) -> None:
        """No false alarm: a comment, a path, or a word among others on a line."""
        routes = ("# keep metadata out\nroutes:\n  - host: docs.python.org\n    paths: [/v1/metadata/]\n"
                  "    note: fetches package metadata\n")
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
        self.assertEqual([caution.text for caution in approval.cautions], [])
        self.assertFalse(approval.needs_confirmation)

    def test_a_line_of_anchors_is_read_in_linear_time(self) -> None:
        """'[&[&[&...' holds a place at each '[': an anchor is read only so far (no quadratic backtracking)."""
        began = time.monotonic()
        hosts_in_text("localhost " + "[&" * 32000)
        self.assertLess(time.monotonic() - began, 1.0)
