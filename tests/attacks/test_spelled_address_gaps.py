"""Names that spell an address past what the first reading caught (review, round 12).

Before the fix next to these tests, measured with the agent's real sidecar
and the operator's real command line:

- ``rules add --host 169.254.169.254 --reject`` did not end an approved
  grant for ``*.sslip.io`` (every address there is, the metadata service
  among them: the sidecar still let ``GET
  169.254.169.254.sslip.io/latest/meta-data/`` through), and did not reject
  the agent's later proposals for ``*.nip.io``, ``x-169.254.169.254-y.sslip.io``
  (sslip.io reads dots or dashes around the address), ``169-254.169-254.sslip.io``
  (mixed), ``a9fea9fe-app.sslip.io`` (hex not at the label's end),
  ``app-999-169-254-169-254.nip.io`` (only the first four-number run was read)
  ``metadata.google.internal`` or ``*.pod.cluster.local`` (Kubernetes' cluster DNS answers
  ``169-254-169-254.default.pod.cluster.local`` with that address), or the DNS rebinding services'
  ``a9fea9fe.08080808.rbndr.us`` and ``make-8.8.8.8-rebind-169.254.169.254-rr.1u.ms`` (each answers
  8.8.8.8, then 169.254.169.254; both were shown with no warning at all): each waited for an approval.
- ``ip6-localhost`` and ``ip6-loopback`` (Docker's /etc/hosts in every
  container: ::1), ``localhost.localdomain``, ``metadata.google.internal``
  and ``instance-data`` (the cloud's metadata service by name) were shown
  with no warning, and approving asked for no typed yes.
- A routes file adding ``localhost`` ("names no new host"), ``"admin.local\\x68ost"``
  (a YAML escape) or ``"admin.localh\\`` continued on the next line had no
  look-alike warning.
"""

from __future__ import annotations

import json

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import approval_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from bot_bottle.sidecar.egress import EgressGrants
from tests.attacks.test_address_forms import AddressFormsCase
from tests.attacks.test_standing_rejections import call

# Each reaches 169.254.169.254 (the wildcards: among every other address).
METADATA_SPELLINGS = ("*.nip.io", "x-169.254.169.254-y.sslip.io", "169-254.169-254.sslip.io",
                      "a9fea9fe-app.sslip.io", "app-999-169-254-169-254.nip.io", "metadata.google.internal",
                      "*.pod.cluster.local", "a9fea9fe.08080808.rbndr.us",
                      "make-8.8.8.8-rebind-169.254.169.254-rr.1u.ms")
NAMED = {"ip6-localhost": "::1", "ip6-loopback": "::1", "localhost.localdomain": "127.0.0.1",
         "metadata.google.internal": "169.254.169.254", "instance-data": "169.254.169.254"}


