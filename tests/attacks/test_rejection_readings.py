"""Standing rejections against an agent that asks for what they reject in another reading.

The operator's rules, typed with the real command line: approve the
company's hosts (``*.example.com``, any method and path), but never its admin
pages (``api.example.com --path /admin/ --reject``) and never a GET to the
files host (``files.example.com --method GET --reject``).

Before the fix next to these tests, a rejection compared path prefixes with
percent-encoding undone and case folded only, and methods as written. The
agent, through its real sidecar, asked for ``api.example.com`` with the path
``//admin/`` (nginx merges the slashes: measured, GET //admin/users served
/admin/users) or ``/admin;x/`` (a Java server drops a segment's parameters),
or for ``files.example.com`` with ``HEAD`` (a server answers HEAD with its
GET handler: Starlette ran the GET view and sent its headers). None
overlapped the rejections, the approving rule matched each, and the host
sealed approvals whose grants reached what was rejected for good.

And an agent's own wildcard rejected from now on (``proposals reject ID
--remember all`` of ``*.internal.example.com``) leaves a name under it to be
asked about (tests.attacks.test_standing_rejections): but the approving
``*.example.com`` rule decided ``db.internal.example.com`` at once, with no
one asked. Now such a name waits for the operator.
"""

from __future__ import annotations

from bot_bottle.grants import GrantStore
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from tests.attacks.test_standing_rejections import RulesAndSidecarCase, call


class RejectionReadingsTest(RulesAndSidecarCase):
    RULES = (("--host", "*.example.com", "--for", "30d", "--notes", "the company's hosts"),
             ("--host", "api.example.com", "--path", "/admin/", "--reject", "--notes", "never admin"),
             ("--host", "files.example.com", "--method", "GET", "--reject", "--notes", "no reading"))

    def test_a_rejected_path_or_method_in_another_reading_is_still_rejected(self) -> None:
        for route in ({"host": "api.example.com", "paths": ["//admin/"]},
                      {"host": "api.example.com", "paths": ["/admin;jsessionid=1/"]},
                      {"host": "api.example.com", "paths": ["/%2Fadmin/"]},
                      {"host": "files.example.com", "methods": ["HEAD"]}):
            with self.subTest(route=route):
                answer = self.ask(**route)
                self.assertEqual(answer["status"], "rejected", f"{route} got past a standing rejection: {answer}")
        with GrantStore() as grants:
            self.assertEqual([g.subject_value for g in grants.listing()], [])
        with QueueStore() as store:
            allowed = EgressGrants(store.for_bottle("web-1"))
            self.assertFalse(allowed.allows_route("api.example.com", "GET", "//admin/users"))
            self.assertFalse(allowed.allows_route("api.example.com", "GET", "/admin;jsessionid=1/users"))
            self.assertFalse(allowed.allows_route("files.example.com", "HEAD", "/report.pdf"))
        # What no rejection names is approved as before.
        self.assertEqual(self.ask(host="api.example.com", paths=["/public/"])["status"], "approved")
        self.assertEqual(self.ask(host="files.example.com", methods=["PUT"])["status"], "approved")

    def test_a_name_under_a_rejected_wildcard_waits_for_the_operator(self) -> None:
        filed = call(self.url, TOOL_EGRESS_ALLOW, {"host": "*.internal.example.com", "justification": "all"})
        self.assertEqual(filed["status"], "pending", filed)  # an agent's wildcard: no approving rule matches it
        rejected = self.run_cli("proposals", "reject", filed["proposal_id"], "--reason", "never the internal hosts",
                                "--remember", "all")
        self.assertEqual(rejected.returncode, 0, rejected.stderr)
        answer = self.ask(host="db.internal.example.com")
        self.assertEqual(answer["status"], "pending", f"approved past the standing rejection: {answer}")
        with QueueStore() as store:
            self.assertFalse(EgressGrants(store.for_bottle("web-1")).allows_route("db.internal.example.com", "GET",
                                                                                 "/dump"))
        listed = self.run_cli("proposals", "list")
        self.assertIn("db.internal.example.com", listed.stdout)
        # The operator decides it, as for any ask: an approval stands.
        with QueueStore() as store:
            digest = shown_digest(store.get(answer["proposal_id"]))
        approved = self.run_cli("proposals", "approve", answer["proposal_id"], "--digest", digest)
        self.assertEqual(approved.returncode, 0, approved.stderr)
        self.assertEqual(call(self.url, "check-proposal", {"proposal_id": answer["proposal_id"]})["status"],
                         "approved")
        # A name outside the rejected wildcard is approved by the rule as before.
        self.assertEqual(self.ask(host="www.example.com")["status"], "approved")
        verified = self.run_cli("audit", "verify")
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
