"""A hostile agent's attacks on the relay's signed wire protocol (second round), each a test.

The agent sits in a VM beside its sidecar: it can watch, capture, delay,
replay and rewrite the traffic between the sidecar and the host relay, and
answer in the relay's place, but it has no bottle's key. Every test performs
one attack over real sockets (a relay in a thread, or ``bot-bottle relay`` as
a process) and asserts that it changes nothing. The attacks that broke the
product before its fix say so in their docstring.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from unittest import mock

from bot_bottle.db import open_db
from bot_bottle.errors import AlreadyDecided, RelayError, RelayUnreachable, RetryLater, Unauthorized
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.relay.nonces import NonceLedger
from bot_bottle.relay.process import NONCES_FILENAME
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint
from bot_bottle.wire.signing import (
    AUTH_SCHEME,
    CLOCK_SKEW_SEC,
    SIGNATURE_HEADER,
    SignedRequest,
    request_mac,
    sign_answer,
    sign_request,
    token_sha256,
)
from tests.helpers.hostile import exchange, parse_answer, request
from tests.helpers.relay_fixture import RelayCase, free_port, start_relay_process, stop_process
from tests.helpers.support import TempDirTest

PAYLOAD = '{"host": "api.example.com"}'


def submit_body(justification: str = "signed") -> bytes:
    """A relay ``submit`` message's bytes."""
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "submit", "params": {
        "tool": TOOL_EGRESS_ALLOW, "payload": PAYLOAD, "justification": justification}}).encode()


def hand_signed(endpoint: RelayEndpoint, body: bytes, *, ts: str | None = None, nonce: str | None = None,
                bottle: str | None = None) -> str:
    """An Authorization value signed with ``endpoint``'s key over fields given as raw text (for parser games)."""
    ts = ts if ts is not None else str(int(time.time()))
    nonce = nonce or secrets.token_hex(16)
    bottle = bottle or endpoint.bottle
    digest = hashlib.sha256(body).hexdigest()
    mac = request_mac(token_sha256(endpoint.token), bottle, ts, nonce, digest)
    return f"{AUTH_SCHEME} bottle={bottle},ts={ts},nonce={nonce},body={digest},mac={mac}"


