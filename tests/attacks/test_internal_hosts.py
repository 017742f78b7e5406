"""Hosts that reach inside, shown for what they are: this machine, the host machine, the metadata service, a
private network.

Before the fix next to these tests, measured with the agent's real sidecar
and the operator's real command line: the agent filed ``egress-allow`` for
``169.254.169.254`` (the cloud's metadata service, which hands any caller
the machine's credentials), ``127.0.0.2`` and ``0.0.0.0`` (the sidecar's own
services), ``10.0.0.5``, and the rest below, and ``proposals list`` showed
each as a plain grant, with no badge, no warning and no typed "yes", where
``localhost`` (the same machine by name) was flagged. A routes file adding
the address, a token report sending to it, a standing rule approving it:
the same. Now each is ``[internal]``, named as where it reaches, and asked
for a second time on every screen.
"""

from __future__ import annotations

import json
import re

from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import INTERNAL, approval_of
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_EGRESS_TOKEN_ALLOW
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call
from tests.helpers.dashboard import DashboardCase

# Each host the agent may ask for, and what its warning must name.
INSIDE = {
    "169.254.169.254": "the cloud's metadata service",
    "169.254.170.2": "ECS's task metadata service",
    "100.100.100.200": "Alibaba Cloud's metadata service",
    "127.0.0.2": "this machine",
    "0.0.0.0": "this machine",
    "10.0.0.5": "a private network's address",
    "172.31.255.1": "a private network's address",
    "192.168.1.1": "a private network's address",
    "169.254.1.1": "a link-local address",
    "100.64.0.1": "shared address space",
    "192.0.2.10": "an address no public host has",
}


