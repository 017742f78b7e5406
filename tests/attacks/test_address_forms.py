"""IPv4 addresses in disguise, and addresses a routes file adds, against the operator's screen and rules.

A client (``getaddrinfo``, curl) reads a host that is all numbers by
``inet_aton``'s rules: ``010.0.0.1`` is 8.0.0.1 (a leading 0 is octal),
``2852039166``, ``0xa9fea9fe`` and ``169.254.43518`` are 169.254.169.254, the
cloud's metadata service. Before the fix next to these tests, the agent filed
such a route through its real sidecar and every screen showed it as written,
with no warning (``010.0.0.1`` reads as the internal 10.0.0.1); a routes file
that added ``169.254.169.254`` or ``[fd00::1]`` was summed up as "routes file:
names no new host" (only tokens with a letter were hosts); and the operator's
``rules add --host 169.254.169.254 --reject`` did not reject ``2852039166``.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import unittest
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.policy.approval import INTERNAL, approval_of
from bot_bottle.policy.hosts import ipv4_reading
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.launcher import spawn
from tests.attacks.test_standing_rejections import call
from tests.helpers.support import TempDirTest

DISGUISED = {"010.0.0.1": "8.0.0.1", "2852039166": "169.254.169.254", "0xa9fea9fe": "169.254.169.254",
             "169.254.43518": "169.254.169.254", "0x7f.1": "127.0.0.1"}


class AddressFormsCase(TempDirTest):
    """A host database, web-1's real sidecar to file through, and the operator's listing as JSON."""

    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("db", "upgrade").returncode, 0)
        server, self.url = spawn("web-1", host_db_path(), "--wait-seconds", "0")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=10)))

    def assert_metadata_rejection_ends(self, granted: str, reached: str) -> None:
        """A grant of ``granted`` lets ``reached`` through to the metadata service until the operator's
        'rules add --host 169.254.169.254 --reject', which ends it: the sidecar then refuses."""
        with QueueStore() as store:
            earlier = store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": granted}), "preview builds")
            decide(earlier.id, STATUS_APPROVED, store=store)
            self.assertTrue(EgressGrants(store.for_bottle("web-1")).allows_route(reached, "GET", "/latest/meta-data/"))
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254", "--reject",
                             "--notes", "never the metadata service")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertIn("it ended grant", added.stdout)
        with QueueStore() as store:
            self.assertFalse(EgressGrants(store.for_bottle("web-1")).allows_route(reached, "GET", "/latest/meta-data/"))
            self.assertEqual(GrantStore(database=store.db).listing(), [])

    def look_alike_warnings(self, hosts: Iterable[str]) -> dict[str, tuple[str, list[str]]]:
        """Each of ``hosts`` filed by the agent through its sidecar, as the listing shows it: {host: (the
        proposal's id, its look-alike warnings)}, every host listed with at least one."""
        for host in hosts:
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
            self.assertEqual(filed["status"], "pending", filed)
        shown: dict[str, tuple[str, list[str]]] = {}
        for proposal in self.listed():
            host = proposal["grants"]["summary"].split()[0]
            warnings = [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == "look-alike"]
            self.assertTrue(warnings, f"{host} was shown with no warning: {proposal['grants']}")
            shown[host] = (proposal["id"], warnings)
        return shown

    def routes_filed_and_listed(self, files: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
        """Each routes file filed by the agent through web-1's sidecar (``egress-block``), then the operator's
        listing: each file with what the listing says of it."""
        filed = list(files)
        for routes in filed:
            answer = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
            self.assertEqual(answer["status"], "pending", answer)
        listed = {p["id"]: p for p in self.listed()}
        self.assertEqual(len(listed), len(filed))
        with QueueStore() as store:
            payloads = {proposal.id: proposal.payload for proposal in store.pending("web-1")}
        return [(payloads[proposal_id], proposal) for proposal_id, proposal in listed.items()]

    def assert_routes_files_reach_inside(self, files: dict[str, str]) -> None:
        """Each routes file of ``files``, filed and listed, names a new host, carries an internal warning holding
        what ``files`` gives for it, and is approved only when asked twice."""
        for routes, proposal in self.routes_filed_and_listed(files):
            with self.subTest(routes=routes):
                self.assertNotIn("names no new host", proposal["grants"]["summary"])
                warnings = [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == INTERNAL]
                self.assertTrue(any(files[routes] in text for text in warnings), proposal["grants"])
                self.assertTrue(approval_of(TOOL_EGRESS_BLOCK, routes, None).needs_confirmation)

    def listed(self) -> list[dict[str, Any]]:
        result = self.run_cli("proposals", "list", "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        listing: list[dict[str, Any]] = json.loads(result.stdout)
        return listing


class AddressFormsTest(AddressFormsCase):
    def test_a_disguised_address_is_named_as_the_address_it_is(self) -> None:
        """Each form, filed by the agent: a look-alike warning naming the address a client connects to."""
        shown = self.look_alike_warnings(DISGUISED)
        self.assertEqual(set(shown), set(DISGUISED))
        for host, (_, warnings) in shown.items():
            self.assertIn(f"a client connects to {DISGUISED[host]}", warnings[0], host)
        printed = self.run_cli("proposals", "show", shown["2852039166"][0])
        self.assertIn("WARNING: look-alike", printed.stdout)

    def test_a_routes_file_that_adds_an_address_says_so(self) -> None:
        """169.254.169.254 and [fd00::1] are hosts the file adds; 2852039166 there is named as its address."""
        routes = "routes:\n  - host: docs.python.org\n  - host: 169.254.169.254\n  - host: \"[fd00::1]\"\n" \
                 "  - host: 2852039166\n"
        filed = call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
        self.assertEqual(filed["status"], "pending", filed)
        (proposal,) = self.listed()
        summary = proposal["grants"]["summary"]
        self.assertNotIn("names no new host", summary)
        for host in ("169.254.169.254", "fd00::1", "2852039166"):
            self.assertIn(host, summary)
        self.assertTrue(any("a client connects to 169.254.169.254" in w["text"]
                            for w in proposal["grants"]["warnings"]), proposal["grants"])

    def test_a_wildcard_over_addresses_is_flagged_and_reaches_none(self) -> None:
        """*.169.254 (reads as subdomains of 169.254): a widens warning; approved anyway, it reaches no address.

        Before the fix it had no badge, and its grant let a request to 169.254.169.254 (the metadata service)
        through, and one to 10.169.254 (which a client reads as 10.169.0.254)."""
        filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": "*.169.254", "justification": "the build cache"})
        (proposal,) = self.listed()
        self.assertIn("widens", [w["kind"] for w in proposal["grants"]["warnings"]], proposal["grants"])
        self.assertIn("IP addresses", proposal["grants"]["warnings"][0]["text"])
        digest = json.loads(self.run_cli("proposals", "show", filed["proposal_id"], "--json").stdout)["digest"]
        approved = self.run_cli("proposals", "approve", filed["proposal_id"], "--digest", digest, "--notes", "ok")
        self.assertEqual(approved.returncode, 0, approved.stderr)
        with QueueStore() as store:
            grants = EgressGrants(store.for_bottle("web-1"))
            for host in ("169.254.169.254", "10.169.254", "0xa9fea9fe"):
                self.assertFalse(grants.allows_route(host, "GET", "/latest/meta-data/"), host)

    def test_a_rejection_of_an_address_rejects_its_other_forms(self) -> None:
        """rules add --host 169.254.169.254 --reject: the agent's 2852039166 is rejected by it."""
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254", "--reject",
                             "--notes", "never the metadata service")
        self.assertEqual(added.returncode, 0, added.stderr)
        filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": "2852039166", "justification": "the build cache"})
        self.listed()  # the operator's listing applies the rules
        answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
        self.assertEqual(answer["status"], "rejected", answer)
        self.assertIn("never the metadata service", answer["notes"])


class ReadingTest(unittest.TestCase):
    def test_the_reading_is_the_resolvers(self) -> None:
        """``ipv4_reading`` against this host's getaddrinfo, on every form of thousands of addresses."""
        chance = random.Random(8)
        cases = ["0x", "0x.1", "08.1.1.1", "1.2.3.4.5", "256.1.1.1", "4294967296", "0xffffffff", "037777777777",
                 "1..2", ".1", "docs.python.org", "0x" + "0" * 30 + "1", *DISGUISED]
        for _ in range(3000):
            count = chance.randint(1, 4)
            parts = []
            for index in range(count):
                value = chance.randint(0, 300 if index < count - 1 else 70000)
                parts.append(chance.choice([str(value), hex(value), "0" + oct(value)[2:]]))
            cases.append(".".join(parts))
        for host in cases:
            try:
                resolved = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                              socket.AI_NUMERICHOST)[0][4][0]
            except (socket.gaierror, UnicodeError):
                resolved = None
            self.assertEqual(ipv4_reading(host), resolved, host)


# Read as decimal by a client that takes a leading 0 so (Java's InetAddress, measured: OpenJDK 17), as octal (or
# as no address) by glibc and curl: the screen named only the latter.
DECIMAL_READ = {"0127.0.0.1": "127.0.0.1", "0192.168.0.1": "192.168.0.1", "010.0.0.1": "10.0.0.1"}


class DecimalReadingTest(AddressFormsCase):
    """A leading 0 is octal to glibc and curl, decimal to Java. Before the fix next to this test the agent's
    0127.0.0.1 was shown as 'a client connects to 87.0.0.1' (a Java proxy connects to 127.0.0.1, the loopback),
    0192.168.0.1 (no address to glibc) with no warning at all, a routes file adding it as 'names no new host',
    and 'rules add --host 127.0.0.1 --reject' did not reject 0127.0.0.1."""

    def test_each_reading_is_named_and_rejected(self) -> None:
        ids = {}
        for host in DECIMAL_READ:
            filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
            self.assertEqual(filed["status"], "pending", filed)
            ids[host] = filed["proposal_id"]
        routes = "routes:\n  - host: docs.python.org\n  - host: 0192.168.0.1\n"
        call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": routes, "justification": "the docs"})
        for proposal in self.listed():
            summary = proposal["grants"]["summary"]
            warnings = " ".join(w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == "look-alike")
            with self.subTest(summary=summary):
                if proposal["tool"] == TOOL_EGRESS_BLOCK:
                    self.assertIn("0192.168.0.1", summary)
                    self.assertIn("connects to 192.168.0.1", warnings)
                else:
                    host = summary.split()[0]
                    self.assertIn(f"to {DECIMAL_READ[host]}", warnings, f"{host}: {proposal['grants']}")
        for address in ("127.0.0.1", "192.168.0.1"):
            added = self.run_cli("rules", "add", "--all-bottles", "--host", address, "--reject")
            self.assertEqual(added.returncode, 0, added.stderr)
        for host in ("0127.0.0.1", "0192.168.0.1"):
            answer = call(self.url, "check-proposal", {"proposal_id": ids[host]})
            self.assertEqual(answer["status"], "rejected", f"{host}: {answer}")

    def test_java_reads_a_leading_zero_as_decimal(self) -> None:
        """The measurement behind DECIMAL_READ, where a JDK is installed."""
        java = shutil.which("java")
        if java is None:
            self.skipTest("no java here")
        source = Path(self.tmp) / "Read.java"
        source.write_text("public class Read { public static void main(String[] a) throws Exception {\n"
                          "  for (String s : a) System.out.println(java.net.InetAddress.getByName(s).getHostAddress());"
                          "\n} }\n")
        result = subprocess.run([java, str(source), *DECIMAL_READ], capture_output=True, text=True, timeout=120,
                                check=False)
        self.assertEqual(result.stdout.split(), list(DECIMAL_READ.values()), result.stderr)
