"""A hostile agent's attacks on the host relay and the web dashboard, each a test.

Every test performs one attack with real sockets (and a real relay or
dashboard server) and asserts it changes nothing: no decision reaches a
revoked credential, no other bottle's queue is touched, no page runs agent
script, no decision is recorded other than the one shown. The attacks that
broke the product before its fix say so in their docstring.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, ClassVar
from urllib.parse import urlencode

from bot_bottle.audit_store import AuditStore
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_GITLEAKS_ALLOW, sha256_text
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.relay.service import Caller
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.jsonrpc_server import MAX_CONCURRENT_REQUESTS
from bot_bottle.wire.relay_file import RelayEndpoint
from tests.helpers.dashboard import DashboardCase
from tests.helpers.hostile import exchange, parse_answer, request
from tests.helpers.relay_fixture import (
    RelayCase,
    free_port,
    relay_env,
    signed,
    signed_request,
    start_relay_process,
    stop_process,
)
from tests.helpers.support import REPO, TempDirTest, wait_until

PAYLOAD = '{"host": "api.example.com"}'
RELAY_CLI = [sys.executable, "-m", "bot_bottle", "relay"]


def relay_message(method: str, params: dict[str, Any]) -> bytes:
    """A relay JSON-RPC message's bytes."""
    return json.dumps({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).encode()


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 20 s pass)."""
    received = bytearray()
    sock.settimeout(20)
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


class RelayAttackCase(RelayCase):
    """An in-process relay over this test's database, with web-1 and web-2 credentialed."""

    def setUp(self) -> None:
        super().setUp()
        self.endpoint = self.relay.endpoint("web-1")
        self.other = self.relay.endpoint("web-2")
        # Set once the relay has authorized a request from its headers (before it reads the body).
        self.authorized = threading.Event()
        self.authorizations = threading.Semaphore(0)  # one release per request authorized
        authorize = self.relay.service.authorize

        def noting(headers: Message) -> Caller:
            caller = authorize(headers)
            self.authorized.set()
            self.authorizations.release()
            return caller

        self.relay.service.authorize = noting  # type: ignore[method-assign]

    def split_request(self, method: str, params: dict[str, Any],
                      endpoint: RelayEndpoint) -> tuple[socket.socket, bytes]:
        """A connection that has sent a request's headers only (and been authorized), and the body still to send."""
        body = relay_message(method, params)
        whole = request(body, host="127.0.0.1", headers=signed(endpoint, body, Connection="close"))
        head = whole[: len(whole) - len(body)]
        sock = socket.create_connection(("127.0.0.1", self.relay.port), timeout=20)
        self.addCleanup(sock.close)
        sock.sendall(head)
        self.assertTrue(self.authorized.wait(20), "the relay never authorized the headers")
        return sock, body


class RevokedMidRequestTest(RelayAttackCase):
    """BROKE before the fix: a credential authorized on its headers was used after its revocation."""

    def test_a_token_revoked_between_headers_and_body_reads_no_decision(self) -> None:
        """Headers sent (authorized), the operator revokes, then the body asks for the decision: refused."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, PAYLOAD, "why")
        decide(filed.id, STATUS_APPROVED, "fine", store=self.store)
        sock, body = self.split_request("response", {"id": filed.id}, self.endpoint)
        self.assertTrue(self.relay.credentials.revoke("web-1"))
        sock.sendall(body)
        answer = parse_answer(read_answer(sock))
        assert answer is not None
        document = answer.json()
        assert isinstance(document, dict)
        self.assertNotIn("result", document)
        self.assertEqual(document["error"]["code"], -32008, document)

    def test_a_token_replaced_between_headers_and_body_files_nothing(self) -> None:
        """The bottle is prepared again (new token) while the old token's filing is in flight: nothing filed."""
        sock, body = self.split_request("submit", {"tool": TOOL_EGRESS_ALLOW, "payload": PAYLOAD,
                                                   "justification": "late"}, self.endpoint)
        self.relay.endpoint("web-1")  # minted again: the old token is replaced
        sock.sendall(body)
        answer = parse_answer(read_answer(sock))
        assert answer is not None
        document = answer.json()
        assert isinstance(document, dict)
        self.assertNotIn("result", document)
        self.assertEqual(document["error"]["code"], -32008, document)
        self.assertEqual(self.store.pending(), [])


