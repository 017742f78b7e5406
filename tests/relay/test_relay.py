"""The host relay: credentials and bottle isolation, failing closed, one relay per host, restarts, transports.

A relay-backed sidecar is the adversary's side of the wire: every test here
performs what a hostile sidecar (or a stale one) would try, with real
sockets, real processes and, where the claim is about files, the real
mount namespace and Python's audit hooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from bot_bottle.backends import BACKENDS
from bot_bottle.backends.plan import Supervise
from bot_bottle.bottles import BottleStore
from bot_bottle.cli import build_parser, relay_cmds
from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.errors import MissingMount, NotFound, RelayError, RelayUnreachable, Unauthorized, ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_ALLOW, Response
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.relay.lock import RelayInfo, running_relay
from bot_bottle.relay.process import ensure_relay
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.sidecar.transport import find_transport
from bot_bottle.wire.relay_file import RelayEndpoint, read_endpoint_file, write_endpoint_file
from bot_bottle.wire.signing import sign_request
from tests.helpers.git_remote import SECRET_ALLOWED
from tests.helpers.hostile import exchange, parse_answer, request
from tests.helpers.relay_fixture import (
    InProcessRelay,
    RelayCase,
    free_port,
    relay_env,
    signed_request,
    start_relay_process,
    stop_process,
)
from tests.helpers.support import REPO, TempDirTest, in_mount_namespace, require_tool, wait_until

PAYLOAD = '{"host": "api.example.com"}'


def call(port: int, method: str, params: dict[str, Any], endpoint: RelayEndpoint) -> tuple[int, dict[str, Any]]:
    """One raw relay request, signed with ``endpoint``'s credential; its HTTP status and JSON body."""
    answer, raw = exchange(port, signed_request(endpoint, {"jsonrpc": "2.0", "id": 7, "method": method,
                                                           "params": params}))
    assert answer is not None, raw[:300]
    return answer.status, answer.json()