class SigningCase(RelayCase):
    """An in-process relay over this test's database, with web-1 and web-2 credentialed."""

    def setUp(self) -> None:
        super().setUp()
        self.endpoint = self.relay.endpoint("web-1")
        self.other = self.relay.endpoint("web-2")

    def send(self, authorization: str | list[str] | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """One raw request with these Authorization header value(s); the status and JSON body answered."""
        values = [] if authorization is None else [authorization] if isinstance(authorization, str) else authorization
        head = request(body, host="127.0.0.1")
        head, _, _ = head.partition(b"\r\n\r\n")
        extra = "".join(f"\r\nAuthorization: {value}" for value in values)
        answer, raw = exchange(self.relay.port, head + extra.encode("latin-1", "replace") + b"\r\n\r\n" + body)
        self.assertIsNotNone(answer, raw[:300])
        assert answer is not None
        document = answer.json()
        assert isinstance(document, dict)
        return answer.status, document

    def filed(self) -> int:
        """How many proposals the database holds."""
        with self.store.db.read() as conn:
            return int(conn.execute("SELECT count(*) FROM proposals").fetchone()[0])


class HeaderParsingTest(SigningCase):
    def test_a_superscript_digit_in_the_time_is_refused_not_a_server_fault(self) -> None:
        """BROKE before the fix: ts='17²…' passed str.isdigit() and int() raised: 500, 'internal error', logged.

        '²' is one latin-1 byte (0xb2), which is how HTTP header bytes are read.
        Now only ASCII digits are a time: 401, like any malformed signature.
        """
        body = submit_body()
        arabic = "\u0661\u0667" + "\u0660" * 8  # Arabic-Indic digits: int() takes them too
        for stamp in ("17" + "²" * 8, "¹" * 10, arabic, "+1700000000", " 1700000000", "1_700_000_000"):
            with self.subTest(stamp=stamp):
                status, document = self.send(hand_signed(self.endpoint, body, ts=stamp), body)
                self.assertEqual(status, 401, document)
                self.assertEqual(document["error"]["message"], "malformed relay authorization")
        self.assertEqual(self.filed(), 0)
        self.assertFalse([line for line in self.relay.logged if "internal error" in line], self.relay.logged)

    def test_case_whitespace_duplicates_and_unicode_in_the_header_are_refused(self) -> None:
        """Held: every variant of a genuine signature that is not its exact form is 401; nothing is filed."""
        body = submit_body()
        genuine = hand_signed(self.endpoint, body)
        fields = genuine.partition(" ")[2]
        cases: dict[str, str | list[str]] = {
            "scheme in lower case": genuine.replace(AUTH_SCHEME, AUTH_SCHEME.lower(), 1),
            "a tab after the scheme": genuine.replace(" ", "\t", 1),
            "mac in upper case": genuine.replace(genuine[-64:], genuine[-64:].upper()),
            "a field twice": f"{genuine},bottle=web-1",
            "a field twice, other bottle": f"{AUTH_SCHEME} bottle=web-2,{fields}",
            "an extra field": f"{genuine},method=submit",
            "a field missing": genuine.rsplit(",", 1)[0],
            "two headers, the genuine first": [genuine, hand_signed(self.other, body)],
            "two headers, the genuine second": [hand_signed(self.other, body), genuine],
            "the genuine one twice": [genuine, genuine],
            "a unicode bottle": hand_signed(self.endpoint, body, bottle="wéb-1"),
            "a fullwidth letter in the mac": genuine[:-1] + "\uff41",
            "a NUL in the nonce": genuine.replace("nonce=", "nonce=\x00", 1),
            "a thirteen-digit time": hand_signed(self.endpoint, body, ts="1" + "0" * 12),
            "a negative time": hand_signed(self.endpoint, body, ts="-1"),
        }
        for name, authorization in cases.items():
            with self.subTest(name):
                status, document = self.send(authorization, body)
                self.assertEqual(status, 401, document)
        self.assertEqual(self.filed(), 0)
        # The genuine one was never spent by any variant: it is still served once, then told to retry afresh.
        self.assertEqual(self.send(genuine, body)[0], 200)
        self.assertEqual(self.send(genuine, body)[0], 503)

    def test_refusals_say_nothing_of_whether_a_bottle_exists_or_was_revoked(self) -> None:
        """Held: unknown bottle, known bottle with a wrong key and revoked bottle with a wrong key: one answer."""
        body = submit_body()
        self.relay.endpoint("gone-1")
        self.assertTrue(self.relay.credentials.revoke("gone-1"))
        stranger = RelayEndpoint(url=self.relay.url, token=secrets.token_urlsafe(32), bottle="web-1")
        answers = set()
        for bottle in ("never-minted", "web-1", "gone-1"):
            forged = RelayEndpoint(url=stranger.url, token=stranger.token, bottle=bottle)
            status, document = self.send(sign_request(forged, body)[0], body)
            answers.add((status, document["error"]["message"].replace(bottle, "B")))
        self.assertEqual(len(answers), 1, answers)


class SignatureReuseTest(SigningCase):
    def test_a_captured_signature_serves_no_other_body_method_or_bottle(self) -> None:
        """Held: the header of a genuine 'hello' with another body (same length or not), or for web-2: 401."""
        hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}}).encode()
        stopped = hello.replace(b'"hello"', b'"stopd"')  # same length, another method
        self.assertEqual(len(stopped), len(hello))
        for name, body in {"same length": stopped, "a submit": submit_body()}.items():
            with self.subTest(name):
                authorization = sign_request(self.endpoint, hello)[0]
                status, document = self.send(authorization, body)
                self.assertEqual(status, 401, document)
                self.assertIn("not the one its signature covers", document["error"]["message"])
        moved = sign_request(self.endpoint, hello)[0].replace("bottle=web-1", "bottle=web-2")
        self.assertEqual(self.send(moved, hello)[0], 401)
        self.assertEqual(self.filed(), 0)

    def test_one_request_sent_on_many_connections_at_once_is_served_once(self) -> None:
        """Held: a captured 'submit' fired on 16 connections at the same moment: exactly one 200."""
        body = submit_body()
        whole = request(body, host="127.0.0.1", headers={"Authorization": sign_request(self.endpoint, body)[0]})
        start = threading.Barrier(16)
        statuses: list[int] = []

        def fire() -> None:
            start.wait()
            answer, _ = exchange(self.relay.port, whole)
            statuses.append(answer.status if answer else 0)

        threads = [threading.Thread(target=fire) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(sorted(statuses), [200] + [503] * 15)
        self.assertEqual(self.filed(), 1)

    def test_times_at_the_edge_of_the_window(self) -> None:
        """Held: 5 minutes ahead or behind is served once; beyond it, refused with nothing read."""
        now = int(time.time())
        for offset, served in ((-290, True), (290, True), (-320, False), (320, False), (10**9, False)):
            with self.subTest(offset=offset):
                body = submit_body(f"t{offset}")
                status, _ = self.send(hand_signed(self.endpoint, body, ts=str(now + offset)), body)
                self.assertEqual(status, 200 if served else 401)


class ReplayAcrossRestartTest(TempDirTest):
    """``bot-bottle relay`` as a process: a request captured before a restart, played after it."""

    def setUp(self) -> None:
        super().setUp()
        self.port = free_port()
        self.db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(self.db).close()
        with RelayCredentials(self.db) as credentials:
            self.endpoint = RelayEndpoint(url=f"http://127.0.0.1:{self.port}/", token=credentials.mint("web-1"),
                                          bottle="web-1")

    def replay_after(self, stop: str) -> None:
        relay = start_relay_process(self.home, self.port)
        self.addCleanup(stop_process, relay)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "stopped", "params": {}}).encode()
        captured = request(body, host="127.0.0.1", headers={"Authorization": sign_request(self.endpoint, body)[0]})
        first, _ = exchange(self.port, captured)
        self.assertEqual(first.status if first else None, 200)
        # The sidecar comes back to life (a heartbeat); then the relay restarts.
        RelayQueue(self.endpoint).heartbeat()
        if stop == "SIGKILL":
            relay.kill()
            relay.communicate()
        else:
            stop_process(relay)
        relay = start_relay_process(self.home, self.port)
        self.addCleanup(stop_process, relay)
        again, _ = exchange(self.port, captured)
        # Refused as spent: a retry the sidecar would sign afresh, never a second serving.
        self.assertEqual(again.status if again else None, 503, again.body if again else None)
        assert again is not None
        self.assertIn("spent already", json.loads(again.body)["error"]["message"])
        journal = self.home / ".bot-bottle" / "relay" / NONCES_FILENAME
        self.assertEqual(os.stat(journal).st_mode & 0o777, 0o600)
        # A fresh request of the sidecar is served as ever.
        self.assertEqual(RelayQueue(self.endpoint).hello(), "web-1")

    def test_a_replay_after_a_clean_restart_is_refused(self) -> None:
        """BROKE before the fix: the ledger of spent nonces lived in memory only, so a captured 'stopped'
        (or any request) was served again by the next relay within its 5-minute window: another bottle's
        agent on the same network could mark a live bottle stopped, or play its filings again."""
        self.replay_after("SIGTERM")

    def test_a_replay_after_the_relay_is_killed_is_refused(self) -> None:
        """BROKE before the fix (as above); the journal is written before a request is served."""
        self.replay_after("SIGKILL")


