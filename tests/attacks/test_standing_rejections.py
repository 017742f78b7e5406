"""Standing rejections against an agent that asks for a little more, or a little less, than was rejected.

The operator's rules, typed with the real command line: approve the
company's hosts (``*.example.com``), but never the secrets host
(``secret.example.com``) and never a POST to any of them. "A rejecting rule
wins over an approving one" (README, "Grants, rules and expiry").

Before the fix next to these tests, a rejecting rule matched only a
proposal whose subject was exactly its own (or, for a pattern, one asking for
no more methods and paths than it named), the way an approving rule must.
So the agent, through its real sidecar, asked for the secrets host with
``methods: ["GET"]`` (less than "any method"), for another host with every
method (more than "POST"), or for ``*.example.com`` itself (a wildcard over
the secrets host): the rejections matched none of them, the approving rule
matched each, and the host sealed three approvals whose grants covered what
the operator had rejected for good. Now a rejecting rule matches every
proposal that asks for any of what it rejects (``policy.subjects.rule_overlaps``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import unittest
import urllib.request
from typing import Any

from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.policy.subjects import rule_matches
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.launcher import spawn
from tests.helpers.support import TempDirTest


def call(url: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One MCP tools/call over HTTP, as the agent makes it; its structured result."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                 "Accept": "application/json, text/event-stream"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, Any] = json.loads(answer.read())["result"]["structuredContent"]
    return result


class RulesAndSidecarCase(TempDirTest):
    """The operator's ``RULES`` (``rules add --all-bottles`` each), and web-1's real sidecar to ask through."""

    RULES: tuple[tuple[str, ...], ...] = (
        ("--host", "*.example.com", "--for", "30d", "--notes", "the company's hosts"),
        ("--host", "secret.example.com", "--reject", "--notes", "never the secrets host"),
        ("--host", "*.example.com", "--method", "POST", "--reject", "--notes", "never a post"))

    def setUp(self) -> None:
        super().setUp()
        for args in self.RULES:
            added = self.run_cli("rules", "add", "--all-bottles", *args)
            self.assertEqual(added.returncode, 0, added.stderr)
        server, self.url = spawn("web-1", host_db_path(), "--wait-seconds", "1")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=10)))

    def ask(self, **route: Any) -> dict[str, Any]:
        """The agent asks for a route; the operator's next listing applies the rules; the agent asks again."""
        filed = call(self.url, TOOL_EGRESS_ALLOW, {**route, "justification": "for the build"})
        self.assertEqual(filed["status"], "pending", filed)
        listed = self.run_cli("proposals", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        return call(self.url, "check-proposal", {"proposal_id": filed["proposal_id"]})


class StandingRejectionTest(RulesAndSidecarCase):
    def test_asking_for_more_or_less_than_a_rejection_is_still_rejected(self) -> None:
        """Narrower methods, wider methods, a wildcard over the rejected host: each rejected, no grant made."""
        for route in ({"host": "secret.example.com", "methods": ["GET"]},
                      {"host": "secret.example.com", "paths": ["/v1/"]},
                      {"host": "api.example.com"},
                      {"host": "api.example.com", "methods": ["POST", "GET"]},
                      {"host": "*.example.com", "methods": ["GET"]},
                      {"host": "*.com", "methods": ["GET"]}):
            with self.subTest(route=route):
                answer = self.ask(**route)
                self.assertEqual(answer["status"], "rejected", f"{route} got past a standing rejection: {answer}")
                self.assertIn("standing rule", answer["notes"])
        with GrantStore() as grants:
            self.assertEqual([g.subject_value for g in grants.listing()], [])
        with QueueStore() as store:
            bottle = store.for_bottle("web-1")
            allowed = EgressGrants(bottle)
            self.assertFalse(allowed.allows_route("secret.example.com", "GET", "/v1/keys"))
            self.assertFalse(allowed.allows_route("api.example.com", "POST", "/upload"))
        verified = self.run_cli("audit", "verify")
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)

    def test_what_no_rejection_names_is_still_approved(self) -> None:
        """GET to another of the company's hosts: the approving rule decides it, as before."""
        answer = self.ask(host="api.example.com", methods=["GET"])
        self.assertEqual(answer["status"], "approved", answer)
        with QueueStore() as store:
            self.assertTrue(EgressGrants(store.for_bottle("web-1")).allows_route("api.example.com", "GET", "/x"))