class CredentialTest(RelayCase):
    def test_a_token_reaches_only_its_own_bottle(self) -> None:
        """B's token cannot read, wait on, archive or learn of A's proposals; B's filing lands in B."""
        a, b = self.relay.queue("bottle-a"), self.relay.queue("bottle-b")
        mine = a.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "a's")
        for attempt in (lambda: b.get(mine.id), lambda: b.response(mine.id), lambda: b.archive(mine.id),
                        lambda: b.wait_for_response(mine.id, 0.1)):
            with self.assertRaises(NotFound) as caught:
                attempt()
            self.assertNotIn("bottle-a", str(caught.exception))  # not even the owner's name
        unknown = "0" * 32
        with self.assertRaises(NotFound) as other:
            b.get(unknown)
        self.assertEqual(str(other.exception).replace(unknown, "X"),
                         str(caught.exception).replace(mine.id, "X"), "another bottle's id reads as no id at all")
        theirs = b.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "b's")
        self.assertEqual((mine.queue_key, theirs.queue_key), ("bottle-a", "bottle-b"))
        decide(mine.id, STATUS_APPROVED, "ok", store=self.store)
        self.assertEqual(a.response(mine.id).status, STATUS_APPROVED)  # type: ignore[union-attr]
        self.assertIsNone(b.response(theirs.id))

    def test_a_heartbeat_through_the_relay_marks_only_its_own_bottle(self) -> None:
        """heartbeat: the token's bottle is running and seen; stopped: stopped; the other bottle untouched."""
        with BottleStore(database=self.store.db) as bottles:
            bottles.prepared("bottle-a", "docker", "relay")
            bottles.prepared("bottle-b", "docker", "relay")
            queue = self.relay.queue("bottle-a")
            queue.heartbeat()
            self.assertEqual((bottles.get("bottle-a").state, bottles.get("bottle-b").state), ("running", "prepared"))
            self.assertIsNotNone(bottles.get("bottle-a").last_seen)
            seen = bottles.get("bottle-a").last_seen
            for _ in range(50):  # a sidecar beating as fast as it can: no write per beat
                queue.heartbeat()
            self.assertEqual(bottles.get("bottle-a").last_seen, seen)
            queue.stopped()
            self.assertEqual(bottles.get("bottle-a").state, "stopped")
        _, body = call(self.relay.port, "heartbeat", {"bottle": "bottle-a"}, self.relay.endpoint("bottle-b"))
        self.assertIn("unknown parameter", body["error"]["message"])

    def test_no_request_can_name_a_bottle(self) -> None:
        """A bottle (queue_key, bottle) in the params is refused as an unknown parameter; nothing filed."""
        token = self.relay.endpoint("bottle-b")
        for name in ("queue_key", "bottle", "slug"):
            status, body = call(self.relay.port, "submit", {"tool": TOOL_EGRESS_ALLOW, "payload": PAYLOAD,
                                                            "justification": "j", name: "bottle-a"}, token)
            self.assertEqual(status, 200)
            self.assertIn("unknown parameter", body["error"]["message"])
        self.assertEqual(self.store.pending(), [])

    def test_unsigned_wrongly_signed_stale_and_replayed_requests_are_refused_before_the_body(self) -> None:
        """401 for each, answered without reading a body that never comes; nothing filed."""
        real = self.relay.endpoint("bottle-a")
        forged = RelayEndpoint(url=real.url, token=("A" if real.token[0] != "A" else "B") + real.token[1:],
                               bottle="bottle-a")
        body = b"{}" * 10
        replayed = sign_request(real, body)[0]
        self.assertEqual(self.relay_answer(replayed, body).status, 400, "the first use is served (not JSON-RPC)")
        cases = {
            "missing": None,
            "the token itself (a bearer)": f"Bearer {real.token}",
            "signed with another key": sign_request(forged, body)[0],
            "another bottle named": sign_request(real, body)[0].replace("bottle=bottle-a", "bottle=bottle-b"),
            "malformed": "BotBottle-HMAC bottle=../../etc,ts=1,nonce=x,body=y,mac=z",
            "an hour old": sign_request(real, body, ts=int(time.time()) - 3600)[0],
            "replayed": replayed,
            "empty": "BotBottle-HMAC ",
        }
        for name, authorization in cases.items():
            with self.subTest(name), socket.create_connection(("127.0.0.1", self.relay.port), timeout=10) as sock:
                head = f"Authorization: {authorization}\r\n" if authorization is not None else ""
                # Declares a 4 MiB body and sends none: the refusal must not wait for it.
                sock.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{head}"
                             "Content-Length: 4000000\r\n\r\n".encode())
                raw = b""
                while b"\r\n\r\n" not in raw or not raw.endswith(b"}"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
                answer = parse_answer(raw)
                assert answer is not None, raw
                if name == "replayed":
                    # Genuine but spent: told to sign again and retry, never that the credential is bad.
                    self.assertEqual((answer.status, answer.headers.get("retry-after")), (503, "1"), answer.body)
                    self.assertIn(b"nonce was spent already", answer.body)
                    continue
                self.assertEqual(answer.status, 401, answer.body)
                self.assertIn("WWW-Authenticate: BotBottle-HMAC", raw.decode())
        hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}}).encode()
        duplicate = signed_request(real, hello)
        duplicate = duplicate.replace(b"\r\n\r\n", f"\r\nAuthorization: {sign_request(forged, hello)[0]}\r\n\r\n"
                                      .encode(), 1)
        answer, _ = exchange(self.relay.port, duplicate)
        assert answer is not None
        self.assertEqual(answer.status, 401, "two Authorization headers are refused, whichever is real")
        self.assertEqual(self.store.pending(), [])

    def relay_answer(self, authorization: str, body: bytes) -> Any:
        answer, raw = exchange(self.relay.port, request(body, host="127.0.0.1",
                                                        headers={"Authorization": authorization}))
        assert answer is not None, raw
        return answer

    def test_a_body_other_than_the_signed_one_is_refused(self) -> None:
        """Headers signed for one filing, another body sent: 401 once the body is in, nothing filed."""
        real = self.relay.endpoint("bottle-a")
        signed_for = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}}).encode()
        sent = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "submit", "params": {
            "tool": TOOL_EGRESS_ALLOW, "payload": PAYLOAD, "justification": "swapped"}}).encode()
        answer = self.relay_answer(sign_request(real, signed_for)[0], sent)
        self.assertEqual(answer.status, 401)
        self.assertIn("not the one its signature covers", answer.body.decode())
        self.assertEqual(self.store.pending(), [])

    def test_the_token_never_crosses_the_wire_and_a_forged_answer_is_not_believed(self) -> None:
        """Through a man in the middle: the token is in no byte it sees; a changed or made-up answer fails closed."""
        endpoint = self.relay.endpoint("bottle-a")
        filed = RelayQueue(endpoint).submit(TOOL_EGRESS_ALLOW, PAYLOAD, "watched")
        decide(filed.id, STATUS_REJECTED, "no", store=self.store)
        for mode in ("watch", "rewrite", "impostor"):
            with self.subTest(mode):
                middle = _Middle(self.relay.port, mode).register(self)
                queue = RelayQueue(RelayEndpoint(url=middle.url, token=endpoint.token, bottle="bottle-a"),
                                   retry_for=0.3)
                if mode == "watch":
                    self.assertEqual(queue.response(filed.id).status, STATUS_REJECTED)  # type: ignore[union-attr]
                else:
                    with self.assertRaises(RelayError) as caught:
                        queue.response(filed.id)
                    self.assertIn("does not carry the relay's signature", str(caught.exception))
                self.assertTrue(middle.seen)
                self.assertNotIn(endpoint.token.encode(), b"".join(middle.seen))

    def test_a_revoked_or_replaced_token_is_refused_from_the_next_request(self) -> None:
        """Revoke: the next call raises Unauthorized naming the revocation; re-preparing mints a new token."""
        endpoint = self.relay.endpoint("bottle-a")
        queue = RelayQueue(endpoint)
        filed = queue.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "before")
        self.assertTrue(self.relay.credentials.revoke("bottle-a"))
        with self.assertRaises(Unauthorized) as caught:
            queue.get(filed.id)
        self.assertIn("revoked", str(caught.exception))
        fresh = self.relay.endpoint("bottle-a")  # prepared again
        self.assertEqual(RelayQueue(fresh).get(filed.id).id, filed.id)
        with self.assertRaises(Unauthorized) as old:
            queue.get(filed.id)
        self.assertIn("it was replaced", str(old.exception))

    def test_a_token_revoked_while_its_call_waits_gets_no_decision(self) -> None:
        """The wait ends with Unauthorized, never with the operator's answer, once the token is revoked."""
        queue = self.relay.queue("bottle-a")
        filed = queue.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "wait")
        outcome: list[object] = []

        def wait() -> None:
            try:
                outcome.append(queue.wait_for_response(filed.id, 20))
            except Unauthorized as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        self.relay.credentials.revoke("bottle-a")
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        waiter.join(30)
        self.assertEqual(len(outcome), 1)
        self.assertIsInstance(outcome[0], Unauthorized)

    def test_only_a_hash_is_stored_and_the_file_is_private(self) -> None:
        """The token never reaches the database file; relay.json is 0600 in a 0700 directory, written whole."""
        endpoint = self.relay.endpoint("bottle-a")
        path = write_endpoint_file(self.tmp / "bottle-a", endpoint)
        self.assertNotIn(endpoint.token.encode(), self.db.read_bytes())
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(path.parent.stat().st_mode), 0o700)
        self.assertEqual(read_endpoint_file(path), endpoint)
        self.assertEqual([p.name for p in path.parent.iterdir()], ["relay.json"])
        self.assertGreaterEqual(len(endpoint.token), 43)  # 256 bits in URL-safe base64

    def test_a_bad_relay_file_is_one_clear_error(self) -> None:
        """Missing, oversized, not JSON, extra keys, a bad URL or token: MissingMount naming the file."""
        good = {"url": "http://127.0.0.1:9/", "token": "A" * 43, "bottle": "web-1"}
        cases: dict[str, bytes | None] = {
            "missing": None, "huge": b" " * 5000, "not json": b"{", "list": b"[]",
            "extra": json.dumps({**good, "db": "/x"}).encode(),
            "url": json.dumps({**good, "url": "file:///etc/passwd"}).encode(),
            "token": json.dumps({**good, "token": "short"}).encode(),
            "bottle": json.dumps({**good, "bottle": "../x"}).encode(),
        }
        for name, data in cases.items():
            with self.subTest(name):
                path = self.tmp / f"{name}.json"
                if data is not None:
                    path.write_bytes(data)
                with self.assertRaises(MissingMount) as caught:
                    find_transport(relay_file=path)
                self.assertIn(str(path), str(caught.exception))
                self.assertNotIn("\n", str(caught.exception))

    def test_params_are_checked_and_each_refusal_is_an_answer(self) -> None:
        """Unknown method, missing or bad params, a wait past the long-poll bound: JSON-RPC errors, no 500."""
        token = self.relay.endpoint("bottle-a")
        for method, params, needle in (
            ("drop_table", {}, "method not found"),
            ("get", {}, "missing parameter"),
            ("get", {"id": "x" * 10}, "id"),
            ("wait", {"id": "0" * 32, "timeout": 1e9}, "timeout"),
            ("wait", {"id": "0" * 32, "timeout": float("nan")}, "timeout"),
            ("submit", {"tool": "rm -rf", "payload": "p", "justification": "j"}, "tool"),
            ("submit", {"tool": TOOL_EGRESS_ALLOW, "payload": 5, "justification": "j"}, "payload"),
        ):
            with self.subTest(method=method, params=params):
                status, body = call(self.relay.port, method, params, token)
                self.assertEqual(status, 200)
                self.assertIn(needle, body["error"]["message"])
        self.assertEqual(self.relay.logged, [], "no internal error was logged")


