"""Grants and standing rules with real processes: sidecars (direct and through the relay), the relay, the CLI.

- A rule the operator made while approving decides the 2nd to the 50th
  matching request of a running sidecar without the operator, each in the
  audit log; another host, method, path, bottle or a subdomain is not
  matched and waits.
- A running egress helper stops honouring a grant within 5 s of its
  revocation, or of its end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.demo import McpHttpAgent
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.timestamps import as_datetime
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from tests.helpers.relay_fixture import free_port, relay_env, start_relay_process, stop_process
from tests.helpers.support import REPO, TempDirTest, wait_until

DOCS = {"host": "docs.python.org", "paths": ["/3/"], "justification": "the stdlib docs"}
REVOKE_WITHIN_SEC = 5.0  # the helper's cache; the test allows scheduling on a loaded machine besides
MARGIN_SEC = 3.0


class SidecarCase(TempDirTest):
    """A relay process (the host's keeper, and the relay) and a sidecar for web-1, direct or through the relay."""

    through_relay = False

    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        QueueStore(self.db).close()
        self.port = free_port()
        self.relay = start_relay_process(self.home, self.port)
        self.addCleanup(stop_process, self.relay)
        self.url = self.sidecar("web-1")
        self.agent = McpHttpAgent(self.url, timeout=60)
        self.agent.start()

    def endpoint(self, bottle: str) -> Path:
        with RelayCredentials(self.db) as credentials:
            token = credentials.mint(bottle)
        url = f"http://127.0.0.1:{self.port}/"
        return write_endpoint_file(bottle_relay_dir(bottle), RelayEndpoint(url=url, token=token, bottle=bottle))

    def sidecar(self, bottle: str, wait_seconds: str = "20") -> str:
        options = ("--wait-seconds", wait_seconds)
        if self.through_relay:
            server, url = spawn(bottle, None, *options, relay_file=self.endpoint(bottle))
        else:
            server, url = spawn(bottle, self.db, *options)
        self.addCleanup(stop_process, server)  # type: ignore[arg-type]
        return url

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot_bottle", *args], env=relay_env(self.home), cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    def approve_first(self, *options: str) -> dict[str, Any]:
        """The agent asks for the docs; the operator approves it from the CLI with ``options``."""
        answers: list[dict[str, Any]] = []
        asking = threading.Thread(target=lambda: answers.append(self.agent.call("egress-allow", dict(DOCS))))
        asking.start()
        with QueueStore(self.db) as store:
            (proposal,) = wait_until(lambda: store.pending("web-1"), what="the first proposal")
        digest = json.loads(self.cli("proposals", "show", proposal.id, "--json").stdout)["digest"]
        result = self.cli("proposals", "approve", proposal.short_id, "--digest", digest, *options)
        self.assertEqual(result.returncode, 0, result.stderr)
        asking.join(60)
        self.assertEqual(answers[0]["status"], "approved", answers)
        return answers[0]


class RuleInSidecarsTest(SidecarCase):
    def test_a_rule_decides_the_next_49_requests_each_audited(self) -> None:
        """Approved once 'for this bottle, 7 days': the next 49 requests are answered approved, each audited.

        A request filed again before the sidecar archived the last answer is
        that same proposal and decision (the dedupe rule): every answer is
        backed by its decision's entry all the same.
        """
        first = self.approve_first("--for", "7d", "--remember", "bottle")
        answers = [first]
        for number in range(2, 51):
            with self.subTest(request=number):
                answer = self.agent.call("egress-allow", {**DOCS, "justification": f"request {number}"})
                self.assertEqual(answer["status"], "approved", answer)
                answers.append(answer)
        with AuditStore(self.db) as audit:
            entries = list(audit.export())
            self.assertTrue(audit.verify().ok)
        decided = {e.proposal_id: e for e in entries if e.action == "approved"}
        for answer in answers:
            self.assertIn(answer["proposal_id"], decided, "each answer is an audited decision")
        by_rule = [e for e in decided.values() if e.actor.startswith("rule ")]
        self.assertEqual(len(by_rule), len(decided) - 1, "all but the operator's first are the rule's")
        self.assertGreater(len(by_rule), 25)
        self.assertEqual([e.action for e in entries if e.action == "rule-added"], ["rule-added"])
        with GrantStore(self.db) as grants:
            self.assertEqual(len(grants.listing("web-1")), len(decided), "each decision made its grant")

    def test_what_the_rule_does_not_match_waits_for_the_operator(self) -> None:
        """Another host, method, path or a subdomain (this bottle), or the same from another bottle: pending."""
        self.approve_first("--for", "7d", "--remember", "bottle")
        mine = McpHttpAgent(self.sidecar("web-1", wait_seconds="1"), timeout=60)
        theirs = McpHttpAgent(self.sidecar("web-2", wait_seconds="1"), timeout=60)
        mine.start()
        theirs.start()
        asks: list[tuple[McpHttpAgent, dict[str, Any]]] = [
            (mine, {"host": "pypi.org", "paths": ["/3/"]}),
            (mine, {"host": "docs.python.org", "paths": ["/3/"], "methods": ["POST"]}),
            (mine, {"host": "docs.python.org", "paths": ["/2/"]}),
            (mine, {"host": "docs.python.org"}),
            (mine, {"host": "www.docs.python.org", "paths": ["/3/"]}),
            (theirs, {"host": "docs.python.org", "paths": ["/3/"]}),
        ]
        # Asked all at once: each answer is the sidecar's 1 s wait running out, and no ask depends on another.
        with ThreadPoolExecutor(len(asks)) as pool:
            answers = list(pool.map(lambda ask: ask[0].call("egress-allow", {
                **ask[1], "justification": "not what the rule says"}), asks))
        for (agent, arguments), answer in zip(asks, answers, strict=True):
            with self.subTest(arguments=arguments, bottle="web-2" if agent is theirs else "web-1"):
                self.assertEqual(answer["status"], "pending", answer)
        with QueueStore(self.db) as store:
            self.assertEqual(len(store.pending()), len(asks))


class RuleThroughTheRelayTest(RuleInSidecarsTest):
    """The same, the sidecars filing through the relay: the rule decides in the filing transaction."""

    through_relay = True


HELPER = """
import sys, time
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.transport import find_transport
db, relay = sys.argv[1], sys.argv[2]
transport = find_transport(db if db != "-" else None, relay if relay != "-" else None)
bottle = transport.open("web-1")
grants = EgressGrants(bottle)
while True:
    print("T" if grants.allows_route("docs.python.org", "GET", "/3/library/") else "F", time.time(), flush=True)
    time.sleep(0.1)
"""


class RunningHelperTest(SidecarCase):
    """An egress helper running in its own process, asking its grants ten times a second."""

    def helper(self) -> subprocess.Popen[str]:
        relay = str(self.endpoint("web-1")) if self.through_relay else "-"
        db = "-" if self.through_relay else str(self.db)
        process = subprocess.Popen([sys.executable, "-c", HELPER, db, relay], env=relay_env(self.home), cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(stop_process, process)  # type: ignore[arg-type]
        return process

    def flips_to_no(self, process: subprocess.Popen[str], since: float) -> float:
        """Seconds after ``since`` until the helper answers no (it must have answered yes first)."""
        assert process.stdout is not None
        said_yes = False
        deadline = since + REVOKE_WITHIN_SEC + MARGIN_SEC + 5
        while time.time() < deadline:
            answer, stamp = process.stdout.readline().split()
            if answer == "T":
                said_yes = True
            elif said_yes and float(stamp) >= since:
                return float(stamp) - since
        self.fail("the helper went on honouring the grant")

    def test_a_revoked_grant_stops_a_running_helper_within_5_s(self) -> None:
        """grants revoke: the helper, which said yes, says no within 5 s."""
        self.approve_first("--for", "7d")
        process = self.helper()
        assert process.stdout is not None
        stdout = process.stdout
        wait_until(lambda: stdout.readline().startswith("T"), what="the helper honouring the grant")
        with GrantStore(self.db) as grants:
            (grant,) = grants.listing("web-1")
        revoked_at = time.time()
        result = self.cli("grants", "revoke", grant.short_id, "--reason", "the mirror is down")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertLessEqual(self.flips_to_no(process, revoked_at), REVOKE_WITHIN_SEC + MARGIN_SEC)

    def test_an_ended_grant_stops_a_running_helper_within_5_s(self) -> None:
        """A grant for 4 s: the helper says yes, then no within 5 s of the end."""
        self.approve_first("--for", "4s")
        process = self.helper()
        with GrantStore(self.db) as grants:
            (grant,) = grants.listing("web-1")
        ends = as_datetime(grant.ends_at).timestamp()
        self.assertLessEqual(self.flips_to_no(process, ends), REVOKE_WITHIN_SEC + MARGIN_SEC)


class RunningHelperThroughTheRelayTest(RunningHelperTest):
    """The same, the helper asking through the relay."""

    through_relay = True
