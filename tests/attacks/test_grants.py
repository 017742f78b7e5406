"""Grants against an agent that wants one to last longer than the operator said: each way found in review.

Every test here is an attack that got past a revocation or a grant's end
before the fix next to it, done with the real tools: git and gitleaks pushing
through a git-gate remote, and an egress helper in a process of its own
asking through a relay process.

The hole they share: filing a proposal identical to one still in the queue
returns that one (the dedupe rule), and that included one decided long ago
but never archived (the sidecar's wait ran out before the operator answered).
Its old approval then answered the new request, after the grant it made was
revoked or had ended.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bot_bottle.decisions import decide
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.policy.subjects import rule_matches
from bot_bottle.queue_store import BottleQueue, QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW, TOOL_GITLEAKS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from tests.helpers.git_remote import SECRET_ALLOWED, GateCase, github_token
from tests.helpers.relay_fixture import free_port, relay_env, start_relay_process, stop_process
from tests.helpers.support import REPO, TempDirTest, wait_until


class StaleApprovalAtTheGateTest(GateCase):
    """A push whose wait ran out, approved later: its grant revoked or ended, the same push asks again."""

    def approved_after_the_wait(self, grant_for: int | None = None) -> str:
        """Push a marked secret with a 1 s wait (refused, left pending), then approve it; the proposal's id."""
        self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        self.hook(timeout=1)
        first = self.push()
        self.assertNotEqual(first.returncode, 0)
        self.assertIn("no decision within 1 s", first.stderr)
        (pending,) = self.store.pending("web-1")
        decide(pending.id, STATUS_APPROVED, "a test fixture", store=self.store, grant_for=grant_for)
        return str(pending.id)

    def assert_asks_again(self, stale: str) -> None:
        again = self.push()
        self.assertNotEqual(again.returncode, 0, f"the old approval let the push through: {again.stderr}")
        self.assertIn("no decision within 1 s", again.stderr)
        fresh = [p.id for p in self.store.pending("web-1")]
        self.assertEqual(len(fresh), 1, "the push filed a new proposal for the operator")
        self.assertNotEqual(fresh[0], stale)

    def test_the_same_push_after_its_grant_was_revoked(self) -> None:
        """Revoked: pushing the same commits again is not answered by the old approval."""
        stale = self.approved_after_the_wait()
        with GrantStore(self.db) as grants:
            (grant,) = grants.live("web-1", TOOL_GITLEAKS_ALLOW)
            grants.revoke(grant.id, "that was no fixture", revoked_by="operator")
        self.assert_asks_again(stale)

    def test_the_same_push_after_its_grant_ended(self) -> None:
        """Approved for 2 s: pushed again after that, the old approval answers nothing."""
        stale = self.approved_after_the_wait(grant_for=2)
        with GrantStore(self.db) as grants:
            wait_until(lambda: not grants.live("web-1", TOOL_GITLEAKS_ALLOW), 10, what="the grant's end")
        self.assert_asks_again(stale)

    def test_the_same_push_while_its_grant_stands_passes(self) -> None:
        """The other side: while the grant stands, the same push passes (on the grant), asking nothing."""
        stale = self.approved_after_the_wait()
        again = self.push()
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("covered by the operator's grant", again.stderr)
        self.assertEqual([p.id for p, _ in self.store.listing("web-1", include_decided=True)], [stale])
        self.assertEqual(self.store.pending("web-1"), [])


TOKEN = "ghp_" + "Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0XcVbNm"
# One token override per line of stdin, through the relay, with a 1 s wait; prints True or False.
HELPER = """
import sys
from bot_bottle.sidecar.egress import EgressGrants, request_token_override
from bot_bottle.sidecar.transport import find_transport
bottle = find_transport(None, sys.argv[1]).open("web-1")
grants = EgressGrants(bottle, ttl=0)
token = sys.argv[2]
for _ in sys.stdin:
    print(request_token_override(bottle, grants, host="api.github.com", method="POST", path="/repos/a/b",
                                 detector="github-pat", context="auth: " + token, value=token, timeout=1,
                                 poll_interval=0.05), flush=True)
"""