class InsideHostsTest(AddressFormsCase):
    def internal_warnings(self) -> dict[str, tuple[str, list[str]]]:
        """The listing's internal warnings: {host as listed: (the proposal's id, its internal warnings)}."""
        return {proposal["grants"]["summary"].split()[0]:
                (proposal["id"], [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == INTERNAL])
                for proposal in self.listed()}

    def test_each_address_inside_is_badged_and_named(self) -> None:
        """Filed by the agent through its sidecar: every one listed with an internal warning naming where it
        reaches, and asked for twice."""
        for host in INSIDE:
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
            self.assertEqual(filed["status"], "pending", filed)
        shown = self.internal_warnings()
        self.assertEqual(set(shown), set(INSIDE))
        for host, (_, warnings) in shown.items():
            with self.subTest(host=host):
                self.assertEqual(len(warnings), 1, warnings)
                self.assertIn(f"host {host} reaches inside: {INSIDE[host]}", warnings[0])
                self.assertTrue(approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host})).needs_confirmation)
        listed = self.run_cli("proposals", "list")
        self.assertRegex(listed.stdout, r"\[internal\] 169\.254\.169\.254 \(any method; every path\)")
        printed = self.run_cli("proposals", "show", shown["169.254.169.254"][0])
        self.assertIn("WARNING: internal: host 169.254.169.254 reaches inside: the cloud's metadata service",
                      printed.stdout)
        only = self.run_cli("proposals", "list", "--warning", "internal", "--json")
        self.assertEqual(len(json.loads(only.stdout)), len(INSIDE))

    def test_spellings_of_an_inside_address_are_named_as_it(self) -> None:
        """The same address in disguise (another IPv4 form, a name that spells it, a name for it): internal as
        well as a look-alike, the address named."""
        disguised = {"0xa9fea9fe": "169.254.169.254", "169-254-169-254.sslip.io": "169.254.169.254",
                     "10.0.0.1.example.com": "10.0.0.1", "admin.localhost": "127.0.0.1",
                     "metadata.google.internal": "169.254.169.254"}
        for host in disguised:
            call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
        shown = self.internal_warnings()
        for host, address in disguised.items():
            with self.subTest(host=host):
                (warning,) = shown[host][1]
                self.assertIn(f"reaches inside: {address}, ", warning)
        machine = self.internal_warnings  # the host machine by name: named so, not as this machine
        call(self.url, TOOL_EGRESS_ALLOW, {"host": "host.docker.internal", "justification": "the relay"})
        (warning,) = machine()["host.docker.internal"][1]
        self.assertIn("the host machine", warning)
        self.assertNotIn("this machine", warning)

    def test_public_hosts_are_not_flagged(self) -> None:
        """No false alarm on what the public internet holds, a name spelling a public address included."""
        for host in ("pypi.org", "api.github.com", "93.184.216.34", "8.8.8.8", "1.1.1.1.nip.io", "172.32.0.1",
                     "100.128.0.1", "*.pythonhosted.org"):
            with self.subTest(host=host):
                approval = approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}))
                self.assertNotIn(INTERNAL, approval.kinds, approval)

    def test_a_routes_file_token_report_and_rule_that_reach_inside_say_so(self) -> None:
        """A routes file's new lines (not the ones it keeps), a token sent to a port of one, a rule typed to
        approve one: each says where it reaches."""
        current = "routes:\n  - host: 10.9.9.9\n"
        routes = current + "  - host: 169.254.169.254\n  - host: \"[fd00:ec2::254]\"\n  - host: pypi.org\n"
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, current)
        inside = [caution.text for caution in approval.cautions if caution.kind == INTERNAL]
        self.assertEqual(len(inside), 3, inside)
        self.assertIn("a new line's host 169.254.169.254 reaches inside: the cloud's metadata service", inside[0])
        self.assertIn("EC2's metadata service over IPv6", inside[1])
        # A kept line is named too, as unchanged: the lines around it may have moved it (review 14)
        self.assertIn("an unchanged line's host 10.9.9.9 reaches inside", inside[2])
        filed = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
        self.assertEqual(filed["status"], "pending", filed)
        (listed,) = self.listed()
        self.assertIn(INTERNAL, [w["kind"] for w in listed["grants"]["warnings"]])
        report = {"host": "169.254.169.254:80", "method": "GET", "detector": "aws-access-token"}
        token = approval_of(TOOL_EGRESS_TOKEN_ALLOW, json.dumps(report))
        self.assertEqual(token.kinds, (INTERNAL,), "a port is no look-alike's character")
        self.assertTrue(token.needs_confirmation)
        refused = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "10.0.0.5", "--for", "1d",
                               "--notes", "the lab's cache")
        self.assertEqual(refused.returncode, 2, refused.stdout)  # a typed yes on a terminal; here, --yes
        self.assertIn("--yes: needed to add this rule off a terminal: it approves what every screen asks about "
                      "twice (it reaches inside (internal))", refused.stderr)
        self.assertIn("no rules in force", self.run_cli("rules", "list").stdout)
        approving = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "10.0.0.5", "--for", "1d",
                                 "--notes", "the lab's cache", "--yes")
        self.assertEqual(approving.returncode, 0, approving.stderr)
        self.assertIn("WARNING: host 10.0.0.5 reaches inside: a private network's address", approving.stdout)
        rejecting = self.run_cli("rules", "add", "--all-bottles", "--host", "10.0.0.6", "--reject", "--notes", "no")
        self.assertNotIn("reaches inside", rejecting.stdout + rejecting.stderr, "a rejection reaches nothing")

    def test_a_script_approves_only_by_the_digest_it_read(self) -> None:
        """Without a terminal there is no second question: the digest of what 'show' printed stands for it, as
        for a widening (tests/cli/test_shell.py asks a terminal for the typed yes)."""
        filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": "10.0.0.5", "justification": "the lab's cache"})
        approved = self.run_cli("proposals", "approve", filed["proposal_id"], "--notes", "ok")
        self.assertNotEqual(approved.returncode, 0)
        self.assertIn("--digest", approved.stderr)
        with GrantStore() as grants:  # closed: a connection left to the GC warns on a later CLI call's stderr
            self.assertEqual(grants.listing(), [])


class InsideHostsDashboardTest(DashboardCase):
    def test_the_dashboard_asks_once_more_naming_why(self) -> None:
        """The approve button says it asks once more, and why; the first post records nothing and asks; only the
        confirmation's own token records it."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "169.254.169.254"}', "the docs")
        status, _, page = self.call("GET", f"/proposal/{route.id}")
        self.assertEqual(status, 200)
        self.assertIn('class="badge badge-internal"', page)
        self.assertIn("(asks once more: internal)", page)
        status, _, page = self.post(route, "decide", {"status": STATUS_APPROVED, "notes": ""})
        self.assertEqual(status, 200)
        self.assertIn("It reaches inside (internal)", page)
        self.assertIn("the cloud&#x27;s metadata service", page)
        self.assert_unchanged(route)
        token = re.search(r'name="confirm" value="([^"]+)"', page)
        assert token is not None
        status, _, _ = self.post(route, "decide", {"status": STATUS_APPROVED, "notes": "", "confirm": token.group(1)})
        self.assertEqual(status, 303)
        response = self.store.response(route.id)
        self.assertEqual(response.status if response else None, STATUS_APPROVED)
