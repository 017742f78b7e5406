"""A hostile agent's attacks on the host relay and the web dashboard, each a test.

Every test performs one attack with real sockets (and a real relay or
dashboard server) and asserts it changes nothing: no decision reaches a
revoked credential, no other bottle's queue is touched, no page runs agent
script, no decision is recorded other than the one shown. The attacks that
broke the product before its fix say so in their docstring.
"""

from __future__ import annotations

import json
import socket
import threading
from email.message import Message
from typing import Any

from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.relay import Caller
from bot_bottle.supervise import decide
from tests.hostile import parse_answer, request
from tests.relay_fixture import InProcessRelay
from tests.support import TempDirTest

PAYLOAD = '{"host": "api.example.com"}'


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


class RelayAttackCase(TempDirTest):
    """An in-process relay over this test's database, with web-1 and web-2 credentialed."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "relay.db"
        self.relay = InProcessRelay(self.db).register(self)
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.endpoint = self.relay.endpoint("web-1")
        self.other = self.relay.endpoint("web-2")
        # Set once the relay has authorized a request from its headers (before it reads the body).
        self.authorized = threading.Event()
        authorize = self.relay.service.authorize

        def noting(headers: Message) -> Caller:
            caller = authorize(headers)
            self.authorized.set()
            return caller

        self.relay.service.authorize = noting  # type: ignore[method-assign]

    def split_request(self, method: str, params: dict[str, Any], token: str) -> tuple[socket.socket, bytes]:
        """A connection that has sent a request's headers only (and been authorized), and the body still to send."""
        body = relay_message(method, params)
        whole = request(body, host="127.0.0.1", headers={"Authorization": f"Bearer {token}",
                                                                 "Connection": "close"})
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
        sock, body = self.split_request("response", {"id": filed.id}, self.endpoint.token)
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
                                                   "justification": "late"}, self.endpoint.token)
        self.relay.endpoint("web-1")  # minted again: the old token is replaced
        sock.sendall(body)
        answer = parse_answer(read_answer(sock))
        assert answer is not None
        document = answer.json()
        assert isinstance(document, dict)
        self.assertNotIn("result", document)
        self.assertEqual(document["error"]["code"], -32008, document)
        self.assertEqual(self.store.pending(), [])