class StaleApprovalAtTheProxyTest(TempDirTest):
    """An egress helper in its own process, through a relay process: a token override approved after its wait."""

    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        QueueStore(self.db).close()
        self.port = free_port()
        relay = start_relay_process(self.home, self.port)
        self.addCleanup(stop_process, relay)
        with RelayCredentials(self.db) as credentials:
            token = credentials.mint("web-1")
        endpoint = RelayEndpoint(url=f"http://127.0.0.1:{self.port}/", token=token, bottle="web-1")
        relay_file = write_endpoint_file(bottle_relay_dir("web-1"), endpoint)
        self.helper = subprocess.Popen([sys.executable, "-c", HELPER, str(relay_file), TOKEN], env=relay_env(self.home),
                                       cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(stop_process, self.helper)  # type: ignore[arg-type]
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def ask(self) -> bool:
        assert self.helper.stdin is not None and self.helper.stdout is not None
        self.helper.stdin.write("go\n")
        self.helper.stdin.flush()
        return self.helper.stdout.readline().strip() == "True"

    def test_the_same_token_after_its_grant_was_revoked(self) -> None:
        """Approved after the wait ran out, then revoked: the token is blocked and the operator asked again."""
        self.assertFalse(self.ask())  # the wait runs out: blocked, the proposal left for the operator
        (pending,) = self.store.pending("web-1")
        decide(pending.id, STATUS_APPROVED, "deploy token", store=self.store)
        self.assertTrue(self.ask(), "on the grant")
        with GrantStore(self.db) as grants:
            (grant,) = grants.live("web-1", TOOL_EGRESS_TOKEN_ALLOW)
            started = time.monotonic()
            grants.revoke(grant.id, "leaked", revoked_by="operator")
        self.assertFalse(self.ask(), "the old approval let the token through after its grant was revoked")
        self.assertLess(time.monotonic() - started, 30)
        fresh = self.store.pending("web-1")
        self.assertEqual(len(fresh), 1, "a new proposal for the operator")
        self.assertNotEqual(fresh[0].id, pending.id)


class PathOutsideTheGrantTest(TempDirTest):
    """A route approved for the path prefix /3/ of docs.python.org: a path that starts with /3/ as text but that
    the server resolves outside it (dot segments, raw or encoded, as servers and proxies decode them)."""

    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore(self.tmp / "paths.db")
        self.addCleanup(self.store.close)
        bottle = self.store.for_bottle("web-1")
        proposal = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.python.org", "methods": ["GET"], '
                                 '"paths": ["/3/"]}', "the docs")
        decide(proposal.id, STATUS_APPROVED, "the docs", store=self.store)
        self.grants = EgressGrants(bottle, ttl=0)

    def test_dot_segments_leave_the_prefix(self) -> None:
        """/3/../admin is /admin to the server (RFC 3986's remove_dot_segments): not covered, whatever its spelling."""
        for path in ("/3/../admin", "/3/./../admin", "/3/..", "/3/%2e%2e/admin", "/3/%2E%2e/admin", "/3/.%2e/admin",
                     "/3/%252e%252e/admin", "/3/..;/admin", "/3/..;x=1/admin", "/3/..%2fadmin", "/3/%2e%2e%2fadmin",
                     "/3/..\\admin", "/3/%5c..%5cadmin", "/3/..%00/admin", "/3/library/../../admin"):
            with self.subTest(path=path):
                self.assertFalse(self.grants.allows_route("docs.python.org", "GET", path))

    def test_what_stays_inside_the_prefix_is_covered(self) -> None:
        """The other side: plain paths under /3/, a query holding dots, a file name with dots."""
        for path in ("/3/", "/3/library/os.html", "/3/library/?q=../x", "/3/a..b/", "/3/.well-known.txt",
                     "/3/library/?q=#../x"):
            with self.subTest(path=path):
                self.assertTrue(self.grants.allows_route("docs.python.org", "GET", path))
        for host, method, path in (("docs.python.org", "POST", "/3/"), ("docs.python.org", "GET", "/2/"),
                                   ("www.docs.python.org", "GET", "/3/"),
                                   ("docs.python.org.evil.example", "GET", "/3/")):
            with self.subTest(host=host, method=method, path=path):
                self.assertFalse(self.grants.allows_route(host, method, path))

    def test_a_pattern_rule_does_not_approve_a_path_that_leaves_its_prefix(self) -> None:
        """A rule the operator typed as a pattern for /3/ on *.python.org decides nothing for /3/../admin."""
        rule = {"host": "*.python.org", "methods": [], "paths": ["/3/"]}
        self.assertTrue(rule_matches(rule, True, TOOL_EGRESS_ALLOW,
                                     {"host": "docs.python.org", "methods": ["GET"], "paths": ["/3/library/"]}))
        for path in ("/3/../admin/", "/3/%2e%2e/admin/", "/3/..;/admin/"):
            with self.subTest(path=path):
                self.assertFalse(rule_matches(rule, True, TOOL_EGRESS_ALLOW,
                                              {"host": "docs.python.org", "methods": ["GET"], "paths": [path]}))