class OtherBottleTest(RelayAttackCase):
    def test_another_bottles_decided_proposal_cannot_be_waited_on_read_or_archived(self) -> None:
        """web-2's token names web-1's decided proposal in every method: each answers as for no id; nothing moves."""
        filed = self.store.submit("web-1", TOOL_EGRESS_ALLOW, PAYLOAD, "mine")
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        answers = []
        for method, params in (("get", {"id": filed.id}), ("response", {"id": filed.id}),
                               ("wait", {"id": filed.id, "timeout": 0}), ("archive", {"id": filed.id})):
            answer, raw = exchange(self.relay.port, signed_request(self.other, relay_message(method, params)))
            assert answer is not None, raw[:200]
            document = answer.json()
            assert isinstance(document, dict)
            self.assertNotIn("result", document, method)
            answers.append(document["error"]["message"])
            self.assertNotIn("approved", json.dumps(document))
        # One wording for all: nothing tells web-2 the id exists elsewhere.
        self.assertEqual(len({a.replace(filed.id, "ID") for a in answers}), 1, answers)
        self.assertIsNone(self.store.get(filed.id).archived_at)


class OneBottleHoldsEveryPlaceTest(RelayAttackCase):
    """BROKE before the fix: one bottle trickling bodies held every place in flight; other bottles got only 503."""

    def test_a_bottle_trickling_bodies_leaves_room_for_the_others(self) -> None:
        """web-1 opens as many requests as the relay has places, each stalled mid-body: web-2 is still served."""
        places = MAX_CONCURRENT_REQUESTS
        stalled: list[socket.socket] = []
        for _ in range(places):
            # Each with a signature of its own (a nonce is served once), for a body that never comes whole.
            head = request(b"", host="127.0.0.1", length="100", headers=signed(self.endpoint, b"{" * 100))
            sock = socket.create_connection(("127.0.0.1", self.relay.port), timeout=20)
            self.addCleanup(sock.close)
            sock.sendall(head + b"{")
            stalled.append(sock)
            # Each authorized before the next opens: the relay cuts the oldest of one peer's connections still
            # waiting to be authenticated past its share (a quarter of its connections), and 128 opened at once
            # on a loaded machine got there (the test then waited for authorizations that never came).
            self.assertTrue(self.authorizations.acquire(timeout=20), "the relay never authorized web-1's request")
        answer, raw = exchange(self.relay.port, signed_request(self.other, relay_message("hello", {})))
        assert answer is not None, raw[:200]
        document = answer.json()
        assert isinstance(document, dict)
        self.assertEqual((answer.status, document.get("result")), (200, {"bottle": "web-2"}), document)
        # web-1's requests beyond its share were told to retry, before their bodies were read.
        answered, _, _ = select.select(stalled, [], [], 20)
        self.assertTrue(answered)
        firsts = [sock.recv(65536)[:13] for sock in answered]
        self.assertIn(b"HTTP/1.1 503 ", firsts, "some of web-1's requests were told to retry")
        # On a loaded machine a stalled body within web-1's share may reach its deadline first (408, or cut):
        # that is web-1's own loss. None of its requests is ever served.
        self.assertTrue(all(first in (b"HTTP/1.1 503 ", b"HTTP/1.1 408 ", b"") for first in firsts), firsts)


class ConnectionFloodTest(RelayAttackCase):
    def test_a_flood_without_a_token_cannot_shut_another_bottle_out(self) -> None:
        """BROKE before the fix: idle connections without a token filled the relay's cap and web-2's calls
        were refused (RelayUnreachable) for as long as the flood went on. Now connections waiting to be
        authenticated are a pool that cuts its oldest to make room: the flood's own are cut (closed), and
        web-2, which sends its headers at once, is served every time."""
        pool = self.relay.server.pool
        pool.limit, pool.per_peer = 8, 2
        filed = self.store.submit("web-2", TOOL_EGRESS_ALLOW, PAYLOAD, "mine")
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        flood = [socket.create_connection(("127.0.0.1", self.relay.port), timeout=20) for _ in range(8)]
        for sock in flood:
            self.addCleanup(sock.close)
        queue = RelayQueue(self.other, retry_for=5)
        wait_until(lambda: pool.held >= 2, 20, what="the flood to hold its share of the pool")
        for _ in range(5):
            response = queue.response(filed.id)
            assert response is not None
            self.assertEqual(response.status, STATUS_APPROVED)
            queue.submit(TOOL_EGRESS_ALLOW, '{"host": "other.example"}', "during the flood")
        # The flood's connections beyond its peer's share were cut: closed without a word (they sent none).
        wait_until(lambda: len(select.select(flood, [], [], 0)[0]) >= 6, 20, what="the flood's connections cut")
        answered, _, _ = select.select(flood, [], [], 0)
        self.assertTrue(all(sock.recv(65536) == b"" for sock in answered))
        self.assertLessEqual(pool.waiting, 2)