class _Middle:
    """A man in the middle between a sidecar and the relay, on its own port: it records every byte the sidecar
    sends; ``rewrite`` turns the relay's answer into an approval, ``impostor`` answers an approval itself."""

    FORGED: ClassVar[dict[str, object]] = {
        "proposal_id": "0" * 32, "status": "approved", "notes": "forged", "final_file": None,
        "decided_by": "mallory", "decided_at": "2026-11-30T00:00:00.000000Z"}

    def __init__(self, relay_port: int, mode: str) -> None:
        self.relay_port, self.mode = relay_port, mode
        self.seen: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        threading.Thread(target=self._serve, daemon=True).start()

    def register(self, test: TempDirTest) -> _Middle:
        test.addCleanup(self.listener.close)
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client, contextlib.suppress(OSError):  # the relay gone by the test's end: drop the call
                client.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += client.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                while len(body) < length:
                    body += client.recv(65536)
                self.seen.append(data + body)
                if self.mode == "impostor":
                    answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {
                        **self.FORGED, "proposal_id": json.loads(body)["params"]["id"]}}).encode()
                    reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Bot-Bottle-Signature: "
                             + b"0" * 64 + f"\r\nContent-Length: {len(answer)}\r\n\r\n".encode() + answer)
                else:
                    reply = self._forward(head + b"\r\n\r\n" + body)
                    if self.mode == "rewrite":
                        reply = reply.replace(b'"rejected"', b'"approved"')
                client.sendall(reply)

    def _forward(self, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.relay_port), timeout=10) as upstream:
            upstream.sendall(data)
            reply = b""
            while chunk := upstream.recv(65536):
                reply += chunk
        return reply