class SlowAnswer(BottleQueue):
    """A queue handle whose answer arrives ``delay`` seconds after the grants were read (a relay slowed down)."""

    delay = 0.0

    def live_grants(self, tool: str) -> list[Grant]:
        found = super().live_grants(tool)
        time.sleep(self.delay)
        return found


class SlowLookupTest(TempDirTest):
    """The helper's 5 s cache counts from when the grants were asked for, not from when the answer came."""

    def test_a_late_answer_is_not_kept_past_5_s_from_the_question(self) -> None:
        """A lookup answered 2 s late is kept at most the rest of the 5 s: a grant revoked just after it was
        read is honoured no longer than 5 s (it was kept 5 s from the answer, 7 s in all)."""
        store = QueueStore(self.tmp / "slow.db")
        self.addCleanup(store.close)
        bottle = SlowAnswer(store, "web-1")
        proposal = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        decide(proposal.id, STATUS_APPROVED, "the docs", store=store)
        grants = EgressGrants(bottle)
        bottle.delay = 2.0
        asked = time.monotonic()
        self.assertTrue(grants.allows_route("docs.python.org", "GET", "/"))
        with GrantStore(database=store.db) as granted:
            (grant,) = granted.live("web-1", TOOL_EGRESS_ALLOW)
            granted.revoke(grant.id, "revoked while the answer travelled", revoked_by="operator")
        bottle.delay = 0.0
        while time.monotonic() - asked < 5.5:
            time.sleep(0.1)
        self.assertFalse(grants.allows_route("docs.python.org", "GET", "/"),
                         "the revoked grant was still honoured more than 5 s after it was read")


class FindingThatLooksLikeAGrantedOneTest(GateCase):
    """Two files whose names read the same once made printable (a real newline, and a backslash and an n): a
    grant for the one the operator was shown must not cover the other, pushed to another remote later."""

    def test_a_secret_already_on_one_remote_rides_a_grant_to_another(self) -> None:
        """The origin already holds a real token at 'a\\nb.py' (a push there does not scan it again). The agent
        adds a fake one at 'a<newline>b.py': the origin's gate shows only that, and the operator approves it.
        Pushed to a second remote, the real one is asked about: a finding is known by the commit that brought
        it there (here the origin's), not only by a name that reads the same. Held."""
        real, fake = github_token(11), github_token(12)
        second = self.tmp / "second.git"
        self.git("init", "-q", "--bare", str(second), cwd=self.tmp)
        self.git("push", "-q", str(second), "HEAD:refs/heads/main")
        install_hook(second, "web-1", db_path=self.db, gitleaks=self.gitleaks, pythonpath=str(REPO), timeout=1)
        (self.work / "a\\nb.py").write_text(f'token = "{real}"  # gitleaks:allow\n')
        self.git("add", "a\\nb.py")
        self.git("commit", "-q", "-m", "the origin's history")
        self.git("fetch", "-q", str(self.work), "HEAD:refs/heads/main", cwd=self.remote)  # past its gate
        (self.work / "a\nb.py").write_text(f'token = "{fake}"  # gitleaks:allow\n')
        self.git("add", "a\nb.py")
        self.git("commit", "-q", "-m", "a fixture")
        decider = self.decide_later(STATUS_APPROVED, "a fake token for the tests")
        first = self.push()
        decider.join(60)
        self.assertEqual(first.returncode, 0, first.stderr)
        (shown,) = [p for p, _ in self.store.listing("web-1", include_decided=True)]
        self.assertEqual(len(json.loads(shown.payload)["findings"]), 1, "the origin's gate showed one finding")
        again = subprocess.run(["git", "push", str(second), "HEAD:main"], cwd=self.work, capture_output=True,
                               text=True, timeout=120, env={"HOME": str(self.home), "PATH": "/usr/bin:/bin",
                                                            "GIT_CONFIG_NOSYSTEM": "1"})
        self.assertNotEqual(again.returncode, 0, f"the real token rode the fake one's grant: {again.stderr}")
        self.assertIn("no decision within 1 s", again.stderr)
        (asked,) = self.store.pending("web-1")
        self.assertEqual(len(json.loads(asked.payload)["findings"]), 1, "only the real token is asked about")
        self.assertIn("1 more are covered by a grant", asked.justification)