def stale_now() -> int:
    """A request time whose nonce the ledger may forget at once (its request is past the window)."""
    return int(time.time()) - CLOCK_SKEW_SEC - 2


class NonceLedgerTest(TempDirTest):
    def test_the_ledger_is_bounded_and_forgets_one_nonce_at_a_time(self) -> None:
        """Held: at its limit it says retry (never grows); nonces of stale requests leave, soonest stale first."""
        ledger = NonceLedger(limit=100)
        for _ in range(100):
            ledger.spend("web-1", secrets.token_hex(16), stale_now())
        ledger.spend("web-1", secrets.token_hex(16), int(time.time()))  # the stale ones made room
        for _ in range(99):
            ledger.spend("web-1", secrets.token_hex(16), int(time.time()))
        with self.assertRaises(RetryLater):
            ledger.spend("web-1", secrets.token_hex(16), int(time.time()))
        self.assertEqual(len(ledger), 100)

    def test_one_bottle_spending_nonces_fast_fills_only_its_own_share(self) -> None:
        """BROKE before the fix: the ledger's limit was one for all bottles, so one bottle's sidecar (or an
        agent holding its key) sending requests as fast as it could filled it, and every other bottle's
        requests were refused until the window passed. Now each bottle has its share."""
        ledger = NonceLedger(limit=100, per_bottle=40)
        now = int(time.time())
        for _ in range(40):
            ledger.spend("greedy-1", secrets.token_hex(16), now)
        with self.assertRaises(RetryLater):
            ledger.spend("greedy-1", secrets.token_hex(16), now)
        for bottle in ("web-1", "web-2"):
            for _ in range(30):
                ledger.spend(bottle, secrets.token_hex(16), now)

    def test_a_nonce_is_spent_only_for_the_bottle_that_signed_it(self) -> None:
        """BROKE before the fix: one pool of nonces for all bottles, so bottle A signing a request with a nonce
        sniffed from B's traffic spent it, and B's request was refused as served already (and B's sidecar
        took that for a revoked credential and exited). Now a nonce is spent per bottle."""
        ledger = NonceLedger()
        nonce, now = secrets.token_hex(16), int(time.time())
        ledger.spend("web-1", nonce, now)  # A first, with B's nonce
        ledger.spend("web-2", nonce, now)  # B's own request is served
        with self.assertRaises(RetryLater):
            ledger.spend("web-2", nonce, now)  # a replay of B's request is not

    def test_one_clock_rules_the_window_and_the_ledger(self) -> None:
        """BROKE before the fix: spent nonces were forgotten by the monotonic clock after ten minutes but
        requests were checked against the wall clock, so a wall clock stepped back 400 s after that made a
        captured request acceptable again, its nonce forgotten. Now a nonce is kept until the wall clock
        says its request is stale, and the replay window refuses it from then on."""
        start = 2_000_000_000
        ledger = NonceLedger()
        nonce = secrets.token_hex(16)
        with mock.patch("bot_bottle.relay.nonces.time.time", return_value=float(start)):
            ledger.spend("web-1", nonce, start)
        for wall in (start + 601 - 400, start + CLOCK_SKEW_SEC):  # ten minutes on, the clock stepped back
            with self.subTest(wall=wall), mock.patch("bot_bottle.relay.nonces.time.time", return_value=float(wall)):
                SignedRequest.parse(hand_signed(self.endpoint(), b"{}", ts=str(start)), now=wall)  # in the window
                with self.assertRaises(RetryLater):
                    ledger.spend("web-1", nonce, start)
        # Past the window the request itself is refused, so the ledger may forget its nonce.
        with self.assertRaises(Unauthorized):
            SignedRequest.parse(hand_signed(self.endpoint(), b"{}", ts=str(start)), now=start + CLOCK_SKEW_SEC + 1)

    def endpoint(self) -> RelayEndpoint:
        return RelayEndpoint(url="http://127.0.0.1:1/", token="t" * 43, bottle="web-1")

    def test_the_journal_stays_bounded_and_a_garbled_one_is_no_fault(self) -> None:
        """Fix's own checks: the journal is compacted as the ledger forgets; garbage lines in it are skipped."""
        journal = self.tmp / "relay" / NONCES_FILENAME
        ledger = NonceLedger(journal=journal)
        for _ in range(5000):
            ledger.spend("web-1", secrets.token_hex(16), stale_now())
        ledger.close()
        lines = journal.read_text(encoding="ascii").splitlines()
        self.assertLessEqual(len(lines), 2 * len(ledger) + 1025)
        kept = secrets.token_hex(16)
        with open(journal, "a", encoding="utf-8") as handle:
            handle.write(f"{kept} {int(time.time()) + 60} web-1\nnot a line\n\x1b[2J 99 x\n{'f' * 32} 12 web-1\n")
        again = NonceLedger(journal=journal)
        with self.assertRaises(RetryLater):
            again.spend("web-1", kept, int(time.time()))
        self.assertNotIn(("web-1", "f" * 32), again._seen)  # expired long ago
        again.close()


