"""What a tap on the wire between a sidecar and the relay sees, measured: the basis of the no-TLS decision.

A recording proxy sits between bottle B's real sidecar process and the relay
process and keeps every byte both ways while B's agent asks for a route and
the operator approves it. docs/decisions.md ("The relay's traffic is signed,
not encrypted") states what is found here and why it is accepted: the
proposal, its justification and the decision cross in the clear; no token,
no signing key and nothing a tap could use to act as B or as the relay do.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import IO

from bot_bottle.db import open_db
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from bot_bottle.wire.signing import token_sha256
from tests.helpers.hostile import exchange
from tests.helpers.relay_attacks import Honest
from tests.helpers.relay_fixture import free_port, start_relay_process, stop_process
from tests.helpers.support import TempDirTest


class RecordingProxy:
    """A TCP proxy on a loopback port that forwards to ``target`` and keeps each connection's bytes."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.requests: list[bytes] = []  # what each connection sent, whole
        self.answers: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        sent, answered = bytearray(), bytearray()
        with client, socket.create_connection(("127.0.0.1", self.target)) as upstream:
            def pump(source: socket.socket, sink: socket.socket, into: bytearray) -> None:
                with contextlib.suppress(OSError):
                    while chunk := source.recv(65536):
                        into += chunk
                        sink.sendall(chunk)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, client, answered))
            back.start()
            pump(client, upstream, sent)
            back.join(60)
        with self._lock:
            self.requests.append(bytes(sent))
            self.answers.append(bytes(answered))

    def close(self) -> None:
        """Stop accepting."""
        self.listener.close()


class TapTest(TempDirTest):
    def test_what_a_tap_sees_and_what_it_cannot_do(self) -> None:
        """The proposal and decision are readable; no token or key crosses; a captured request is not served
        again (a captured answer cannot pass for another request's: tests/attacks/test_relay_signing.py)."""
        db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(db).close()
        port = free_port()
        stderr: IO[str] = open(self.tmp / "relay.stderr", "w")  # noqa: SIM115 - closed by cleanup
        self.addCleanup(stderr.close)
        relay = start_relay_process(self.home, port, stderr=stderr)
        self.addCleanup(stop_process, relay)
        proxy = RecordingProxy(port)
        self.addCleanup(proxy.close)
        with RelayCredentials(db) as credentials:
            token = credentials.mint("honest-b")
        # B's sidecar reaches the relay only through the tap.
        endpoint = RelayEndpoint(url=f"http://127.0.0.1:{proxy.port}/", token=token, bottle="honest-b")
        honest = Honest(db, write_endpoint_file(bottle_relay_dir("honest-b"), endpoint))
        self.addCleanup(honest.close)
        approved, _ = honest.round_trip()
        self.assertTrue(approved)
        wire = b"".join(proxy.requests) + b"".join(proxy.answers)
        self.assertGreater(len(proxy.requests), 2)  # hello, submit, wait at least
        # What a tap reads: the tool, the host asked for, the justification, the decision and its notes.
        for readable in (TOOL_EGRESS_ALLOW.encode(), b".example", b"docs", b"approved", b"fine"):
            self.assertIn(readable, wire)
        # What it never reads: the token, or the key both ends sign with (the token's sha256).
        self.assertNotIn(token.encode(), wire)
        self.assertNotIn(token_sha256(token).encode(), wire)
        # What it cannot do with what it read: play a captured request again (its nonce is spent: told to
        # retry, nothing served), or take the relay's answer for another request (bound to its nonce).
        submit = next(r for r in proxy.requests if b'"method": "submit"' in r)
        again, _ = exchange(port, submit)
        assert again is not None
        self.assertEqual(again.status, 503)
        self.assertIn(b"spent already", again.body)
        with RelayCredentials(db) as credentials, credentials.db.read() as conn:
            filed = conn.execute("SELECT count(*) FROM proposals WHERE queue_key = 'honest-b'").fetchone()[0]
        self.assertEqual(filed, 1)