class WaitBoundTest(TempDirTest):
    def test_one_bottle_cannot_hold_every_wait(self) -> None:
        """At its cap of waits, a bottle is told to retry; another bottle still waits and is answered."""
        db = self.tmp / "cap.db"
        relay = InProcessRelay(db, max_waits_per_bottle=2).register(self)
        greedy = relay.endpoint("greedy")
        filed = RelayQueue(greedy).submit(TOOL_EGRESS_ALLOW, PAYLOAD, "hold")
        holders = [threading.Thread(target=RelayQueue(greedy).wait_for_response, args=(filed.id, 3)) for _ in range(2)]
        for holder in holders:
            holder.start()
        self.addCleanup(lambda: [h.join() for h in holders])
        wait_until(lambda: relay.service.shares.held("greedy")[2] == 2, what="two waits held")
        with self.assertRaises(RelayUnreachable) as caught:
            RelayQueue(greedy, retry_for=0.3).wait_for_response(filed.id, 0.3)
        self.assertIn("calls waiting at the relay", str(caught.exception))
        other = relay.queue("other")
        mine = other.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "mine")
        with QueueStore(db) as store:
            threading.Timer(0.2, decide, args=(mine.id, STATUS_REJECTED, "no"), kwargs={"store": store}).start()
            answer = other.wait_for_response(mine.id, 10)
        self.assertEqual(answer.status if answer else None, STATUS_REJECTED)


