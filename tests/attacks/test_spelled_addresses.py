"""Names that spell an address: the metadata service behind a name that reads like a site.

Wildcard DNS services answer each name under them with the address it
spells: ``169.254.169.254.nip.io``, ``169-254-169-254.sslip.io`` and
``app-a9fea9fe.nip.io`` all resolve to 169.254.169.254, the cloud's metadata
service; ``localtest.me`` and every ``*.localhost`` to 127.0.0.1; and any
domain's owner can answer ``10.0.0.1.example.com`` with 10.0.0.1. Before the
fix next to these tests, the agent filed such routes through its real
sidecar and every screen showed them as ordinary names with no warning (no
typed ``yes`` asked), ``*.nip.io`` (every address there is) was an ordinary
wildcard, and the operator's ``rules add --host 169.254.169.254 --reject``
let ``169.254.169.254.nip.io`` wait for an approval, and left a grant for it
in force. Now each is a look-alike named as the address it reaches
(``policy.hosts.spelled_address``), ``*.nip.io`` widens, and a rejection
of the address is one of the name too (``policy.subjects.rule_overlaps``).
"""

from __future__ import annotations

import json
import unittest

from bot_bottle.policy.approval import approval_of
from bot_bottle.policy.hosts import spelled_address
from bot_bottle.policy.routes import host_is_wide
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

SPELLED = {"169.254.169.254.nip.io": "169.254.169.254", "169-254-169-254.sslip.io": "169.254.169.254",
           "app-a9fea9fe.nip.io": "169.254.169.254", "www.10.0.0.1.sslip.io": "10.0.0.1",
           "10.0.0.1.example.com": "10.0.0.1", "build-10-1-2-3.example.org": "10.1.2.3",
           "localtest.me": "127.0.0.1", "admin.localhost": "127.0.0.1", "a.lvh.me": "127.0.0.1"}


class SpelledAddressTest(AddressFormsCase):
    def test_a_name_that_spells_an_address_is_named_as_that_address(self) -> None:
        """Each filed by the agent: a look-alike warning naming the address, so approving asks for a typed yes."""
        shown = self.look_alike_warnings(SPELLED)
        self.assertEqual(set(shown), set(SPELLED))
        for host, (_, warnings) in shown.items():
            self.assertIn(f"a client connects to {SPELLED[host]}" if SPELLED[host] != "127.0.0.1"
                          else "127.0.0.1, the loopback", warnings[0], host)
            self.assertTrue(approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}), None).needs_confirmation)
        printed = self.run_cli("proposals", "show", shown["169.254.169.254.nip.io"][0])
        self.assertIn("WARNING: look-alike", printed.stdout)

    def test_a_wildcard_over_a_wildcard_dns_service_widens(self) -> None:
        """*.nip.io reads as one domain's subdomains; it is every address: flagged as widening, a look-alike, and
        internal (the metadata service and this machine are among the addresses it covers)."""
        call(self.url, TOOL_EGRESS_ALLOW, {"host": "*.nip.io", "justification": "the build cache"})
        (proposal,) = self.listed()
        kinds = [w["kind"] for w in proposal["grants"]["warnings"]]
        self.assertEqual(sorted(kinds), ["internal", "look-alike", "widens"], proposal["grants"])
        self.assertIn("every address: nip.io is a wildcard DNS service", proposal["grants"]["warnings"][0]["text"])

    def test_a_routes_file_adding_such_a_name_says_so(self) -> None:
        """A plain ASCII line of a routes file is read for such names too."""
        routes = "routes:\n  - host: docs.python.org\n  - host: 169.254.169.254.nip.io\n"
        call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
        (proposal,) = self.listed()
        self.assertTrue(any("line 3: host 169.254.169.254.nip.io" in w["text"] and "169.254.169.254" in w["text"]
                            for w in proposal["grants"]["warnings"]), proposal["grants"])

    def test_a_rejection_of_the_address_rejects_the_names_and_ends_their_grants(self) -> None:
        """rules add --host 169.254.169.254 --reject: the agent's names for it are rejected, its grant ends."""
        self.assert_metadata_rejection_ends("169-254-169-254.sslip.io", "169-254-169-254.sslip.io")
        for host in ("169.254.169.254.nip.io", "app-a9fea9fe.nip.io", "169-254-169-254.sslip.io"):
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
            self.listed()  # the operator's listing applies the rules
            answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
            self.assertEqual(answer["status"], "rejected", (host, answer))
            self.assertIn("never the metadata service", answer["notes"])


    def test_a_rule_the_operator_types_warns_as_an_approval_would(self) -> None:
        """rules add for a name that spells an address says so; a rejecting wildcard over addresses says it
        rejects none (no wildcard covers an address)."""
        refused = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254.nip.io", "--for", "1d")
        self.assertEqual(refused.returncode, 2, refused.stdout)  # off a terminal, asked-twice needs --yes
        self.assertIn("it reaches more than it reads as and inside (look-alike, internal)", refused.stderr)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254.nip.io", "--for", "1d",
                             "--yes")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertIn("WARNING: host 169.254.169.254.nip.io is not what it looks like: it spells the address "
                      "169.254.169.254", added.stdout)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "*.nip.io", "--reject")
        self.assertIn("WARNING: host '*.nip.io' is a wildcard over every address", added.stdout)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "*.169.254", "--reject")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertIn("WARNING: *.169.254 rejects no address", added.stdout)
        plain = self.run_cli("rules", "add", "--all-bottles", "--host", "docs.python.org", "--for", "1d")
        self.assertNotIn("WARNING", plain.stdout)


class SpellingTest(unittest.TestCase):
    def test_what_spells_an_address_and_what_does_not(self) -> None:
        """Four numbers to 255 in a row, or between dashes; hex only under a wildcard DNS service."""
        for host, address in SPELLED.items():
            self.assertEqual(spelled_address(host), address, host)
        for host in ("pypi.org", "docs.python.org", "v1.2.3.example.com", "api-2024-01-15.example.com",
                     "10.0.0.1", "2852039166", "a9fea9fe.example.com", "300.1.1.1.example.com"):
            self.assertIsNone(spelled_address(host), host)
        self.assertEqual(spelled_address("LocalTest.ME."), "127.0.0.1")
        self.assertEqual(spelled_address("1.2.3.4-5.sslip.io"), "1.2.3.4")  # sslip.io reads a dash after it too
        self.assertEqual(spelled_address("foo.nip.io"), "any address")
        self.assertTrue(host_is_wide("*.nip.io") and host_is_wide("*.SSLIP.IO."))
        self.assertFalse(host_is_wide("*.example.com"))
