"""A name under a wildcard DNS service that spells a public IPv4 address as a decoy and an IPv6 one (review 13).

sslip.io answers an A query from the IPv4 address a name spells and an
AAAA query from the IPv6 one, each on its own (its xip.go: ``0--1.sslip.io``
is ::1, ``0--ffff-a9fe-a9fe`` the IPv4-mapped ::ffff:169.254.169.254,
``fd00-ec2--254`` AWS's metadata service over IPv6). Before the fix next to
this test, measured with the agent's real sidecar and the operator's real
command line: ``0--1.1-1-1-1.sslip.io`` was shown as spelling 1.1.1.1 alone (a
public address: the operator reads a harmless name), and neither ``rules add
--host 127.0.0.1 --reject`` nor ``rules add --host 169.254.169.254 --reject``
rejected the agent's later ``0--1.1-1-1-1.sslip.io``,
``0--ffff-a9fe-a9fe.1-1-1-1.sslip.io`` or ``fd00-ec2--254.1-1-1-1.sslip.io``, nor
ended a grant for one: a client that prefers IPv6 connects to this machine or the
metadata service. The IPv4 decoy was enough: a wildcard DNS name was taken as
"any address" only where it spelled no IPv4 address at all.
"""

from __future__ import annotations

import time

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.policy.hosts import ANY_ADDRESS, spelled_addresses
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

LOOPBACK_V6 = "0--1.1-1-1-1.sslip.io"
METADATA_V6 = ("0--ffff-a9fe-a9fe.1-1-1-1.sslip.io", "fd00-ec2--254.1-1-1-1.sslip.io")


class SpelledIPv6Test(AddressFormsCase):
    def test_the_warning_names_the_ipv6_address_behind_the_decoy(self) -> None:
        call(self.url, TOOL_EGRESS_ALLOW, {"host": LOOPBACK_V6, "justification": "the build cache"})
        (proposal,) = self.listed()
        warnings = [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == "look-alike"]
        self.assertTrue(warnings, proposal["grants"])
        self.assertIn("::1", warnings[0])
        self.assertIn("169.254.169.254", spelled_addresses(METADATA_V6[0]))
        self.assertIn(ANY_ADDRESS, spelled_addresses(METADATA_V6[1]))

    def test_a_rejection_of_the_address_rejects_the_ipv6_spelling(self) -> None:
        for rejected, hosts in (("127.0.0.1", (LOOPBACK_V6,)), ("169.254.169.254", METADATA_V6)):
            added = self.run_cli("rules", "add", "--all-bottles", "--host", rejected, "--reject", "--notes", "no")
            self.assertEqual(added.returncode, 0, added.stderr)
            for host in hosts:
                with self.subTest(host=host):
                    filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
                    self.listed()
                    answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
                    self.assertEqual(answer["status"], "rejected", (host, answer))

    def test_a_rejection_of_the_address_ends_a_grant_for_the_ipv6_spelling(self) -> None:
        with QueueStore() as store:
            decide(store.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "{LOOPBACK_V6}"}}', "x").id,
                   STATUS_APPROVED, store=store)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "127.0.0.1", "--reject")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertIn("it ended grant", added.stdout)
        with QueueStore() as store:
            self.assertEqual(GrantStore(database=store.db).listing(), [])

    def test_a_crafted_name_is_read_quickly(self) -> None:
        """Labels of dashed hex groups (every window a candidate) are read in milliseconds, not more: a keeper's
        look compares every pending proposal with every rule."""
        began = time.monotonic()
        for index in range(200):
            spelled_addresses(".".join([f"{index:x}-" + "0--" * 19 + "0"] * 3) + ".sslip.io")
        self.assertLess(time.monotonic() - began, 2.0)