class RelayProcessTest(TempDirTest):
    """``bot-bottle relay`` as a process: one per host, SIGTERM, restarts while calls wait, the relay down."""

    def setUp(self) -> None:
        super().setUp()
        self.port = free_port()
        self.db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(self.db).close()

    def start(self, *options: str) -> subprocess.Popen[str]:
        process = start_relay_process(self.home, self.port, *options)
        self.addCleanup(stop_process, process)
        return process

    def endpoint(self, slug: str) -> RelayEndpoint:
        with RelayCredentials(self.db) as credentials:
            return RelayEndpoint(url=f"http://127.0.0.1:{self.port}/", token=credentials.mint(slug), bottle=slug)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot_bottle", *args], capture_output=True, text=True,
                              env=relay_env(self.home), cwd=REPO, timeout=60)

    def spend_a_share_of_one(self, slug: str) -> RelayQueue:
        """File five proposals for ``slug``, a relay's share of one write a second (a burst of five), and check
        that the sixth is told to retry; the bottle's queue, which does not retry."""
        queue = RelayQueue(self.endpoint(slug), retry_for=0)
        for number in range(5):
            queue.submit(TOOL_EGRESS_ALLOW, f'{{"host": "h{number}.example"}}', "burst")
        with self.assertRaises(RelayUnreachable) as caught:
            queue.submit(TOOL_EGRESS_ALLOW, '{"host": "h5.example"}', "over the share")
        self.assertIn("writes faster than the 1 a second it may", str(caught.exception))
        return queue

    def test_one_relay_per_host_and_a_clean_sigterm(self) -> None:
        """A second relay exits 1 naming the first (pid, address); SIGTERM: exit 0, lock free, no traceback."""
        first = start_relay_process(self.home, self.port, stderr=subprocess.PIPE)
        self.addCleanup(stop_process, first)
        second = self.cli("relay", "--host", "127.0.0.1", "--port", str(free_port()))
        self.assertEqual(second.returncode, 1)
        self.assertEqual(len(second.stderr.strip().splitlines()), 1, second.stderr)
        self.assertIn(f"a relay already runs on this host (pid {first.pid}, listening on "
                      f"http://127.0.0.1:{self.port}/", second.stderr)
        status = self.cli("relay", "status", "--json")
        self.assertEqual(json.loads(status.stdout)["relay"]["pid"], first.pid)
        first.terminate()
        _, errors = first.communicate(timeout=20)
        self.assertEqual(first.returncode, 0, errors)
        self.assertNotIn("Traceback", errors)
        with _home(self.home):
            self.assertIsNone(running_relay())
        self.assertIn("not running", self.cli("relay", "status").stdout)

    def test_ensure_relay_starts_one_and_then_finds_it(self) -> None:
        """The launch helper starts a relay in the background, then returns the same one; stop stops it."""
        with _home(self.home):
            info = ensure_relay("127.0.0.1", self.port)
            self.addCleanup(lambda: self.cli("relay", "stop"))
            self.assertEqual(ensure_relay("127.0.0.1", self.port), info)
            self.assertIsInstance(info, RelayInfo)
            with self.assertRaises(Exception) as elsewhere:
                ensure_relay("127.0.0.1", self.port + 1)
            self.assertIn(f"pid {info.pid}", str(elsewhere.exception))
        stopped = self.cli("relay", "stop")
        self.assertEqual(stopped.returncode, 0, stopped.stderr)
        with _home(self.home):
            self.assertIsNone(running_relay())

    def test_relay_start_elsewhere_says_relay_stop_not_prepare(self) -> None:
        """BROKE before the fix: 'relay start --port Q' while the relay ran on P said "this backend's sidecars need
        127.0.0.1:Q: stop it (kill PID) and prepare again": no backend nor prepare was in it, and 'relay stop'
        is how this command line stops a relay."""
        started = self.cli("relay", "start", "--port", str(self.port))
        self.addCleanup(self.cli, "relay", "stop")
        self.assertEqual(started.returncode, 0, started.stderr)
        other = free_port()
        elsewhere = self.cli("relay", "start", "--port", str(other))
        self.assertEqual(elsewhere.returncode, 1)
        self.assertRegex(elsewhere.stderr, rf"^bot-bottle: error: the relay that runs \(pid \d+\) listens on "
                         rf"http://127.0.0.1:{self.port}/, but you asked for 127.0.0.1:{other}: stop it "
                         r"\('bot-bottle relay stop'\) and start it again\n$")

    def test_relay_start_on_any_free_port_is_the_relay_it_started(self) -> None:
        """BROKE before the fix: 'relay start --port 0' (the parser takes 0: any free port) started the relay on a
        free port, then said it listened elsewhere than 127.0.0.1:0 and exited 1, leaving it running. Port 0 is
        any port: the relay that runs is the one asked for, and a second 'start --port 0' says it runs."""
        started = self.cli("relay", "start", "--port", "0", "--json")
        self.addCleanup(self.cli, "relay", "stop")
        self.assertEqual(started.returncode, 0, started.stderr)
        url = json.loads(started.stdout)["url"]
        self.assertNotIn(":0/", url)
        again = self.cli("relay", "start", "--port", "0")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn(f"relay already running: pid {json.loads(started.stdout)['pid']}, listening on {url}",
                      again.stdout)

    def test_relay_start_starts_the_relay_with_the_options_given(self) -> None:
        """``relay --port P start --writes-per-bottle 1``: the background relay listens on P (an option before
        ``start`` is not overridden by start's default) and serves with the share given after it; a second
        start says the running relay keeps its own options."""
        started = self.cli("relay", "--port", str(self.port), "start", "--writes-per-bottle", "1",
                           "--max-pending", "100", "--json")
        self.addCleanup(self.cli, "relay", "stop")
        self.assertEqual(started.returncode, 0, started.stderr)
        self.assertEqual(json.loads(started.stdout)["url"], f"http://127.0.0.1:{self.port}/")
        self.assertTrue(json.loads(started.stdout)["started"])
        self.spend_a_share_of_one("fast")
        again = self.cli("relay", "start", "--port", str(self.port), "--writes-per-bottle", "50")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("relay already running", again.stdout)
        self.assertIn("with the options it was started with", again.stdout)

    def test_relay_start_passes_on_every_serving_option(self) -> None:
        """Each option ``relay`` serves with, given before or after ``start``, reaches the background relay's
        command line as ``--name=value`` (read from the options' one definition: none can be left out)."""
        given = {"--allowed-host": "relay.example", "--max-pending": "7", "--max-pending-bytes": "9000",
                 "--max-waits-per-bottle": "3", "--writes-per-bottle": "4", "--max-connections": "64",
                 "--request-timeout": "2.5"}
        words = [word for option, value in given.items() for word in (option, value)]
        for before, after in ((words, []), ([], words), (words[:6], words[6:])):
            with self.subTest(before=before):
                args = build_parser().parse_args(["relay", *before, "start", *after])
                self.assertEqual(sorted(relay_cmds._serving_arguments(args)),
                                 sorted(f"{option}={value}" for option, value in given.items()))

    def test_a_relay_restart_loses_no_waiting_decision(self) -> None:
        """Relay killed (SIGKILL) while a call waits; the operator decides meanwhile; a new relay: the call gets it."""
        relay = self.start()
        queue = RelayQueue(self.endpoint("web-1"))
        filed = queue.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "across a restart")
        outcome: list[Response | None] = []
        waiter = threading.Thread(target=lambda: outcome.append(queue.wait_for_response(filed.id, 60)))
        waiter.start()
        time.sleep(0.5)
        relay.kill()
        relay.communicate()
        with QueueStore(self.db) as store:
            decide(filed.id, STATUS_APPROVED, "decided while the relay was down", store=store)
        time.sleep(0.5)
        self.start()
        waiter.join(60)
        self.assertEqual(len(outcome), 1)
        self.assertEqual(outcome[0].status if outcome[0] else None, STATUS_APPROVED)
        self.assertEqual(queue.archive(filed.id).archived_at is not None, True)

    def test_writes_per_bottle_sets_each_bottles_write_share(self) -> None:
        """``--writes-per-bottle 1``: a burst of five writes, then the bottle is told to retry; another bottle
        still writes, and the first writes again once a second has given it one back."""
        self.start("--writes-per-bottle", "1", "--max-pending", "100")
        fast = self.spend_a_share_of_one("fast")
        RelayQueue(self.endpoint("other"), retry_for=0).submit(TOOL_EGRESS_ALLOW, PAYLOAD, "its own share")
        time.sleep(1.1)
        fast.submit(TOOL_EGRESS_ALLOW, '{"host": "h6.example"}', "a second later")
        with QueueStore(self.db) as store:
            self.assertEqual(len(store.pending("fast")), 6)
    def test_the_relay_down_fails_closed_everywhere(self) -> None:
        """No relay: the queue raises RelayUnreachable; the server's tool call is an isError result saying so."""
        queue = RelayQueue(self.endpoint("web-1"), retry_for=0.3)
        with self.assertRaises(RelayUnreachable) as caught:
            queue.submit(TOOL_EGRESS_ALLOW, PAYLOAD, "nobody home")
        self.assertIn("the operator's relay at", str(caught.exception))
        relay_file = write_endpoint_file(self.tmp / "web-1", queue.endpoint)
        server, url = spawn("web-1", None, "--wait-seconds", "1", relay_file=relay_file)
        self.addCleanup(stop_process, server)
        port = int(url.rsplit(":", 1)[1].strip("/"))
        answer, _ = exchange(port, request({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "egress-allow", "arguments": {"host": "a.example", "justification": "j"}}}))
        assert answer is not None
        result = answer.json()["result"]
        self.assertTrue(result["isError"])
        self.assertIn("relay", result["content"][0]["text"])
        self.assertIn("unreachable", result["content"][0]["text"])
        with QueueStore(self.db) as store:
            self.assertEqual(store.pending(), [], "nothing was filed")

    def test_a_sidecar_whose_token_the_relay_refuses_does_not_start(self) -> None:
        """Revoked before start: the server exits 1 with the relay's reason, never listening."""
        self.start()
        relay_file = write_endpoint_file(self.tmp / "web-1", self.endpoint("web-1"))
        with RelayCredentials(self.db) as credentials:
            credentials.revoke("web-1")
        result = subprocess.run([sys.executable, "-m", "bot_bottle.supervise_server", "--bottle", "web-1", "--relay",
                                 str(relay_file), "--host", "127.0.0.1", "--port", "0"], capture_output=True,
                                text=True, cwd=REPO, timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn("revoked", result.stderr.strip().splitlines()[-1])

    def test_an_impostors_refusal_reaches_the_sidecars_stderr_escaped(self) -> None:
        """Something else answering at the relay's address refuses with escape sequences: one escaped line, exit 1."""
        evil = "\x1b]0;pwned\x07\x1b[2J\u202e\nsupervise[web-1]: approved"
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": evil}}).encode()
        impostor = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(impostor.close)

        def answer() -> None:
            with contextlib.suppress(OSError):
                while True:
                    client, _ = impostor.accept()
                    with client:
                        client.recv(65536)
                        client.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                                       + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

        threading.Thread(target=answer, daemon=True).start()
        endpoint = RelayEndpoint(url=f"http://127.0.0.1:{impostor.getsockname()[1]}/",
                                 token=self.endpoint("web-1").token, bottle="web-1")
        relay_file = write_endpoint_file(self.tmp / "web-1", endpoint)
        result = subprocess.run([sys.executable, "-m", "bot_bottle.supervise_server", "--bottle", "web-1", "--relay",
                                 str(relay_file), "--host", "127.0.0.1", "--port", "0"], capture_output=True,
                                text=True, cwd=REPO, timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 2, result.stderr)  # where it files; why it stops
        for raw in ("\x1b", "\x07", "\u202e"):
            self.assertNotIn(raw, result.stderr)

    def test_two_launches_at_once_start_one_relay(self) -> None:
        """Two ensure_relay calls racing from two processes: both get the same relay, and one runs."""
        script = ("import sys; from bot_bottle.relay.process import ensure_relay; "
                  f"print(ensure_relay('127.0.0.1', {self.port}).pid)")
        launches = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=relay_env(self.home), cwd=REPO) for _ in range(2)]
        outputs = [launch.communicate(timeout=60) for launch in launches]
        self.addCleanup(lambda: self.cli("relay", "stop"))
        self.assertEqual([launch.returncode for launch in launches], [0, 0], outputs)
        self.assertEqual(len({out.strip() for out, _ in outputs}), 1, outputs)

    def test_git_gate_refuses_a_push_when_the_relay_is_down_or_refuses_the_token(self) -> None:
        """A real push through a hook with --relay: refused with the relay's reason, for each failure."""
        gitleaks = require_tool(self, "gitleaks")
        require_tool(self, "git")
        env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}
        remote, work = self.tmp / "remote.git", self.tmp / "work"
        subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, env=env)
        subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True, env=env, capture_output=True)
        for key, value in (("user.email", "a@b"), ("user.name", "a"), ("commit.gpgsign", "false")):
            subprocess.run(["git", "config", key, value], cwd=work, check=True, env=env)
        (work / "config.py").write_text(f'AWS_KEY = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        subprocess.run(["git", "add", "."], cwd=work, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", "c"], cwd=work, check=True, env=env)
        endpoint = self.endpoint("web-1")
        relay_file = write_endpoint_file(self.tmp / "web-1", endpoint)
        install_hook(remote, "web-1", relay_file=relay_file, gitleaks=gitleaks, pythonpath=str(REPO), timeout=2)
        push = subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=work, capture_output=True, text=True,
                              env=env, timeout=120)
        self.assertNotEqual(push.returncode, 0, push.stderr)
        self.assertIn("push refused", push.stderr)
        self.assertIn("relay", push.stderr)
        self.start()
        with RelayCredentials(self.db) as credentials:
            credentials.revoke("web-1")
        push = subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=work, capture_output=True, text=True,
                              env=env, timeout=120)
        self.assertNotEqual(push.returncode, 0, push.stderr)
        self.assertIn("push refused", push.stderr)
        self.assertIn("revoked", push.stderr)
        with QueueStore(self.db) as store:
            self.assertEqual(store.pending(), [])