class SpelledAddressGapsTest(AddressFormsCase):
    def test_a_rejection_of_the_address_ends_a_wildcard_dns_wildcard_grant(self) -> None:
        """*.sslip.io approved; the metadata service rejected: the grant ends, the sidecar refuses it."""
        self.assert_metadata_rejection_ends("*.sslip.io", "169.254.169.254.sslip.io")

    def test_a_rejection_of_the_address_rejects_each_spelling(self) -> None:
        """Filed by the agent after the rule: each is rejected with the operator's notes, none waits."""
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254", "--reject",
                             "--notes", "never the metadata service")
        self.assertEqual(added.returncode, 0, added.stderr)
        for host in METADATA_SPELLINGS:
            with self.subTest(host=host):
                filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
                self.listed()  # the operator's listing applies the rules
                answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
                self.assertEqual(answer["status"], "rejected", (host, answer))
                self.assertIn("never the metadata service", answer["notes"])

    def test_a_dns_rebinding_name_is_named_as_the_address_it_turns_to(self) -> None:
        """Filed by the agent: the warning names 169.254.169.254, and approving asks for the typed yes."""
        for host in ("a9fea9fe.08080808.rbndr.us", "make-8.8.8.8-rebind-169.254.169.254-rr.1u.ms"):
            call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
        for proposal in self.listed():
            warnings = [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == "look-alike"]
            self.assertTrue(warnings, proposal["grants"])
            self.assertIn("a client connects to 169.254.169.254", warnings[0])

    def test_an_other_address_s_rejection_leaves_a_plain_spelling_alone(self) -> None:
        """10.0.0.1.nip.io is not rejected by a rejection of 169.254.169.254 (no false rejection)."""
        self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254", "--reject")
        filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": "10.0.0.1.nip.io", "justification": "the build cache"})
        self.listed()
        answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
        self.assertEqual(answer["status"], "pending", answer)

    def test_a_name_with_an_address_of_its_own_is_named_as_it(self) -> None:
        """Filed by the agent: a look-alike warning naming the address, and the typed yes asked."""
        shown = self.look_alike_warnings(NAMED)
        self.assertEqual(set(shown), set(NAMED))
        for host, (proposal_id, warnings) in shown.items():
            self.assertIn(f"resolves to {NAMED[host]}", warnings[0], host)
            self.assertTrue(approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}), None).needs_confirmation)
            printed = self.run_cli("proposals", "show", proposal_id)
            self.assertIn("WARNING: look-alike", printed.stdout)

    def test_a_routes_file_hiding_a_loopback_name_says_so(self) -> None:
        """A dotless name, a YAML escape and a continued double-quoted value: each line warned of."""
        for routes in ("routes:\n  - host: localhost\n", 'routes:\n  - host: "admin.local\\x68ost"\n',
                       'routes:\n  - host: "admin.localh\\\n      ost"\n'):
            with self.subTest(routes=routes):
                approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
                self.assertTrue(any("127.0.0.1, the loopback" in caution.text for caution in approval.cautions),
                                approval)
                self.assertTrue(approval.needs_confirmation)
        call(self.url, TOOL_EGRESS_BLOCK, {"routes_file": "routes:\n  - host: localhost\n", "justification": "x"})
        (proposal,) = self.listed()
        self.assertIn("adds localhost", proposal["grants"]["summary"])
        self.assertTrue(any(w["kind"] == "look-alike" for w in proposal["grants"]["warnings"]), proposal["grants"])

    def test_public_decoys_do_not_push_the_metadata_service_out_of_the_warning(self) -> None:
        """1.1.1.1.1.1.1.169.254.169.254.nip.io spells five addresses: the one no public host has is named."""
        host = "1.1.1.1.1.1.1.169.254.169.254.nip.io"
        call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
        (proposal,) = self.listed()
        warnings = [w["text"] for w in proposal["grants"]["warnings"] if w["kind"] == "look-alike"]
        self.assertTrue(warnings, proposal["grants"])
        self.assertIn("a client connects to 169.254.169.254", warnings[0])

    def test_a_rejection_of_the_loopback_rejects_every_name_for_it(self) -> None:
        """rules add --host 127.0.0.1 --reject: 0.0.0.0 (Linux connects it to this machine), 127.0.0.2 and the
        ::1 names (no rule can name ::1: a host has no colon) are this machine too, and are rejected."""
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "127.0.0.1", "--reject",
                             "--notes", "never this machine")
        self.assertEqual(added.returncode, 0, added.stderr)
        for host in ("0.0.0.0", "0.0.0.0.nip.io", "127.0.0.2.nip.io", "ip6-localhost", "localhost6"):
            with self.subTest(host=host):
                filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": host, "justification": "the build cache"})
                self.listed()
                answer = call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})
                self.assertEqual(answer["status"], "rejected", (host, answer))

    def test_a_wildcard_over_such_a_name_is_named_as_what_it_covers(self) -> None:
        """*.cluster.local covers *.pod.cluster.local, *.google.internal the metadata service's name: each is
        warned of, and a rejection of 169.254.169.254 ends a grant for it."""
        for host, shown in (("*.cluster.local", "wildcard over pod.cluster.local"),
                            ("*.google.internal", "covers metadata.google.internal, which resolves to 169.254")):
            with self.subTest(host=host):
                approval = approval_of(TOOL_EGRESS_ALLOW, json.dumps({"host": host}), None)
                self.assertTrue(any(shown in caution.text for caution in approval.cautions), approval)
                self.assertTrue(approval.needs_confirmation)
        with QueueStore() as store:
            for host in ("*.cluster.local", "*.google.internal"):
                decide(store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": host}), "x").id, STATUS_APPROVED,
                       store=store)
            self.assertTrue(EgressGrants(store.for_bottle("web-1")).allows_route(
                "metadata.google.internal", "GET", "/computeMetadata/v1/"))
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "169.254.169.254", "--reject")
        self.assertEqual(added.returncode, 0, added.stderr)
        with QueueStore() as store:
            self.assertEqual(GrantStore(database=store.db).listing(), [])
            self.assertFalse(EgressGrants(store.for_bottle("web-1")).allows_route(
                "metadata.google.internal", "GET", "/computeMetadata/v1/"))

    def test_a_path_or_comment_naming_metadata_is_no_host(self) -> None:
        """No false alarm: 'metadata' in a path or a comment is not the metadata service's name."""
        routes = "# package metadata for the docs\nroutes:\n  - host: docs.python.org\n    paths: [/v1/metadata/]\n"
        approval = approval_of(TOOL_EGRESS_BLOCK, routes, None)
        self.assertEqual([caution.text for caution in approval.cautions], [])
        self.assertFalse(approval.needs_confirmation)
        routes = 'routes: [{"host": "ip6-localhost"}, {host: metadata}]\n'
        texts = " ".join(caution.text for caution in approval_of(TOOL_EGRESS_BLOCK, routes, None).cautions)
        self.assertIn("host ip6-localhost is not what it looks like", texts)
        self.assertIn("host metadata is not what it looks like", texts)