class RelayLogTest(TempDirTest):
    def test_agent_bytes_never_reach_the_operators_terminal_raw(self) -> None:
        """ESC, bidi and CSI bytes in every field a sidecar controls: the relay's log and status stay clean."""
        db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(db).close()
        with RelayCredentials(db) as credentials:
            token = credentials.mint("web-1")
        stderr_path = self.tmp / "relay.stderr"
        stderr: IO[str] = open(stderr_path, "w")  # noqa: SIM115 - closed by cleanup
        self.addCleanup(stderr.close)
        port = free_port()
        server = start_relay_process(self.home, port, "--request-timeout", "2", stderr=stderr)
        self.addCleanup(stop_process, server)
        evil = "\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\x9b31m"
        endpoint = RelayEndpoint(url=f"http://127.0.0.1:{port}/", token=token, bottle="web-1")
        attempts = [
            signed_request(endpoint, relay_message(evil, {})),
            signed_request(endpoint, relay_message("submit", {"tool": evil, "payload": evil, "justification": evil})),
            signed_request(endpoint, relay_message("get", {"id": evil, evil: 1})),
            signed_request(endpoint, relay_message("hello", {}), host=evil),
            request(relay_message("hello", {}), host="127.0.0.1", headers={"Authorization": f"BotBottle-HMAC {evil}"}),
            request(relay_message("hello", {}), host="127.0.0.1", method=evil),
            evil.encode("utf-8") + b"\r\n\r\n",
        ]
        for data in attempts:
            exchange(port, data, timeout=10)
        stop_process(server)
        status = subprocess.run([*RELAY_CLI, "status"], capture_output=True, text=True, env=relay_env(self.home),
                                cwd=REPO, timeout=60)
        for text in (stderr_path.read_text(encoding="utf-8", errors="replace"), status.stdout, status.stderr):
            for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
                self.assertNotIn(raw, text)
            self.assertNotIn("Traceback", text)