class OverlapTest(unittest.TestCase):
    """``rule_matches`` for a rejecting rule, case by case."""

    def test_rejections_match_what_overlaps_and_only_that(self) -> None:
        def rejects(rule: dict[str, Any], pattern: bool, asked: dict[str, Any]) -> bool:
            full = {"methods": [], "paths": [], **rule}
            return rule_matches(full, pattern, TOOL_EGRESS_ALLOW, {"methods": [], "paths": [], **asked},
                                rejects=True)

        secret = {"host": "secret.example.com"}
        self.assertTrue(rejects(secret, False, {"host": "secret.example.com", "methods": ["GET"]}))
        self.assertTrue(rejects(secret, False, {"host": "*.example.com"}))
        self.assertFalse(rejects(secret, False, {"host": "api.example.com"}))
        self.assertFalse(rejects(secret, False, {"host": "x.secret.example.com"}))
        post = {"host": "*.example.com", "methods": ["POST"]}
        self.assertTrue(rejects(post, True, {"host": "a.example.com"}))
        self.assertTrue(rejects(post, True, {"host": "*.b.example.com", "methods": ["POST", "PUT"]}))
        self.assertFalse(rejects(post, True, {"host": "a.example.com", "methods": ["GET"]}))
        self.assertFalse(rejects(post, True, {"host": "example.com"}))
        upload = {"host": "files.example", "paths": ["/upload/"]}
        for path in ("/", "/up", "/upload/", "/upload/big/", "/%75pload/", "/UPLOAD/"):
            self.assertTrue(rejects(upload, False, {"host": "files.example", "paths": [path]}), path)
        self.assertFalse(rejects(upload, False, {"host": "files.example", "paths": ["/download/"]}))
        # An agent's own wildcard, rejected from now on: its like is rejected, a name under it is asked about.
        wild = {"host": "*.python.org"}
        self.assertTrue(rejects(wild, False, {"host": "*.python.org", "methods": ["GET"]}))
        self.assertTrue(rejects(wild, False, {"host": "*.org"}))
        self.assertFalse(rejects(wild, False, {"host": "docs.python.org"}))
        # A push's findings: one rejected finding among others is still that finding.
        self.assertTrue(rule_matches({"findings": ["a"]}, False, TOOL_GITLEAKS_ALLOW, {"findings": ["a", "b"]},
                                     rejects=True))
        self.assertFalse(rule_matches({"findings": ["a"]}, False, TOOL_GITLEAKS_ALLOW, {"findings": ["b"]},
                                      rejects=True))


class RuleDecidedFloodTest(TempDirTest):
    """An ask a standing rule decides at once is answered at once: before the fix next to this test, nothing
    bounded how many the agent filed, since the quota counted only proposals waiting for a person."""

    def test_filings_a_rule_decides_count_against_the_quota(self) -> None:
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject",
                             "--notes", "no pastes")
        self.assertEqual(added.returncode, 0, added.stderr)
        dashboard = subprocess.Popen([sys.executable, "-m", "bot_bottle", "dashboard", "--json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: (dashboard.terminate(), dashboard.communicate(timeout=10)))
        assert dashboard.stdout is not None
        self.assertIn("url", dashboard.stdout.readline())  # serving: its keeper applies the rules
        server, url = spawn("web-1", host_db_path(), "--wait-seconds", "10", "--max-pending", "10")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=10)))
        answers = []
        for number in range(30):
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": TOOL_EGRESS_ALLOW, "arguments": {"host": "pastebin.com",
                                                         "justification": "x" * 60_000 + str(number)}}}).encode()
            request = urllib.request.Request(url, body, {"Content-Type": "application/json",
                                                         "Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                answers.append(json.loads(answer.read())["result"])
        rejected = [a for a in answers if (a.get("structuredContent") or {}).get("status") == "rejected"]
        refused = [a for a in answers if a.get("isError")]
        self.assertEqual(len(rejected) + len(refused), 30, answers)
        # The server archives an answer once it is sent (README: "a decision is archived once it has been
        # returned"), so the agent's next ask of the same request can come first and be answered with that same
        # decision, filing nothing: the quota counts what was filed, the distinct proposals rejected.
        filed = {a["structuredContent"]["proposal_id"] for a in rejected}
        self.assertEqual(len(filed), 10, f"{len(filed)} filings were stored and decided by the rule")
        self.assertIn("or decided by a standing rule or expired, filed in the last 1h (10 of them)",
                      refused[0]["content"][0]["text"])
        with QueueStore() as store, store.db.read() as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM proposals").fetchone()[0], 10)