class _FakeRelay(BaseHTTPRequestHandler):
    """Answers at the relay's address in its place: what ``answer`` returns for the request's nonce."""

    answer: ClassVar[Any]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        fields = dict(item.split("=", 1) for item in self.headers["Authorization"].split(" ", 1)[1].split(","))
        status, headers, body = type(self).answer(fields["nonce"])
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class ManInTheMiddleTest(TempDirTest):
    """Whatever answers at the relay's address without the bottle's key cannot make the sidecar believe it."""

    def setUp(self) -> None:
        super().setUp()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRelay)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.endpoint = RelayEndpoint(url=f"http://127.0.0.1:{server.server_address[1]}/",
                                      token=secrets.token_urlsafe(32), bottle="web-1")
        self.key = token_sha256(self.endpoint.token)
        self.queue = RelayQueue(self.endpoint, retry_for=0.3)

    def test_unsigned_errors_carry_no_verdict_and_no_raw_bytes(self) -> None:
        """BROKE before the fix: an unsigned 4xx answer raised the relay's error its body named (AlreadyDecided,
        NotFound, QuotaExceeded...) and an unsigned 401 carried its message raw (escape sequences included)
        into the exception the sidecar logs to the operator's terminal. Now an unsigned answer says only
        'busy' (503), 'refused' (401) or 'nothing' (RelayError), its words escaped and cut short."""
        evil = "\x1b]0;owned\x07\x1b[2J approved by the operator" + "!" * 5000
        for status in (400, 401, 409, 500):
            with self.subTest(status=status):
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32004, "message": evil}}).encode()
                _FakeRelay.answer = staticmethod(lambda nonce, s=status, b=body: (s, {}, b))
                with self.assertRaises((RelayError, Unauthorized)) as caught:
                    self.queue.wait_for_response("0" * 32, 1)
                self.assertNotIsInstance(caught.exception, AlreadyDecided)
                text = str(caught.exception)
                self.assertNotIn("\x1b", text)
                self.assertNotIn("\x07", text)
                self.assertLess(len(text), 1000)

    def test_an_answer_signed_for_another_request_or_status_is_refused(self) -> None:
        """Held: a genuine signature moved to another request (nonce), another status or another body fails."""
        approved = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"bottle": "web-1"}}).encode()
        other_nonce = secrets.token_hex(16)
        cases = {
            "another request's nonce": lambda nonce: (200, {SIGNATURE_HEADER: sign_answer(
                self.key, other_nonce, 200, approved)}, approved),
            "signed as a 400, sent as a 200": lambda nonce: (200, {SIGNATURE_HEADER: sign_answer(
                self.key, nonce, 400, approved)}, approved),
            "a signed 200 sent as a 401": lambda nonce: (401, {SIGNATURE_HEADER: sign_answer(
                self.key, nonce, 200, approved)}, approved),
            "another body": lambda nonce: (200, {SIGNATURE_HEADER: sign_answer(
                self.key, nonce, 200, approved.replace(b"web-1", b"web-2"))}, approved),
            "no signature": lambda nonce: (200, {}, approved),
            "the request's own mac echoed": lambda nonce: (200, {SIGNATURE_HEADER: request_mac(
                self.key, "web-1", "0", nonce, hashlib.sha256(approved).hexdigest())}, approved),
        }
        for name, answer in cases.items():
            with self.subTest(name):
                _FakeRelay.answer = staticmethod(answer)
                with self.assertRaises(RelayError):
                    self.queue.hello(patient=False)
        # The control: the same answer, signed for this very request, is taken.
        _FakeRelay.answer = staticmethod(lambda nonce: (200, {SIGNATURE_HEADER: sign_answer(
            self.key, nonce, 200, approved)}, approved))
        self.assertEqual(self.queue.hello(patient=False), "web-1")

    def test_an_unsigned_busy_relay_forever_fails_closed(self) -> None:
        """Held (denial of service only): 503 on every call ends in RelayUnreachable, nothing believed."""
        _FakeRelay.answer = staticmethod(lambda nonce: (503, {}, b'{"result": {"status": "approved"}}'))
        with self.assertRaises(RelayUnreachable):
            self.queue.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "j")


class BodyNotReadTest(SigningCase):
    def test_a_bad_signature_is_refused_while_the_declared_body_never_comes(self) -> None:
        """Held: the refusal arrives with the 1 MiB body unsent; a good signature then waits for its body."""
        body = b"x" * 1000
        bad = hand_signed(self.other, body, bottle="web-1")
        with socket.create_connection(("127.0.0.1", self.relay.port), timeout=10) as sock:
            sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         f"Authorization: {bad}\r\nContent-Length: 1000000\r\n\r\n".encode())
            raw = b""
            while b"}" not in raw:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        answer = parse_answer(raw)
        self.assertEqual(answer.status if answer else None, 401)