class NeverOpensTheDatabaseTest(TempDirTest):
    """A relay-backed sidecar process opens no SQLite file: not by sqlite3.connect, not by open(), not by fd."""

    HOOK = """
import os, runpy, sys
seen = open(os.environ["SEEN"], "a", buffering=1)
def hook(event, args):
    if event == "sqlite3.connect":
        seen.write(f"sqlite3.connect {args!r}\\n")
    elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.fsdecode(args[0])
        source = name.endswith((".py", ".pyc"))  # the package's own bot_bottle/db/ is code, not a database
        if name.endswith((".db", "-journal", "-wal", "-shm")) or ("/db/" in name and not source):
            seen.write(f"open {name}\\n")
sys.addaudithook(hook)
sys.argv = ["supervise_server", *sys.argv[1:]]
runpy.run_module("bot_bottle.supervise_server", run_name="__main__")
"""

    def test_a_relay_backed_sidecar_files_and_waits_without_opening_a_database(self) -> None:
        db = self.tmp / "host" / "bot-bottle.db"
        relay = InProcessRelay(db).register(self)
        relay_file = relay.relay_file("web-1", self.tmp / "relay-web-1")
        seen = self.tmp / "seen.txt"
        seen.write_text("")
        server = subprocess.Popen(
            [sys.executable, "-c", self.HOOK, "--bottle", "web-1", "--relay", str(relay_file), "--host", "127.0.0.1",
             "--port", "0", "--wait-seconds", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "SEEN": str(seen), "PYTHONPATH": str(REPO)})
        self.addCleanup(stop_process, server)
        assert server.stdout is not None
        line = server.stdout.readline()
        self.assertTrue(line.startswith("listening on "), line)
        port = int(line.split(":")[-1].strip().strip("/"))
        with QueueStore(db) as store:
            threading.Thread(target=lambda: decide(
                wait_until(lambda: store.pending("web-1"), what="the filing")[0].id, STATUS_APPROVED, "ok",
                store=store), daemon=True).start()
            answer, _ = exchange(port, request({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "egress-allow", "arguments": {"host": "a.example", "justification": "j"}}}))
        assert answer is not None
        self.assertEqual(answer.json()["result"]["structuredContent"]["status"], STATUS_APPROVED)
        descriptors = [os.readlink(f"/proc/{server.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{server.pid}/fd")]
        self.assertFalse([d for d in descriptors if d.endswith((".db", "-journal"))], descriptors)
        server.terminate()
        server.communicate(timeout=20)
        self.assertEqual(seen.read_text(), "", "the sidecar opened a database file")

    def test_the_sidecar_finds_the_relay_file_in_a_real_mount_namespace(self) -> None:
        """Only relay.json mounted (read-only) at /run/supervise: the server starts, through the relay; another
        bottle's file, refused; an empty /run/supervise, refused."""
        relay = InProcessRelay(self.tmp / "host.db").register(self)
        mine = relay.relay_file("web-1", self.tmp / "mine")
        relay.relay_file("other", self.tmp / "theirs")
        start = ("from bot_bottle.sidecar import server as s; "
                 "server, queue = s.start(s.build_parser().parse_args(['--bottle', 'web-1', '--host', '127.0.0.1', "
                 "'--port', '0']), print); print('started', type(queue).__name__); server.server_close(); "
                 "queue.close()")
        script = """
            mount -t tmpfs tmpfs /run || exit 90
            mkdir /run/supervise
            "$PY" -c "$START"; echo "empty=$?"
            mount --bind -o ro "$MINE" /run/supervise || exit 91
            "$PY" -c "$START"; echo "mine=$?"
            touch /run/supervise/x 2>/dev/null && echo writable
            umount /run/supervise && mount --bind -o ro "$THEIRS" /run/supervise || exit 91
            "$PY" -c "$START"; echo "theirs=$?"
        """
        result = in_mount_namespace(self, script, {"START": start, "MINE": str(mine.parent),
                                                   "THEIRS": str(self.tmp / "theirs")})
        out = result.stdout.splitlines()
        self.assertIn("started RelayQueue", out, result.stderr)
        self.assertIn("mine=0", out)
        self.assertNotIn("writable", out)
        self.assertIn("empty=1", out)
        self.assertIn("theirs=1", out)
        self.assertIn("neither the host's database", result.stderr)
        self.assertIn("is bottle other's, not web-1's", result.stderr)