class DashboardRulesAttackTest(DashboardCase):
    def test_a_report_only_proposal_cannot_be_modified_by_a_hand_made_decide(self) -> None:
        """Skip the preview: post status=modified with a file and its matching digest straight to decide."""
        report = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, '{"findings": []}', "fixture")
        final = '{"findings": ["everything"]}'
        status, _, body = self.post(report, "decide", {"status": "modified", "final": final,
                                                       "final_sha256": sha256_text(final), "notes": "x"})
        self.assertEqual(status, 400)
        self.assertIn("report-only", body)
        self.assert_unchanged(report)

    def test_a_second_decision_and_a_file_on_an_approval_change_nothing(self) -> None:
        """An approval carrying a file records no file; a second decision of any kind is refused."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, PAYLOAD, "why")
        status, _, _ = self.post(route, "decide", {"status": "approved", "final": '{"host": "*"}',
                                                   "final_sha256": sha256_text('{"host": "*"}')})
        self.assertEqual(status, 303)
        for fields in ({"status": "rejected", "notes": "no"}, {"status": "approved"}):
            status, _, _ = self.post(route, "decide", fields)
            self.assertEqual(status, 409, fields)
        response = self.store.response(route.id)
        assert response is not None
        self.assertEqual((response.status, response.final_file), ("approved", None))
        self.assertEqual(AuditStore(database=self.store.db).count(), 1)


class _AgentApp(BaseHTTPRequestHandler):
    """The agent's own web app, published on another port of 127.0.0.1: it keeps every Cookie it is sent."""

    cookies: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _AgentApp.cookies.extend(self.headers.get_all("Cookie") or [])
        page = b"<p>the agent's app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class SessionCookieScopeTest(DashboardCase):
    """BROKE before the fix: the session cookie (Path=/) went to every server on 127.0.0.1, whatever its port.

    Browsers scope cookies by host, not port (SameSite too), so the operator's
    visit to an agent's app published at 127.0.0.1:OTHER handed the agent the
    session; a VM reaches the host's loopback (Docker Desktop's
    host.docker.internal), where the agent could then read the CSRF token from
    a page and post a decision with our Origin header forged.
    """

    def test_the_cookie_is_scoped_to_the_secret_root(self) -> None:
        """The cookie's Path is the root; outside the root even the session gets 404; refusals never name it."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, PAYLOAD, "secret-justification")
        token = urlencode({"token": self.dashboard.token})
        status, headers, _ = self.call("GET", f"/?{token}")
        self.assertEqual(status, 303)
        self.assertIn(f"Path={self.dashboard.root};", headers["set-cookie"] + ";")
        self.assertNotIn("Path=/;", headers["set-cookie"] + ";")
        for path in ("/", "/audit", "/static/app.js", "/api/changes", f"/?{token}", self.dashboard.root[:-1] + "/"):
            with self.subTest(path=path):
                status, _, body = self.call("GET", path, rooted=False)
                self.assertEqual(status, 404)
                self.assertNotIn("secret-justification", body)
                self.assertNotIn(self.dashboard.root, body)
        for path, session in (("/", False), ("/?token=wrong", False), ("/nope", True)):
            status, _, body = self.call("GET", path, session=session)
            self.assertIn(status, (403, 404))
            self.assertNotIn(self.dashboard.root, body)

    def test_an_agents_app_on_another_port_is_never_sent_the_session(self) -> None:
        """In Chromium: log in, then open the agent's app at 127.0.0.1:OTHER: it receives no session cookie."""
        from tests.helpers.browser import Browser

        browser = Browser()
        self.addCleanup(browser.close)
        app = ThreadingHTTPServer(("127.0.0.1", 0), _AgentApp)
        self.addCleanup(app.server_close)
        threading.Thread(target=app.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.addCleanup(app.shutdown)
        _AgentApp.cookies.clear()
        browser.get(self.server.url)
        self.assertIn("Inbox", browser.text())
        for path in ("/", "/anything"):
            browser.get(f"http://127.0.0.1:{app.server_address[1]}{path}")
            self.assertIn("the agent's app", browser.text())
        self.assertFalse([c for c in _AgentApp.cookies if self.dashboard.session in c], _AgentApp.cookies)


_RIVAL = """
import sys
from bot_bottle.errors import AlreadyDecided
from bot_bottle.decisions import decide
print("ready", flush=True)
sys.stdin.readline()
for proposal_id in reversed(sys.argv[2:]):  # from the other end: the two meet somewhere
    try:
        decide(proposal_id, "rejected", "the TUI said no", None, "rival (tui)", sys.argv[1])
    except AlreadyDecided:
        pass
"""


class FirstDecisionWinsTest(DashboardCase):
    def test_the_dashboard_and_another_process_deciding_at_once_record_one_decision_each(self) -> None:
        """Another process rejects 30 proposals from the other end while the page approves them: one decision each."""
        filed = [self.store.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "h{i}.example"}}', "why")
                 for i in range(30)]
        rival = subprocess.Popen([sys.executable, "-c", _RIVAL, str(self.path), *(p.id for p in filed)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                                 env=relay_env(self.home))
        self.addCleanup(lambda: rival.poll() is None and rival.kill())
        assert rival.stdin is not None and rival.stdout is not None
        self.assertEqual(rival.stdout.readline().strip(), "ready")
        rival.stdin.write("go\n")
        rival.stdin.flush()
        statuses = [self.post(p, "decide", {"status": "approved", "notes": "page"})[0] for p in filed]
        rival.communicate(timeout=120)
        self.assertEqual(rival.returncode, 0)
        self.assertTrue(set(statuses) <= {303, 409}, statuses)
        audit = AuditStore(database=self.store.db)
        entries = {e.proposal_id: e for e in audit.entries(limit=100)}
        self.assertEqual(audit.count(), len(filed))
        for proposal, status in zip(filed, statuses, strict=True):
            response = self.store.response(proposal.id)
            assert response is not None
            # What the page was told is what was recorded, and the audit entry says the same.
            self.assertEqual(response.status == "approved", status == 303)
            self.assertEqual(entries[proposal.id].action, response.status)
        self.assertTrue(audit.verify().ok)