class PrepareTest(TempDirTest):
    """``Supervise.prepare`` and ``bot-bottle prepare``: each backend's transport, and the relay plan."""

    def test_each_backend_names_its_transport_and_why(self) -> None:
        """docker/smolmachines: mount on Linux, relay on macOS and Windows; macos-container: always the relay."""
        expected = {("docker", "linux"): "mount", ("docker", "darwin"): "relay", ("docker", "win32"): "relay",
                    ("smolmachines", "linux"): "mount", ("smolmachines", "darwin"): "relay",
                    ("macos-container", "darwin"): "relay", ("macos-container", "linux"): "relay"}
        for (name, platform), transport in expected.items():
            with self.subTest(name=name, platform=platform):
                chosen, why = BACKENDS[name].transport(platform)
                self.assertEqual(chosen, transport)
                self.assertTrue(why)

    def test_a_relay_plan_mounts_only_the_bottles_relay_file_read_only(self) -> None:
        """The relay started, a token minted (hash only in the database), relay.json alone in a read-only mount."""
        port = free_port()
        with _home(self.home):
            plan = Supervise.prepare("web-1", transport="relay", relay_port=port)
            self.addCleanup(lambda: subprocess.run([sys.executable, "-m", "bot_bottle", "relay", "stop"],
                                                   env=relay_env(self.home), cwd=REPO, capture_output=True))
            folder = bottle_relay_dir("web-1")
        self.assertEqual((plan.transport, plan.mount.source, plan.mount.target, plan.mount.read_only),
                         ("relay", folder, "/run/supervise", True))
        self.assertEqual([p.name for p in folder.iterdir()], ["relay.json"])
        endpoint = read_endpoint_file(folder / "relay.json")
        self.assertEqual((endpoint.url, endpoint.bottle), (f"http://127.0.0.1:{port}/", "web-1"))
        self.assertEqual(RelayQueue(endpoint).hello(), "web-1")
        for backend in BACKENDS.values():
            joined = " ".join(backend.sidecar_args(plan))
            self.assertIn(str(folder), joined)
            self.assertNotIn(".bot-bottle/db", joined)
            self.assertTrue("readonly" in joined or ":ro" in joined, joined)
        database = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        self.assertNotIn(endpoint.token.encode(), database.read_bytes())

    def test_prepare_on_the_command_line(self) -> None:
        """Mount for docker on Linux (text and JSON); a relay that cannot listen is one clear error (its prefix once,
        and how to name another address), nothing minted."""
        run = lambda *a: subprocess.run([sys.executable, "-m", "bot_bottle", "prepare", *a],  # noqa: E731
                                        capture_output=True, text=True, env=relay_env(self.home), cwd=REPO, timeout=60)
        if sys.platform.startswith("linux"):
            text = run("web-1", "--backend", "docker")
            self.assertEqual(text.returncode, 0, text.stderr)
            self.assertIn("transport:  mount (Docker on Linux", text.stdout)
            plan = json.loads(run("web-1", "--backend", "docker", "--json").stdout)
            self.assertEqual((plan["transport"], plan["mount"]["read_only"]), ("mount", False))
        bad = run("web-1", "--backend", "macos-container", "--relay-port", str(free_port()))
        if bad.returncode == 0:
            self.skipTest("this machine has Apple container's vmnet gateway (192.168.64.1)")
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
        self.assertIn("the relay did not start: cannot listen on 192.168.64.1:", bad.stderr)
        self.assertEqual(bad.stderr.count("error:"), 1, "the relay's own 'bot-bottle: error:' is not repeated")
        self.assertIn("name it with --relay-address ADDRESS", bad.stderr)
        self.assertFalse((self.home / ".bot-bottle" / "relay" / "bottles").exists(), "no token was written")
        with self.assertRaises(ValidationError), _home(self.home):
            Supervise.prepare("web-1", transport="carrier-pigeon")
        self.assertEqual(run("web-1", "--backend", "docker", "--db", str(self.tmp / "x.db")).returncode, 2)


class DoctorTransportTest(TempDirTest):
    def test_doctor_names_each_backends_transport_and_the_relay(self) -> None:
        """doctor --json: one line per backend with its transport on this host and why; the relay's state."""
        result = self.run_cli("doctor", "--json")
        checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
        for name, backend in BACKENDS.items():
            transport, why = backend.transport()
            self.assertEqual(checks[name]["detail"], f"transport {transport} ({why})")
        self.assertIn("not running", checks["relay"]["detail"])


class _home:
    """``HOME`` set to ``home`` for the host-side calls inside the block."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def __enter__(self) -> None:
        self.saved = os.environ.get("HOME")
        os.environ["HOME"] = str(self.home)

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = self.saved

