"""``bot-bottle relay`` against hostile sidecars, over raw sockets, the relay in its own process.

The sidecar server's hostile suite, aimed at the relay: fuzzed requests with
and without a credential, a client trickling bytes, stalled 4 MiB bodies, a
connection flood, 1,000 concurrent filings, one bottle trying to hold every
wait. Asserted is behaviour (each request answered, threads and memory
bounded and released, no traceback), never a timing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import unittest
from typing import IO, Any

from bot_bottle.db import open_db
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.wire.jsonrpc import BUSY
from bot_bottle.wire.relay_file import RelayEndpoint
from bot_bottle.wire.signing import sign_request
from tests.helpers.hostile import (
    Sampler,
    concurrent_exchanges,
    exchange,
    fuzz,
    parse_answer,
    proc_status,
    request,
    stall_bodies,
    trickle,
    wait_until,
)
from tests.helpers.relay_fixture import free_port, start_relay_process, stop_process
from tests.helpers.support import TempDirTest

MiB = 1024 * 1024


def with_signature(data: bytes, endpoint: RelayEndpoint) -> bytes:
    """``data`` with an Authorization header after its request line (when it has one), signing what follows
    its headers as the body (whatever its Content-Length says)."""
    line_end = data.find(b"\r\n")
    if line_end < 0:
        return data
    _, _, body = data.partition(b"\r\n\r\n")
    return data[:line_end] + f"\r\nAuthorization: {sign_request(endpoint, body)[0]}".encode() + data[line_end:]


def relay_call(method: str, params: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    """A relay JSON-RPC message."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


@unittest.skipUnless(sys.platform.startswith("linux"), "reads threads and memory from /proc")
class RelayHostileCase(TempDirTest):
    """A relay process per test, a credential for bottle web-1, its stderr kept for tracebacks."""

    def serve(self, *options: str) -> None:
        self.db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(self.db).close()
        with RelayCredentials(self.db) as credentials:
            self.endpoint = RelayEndpoint(url="http://127.0.0.1:1/", token=credentials.mint("web-1"), bottle="web-1")
            self.other = RelayEndpoint(url="http://127.0.0.1:1/", token=credentials.mint("web-2"), bottle="web-2")
        self.stderr_path = self.tmp / "relay.stderr"
        stderr: IO[str] = open(self.stderr_path, "w")  # noqa: SIM115 - closed by cleanup
        self.addCleanup(stderr.close)
        self.port = free_port()
        self.server = start_relay_process(self.home, self.port, *options, stderr=stderr)
        self.addCleanup(stop_process, self.server)

    def authed(self, body: bytes | dict[str, Any], **kwargs: Any) -> bytes:
        return with_signature(request(body, host="127.0.0.1", **kwargs), self.endpoint)

    def assert_alive_and_clean(self) -> None:
        """The relay still runs, answers its bottle's hello, and never printed a traceback."""
        self.assertIsNone(self.server.poll(), "the relay died")
        answer, _ = exchange(self.port, self.authed(relay_call("hello", {})))
        assert answer is not None
        self.assertEqual((answer.status, answer.json()["result"]), (200, {"bottle": "web-1"}))
        log = self.stderr_path.read_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("internal error", log)


class RelayFuzzTest(RelayHostileCase):
    def test_fuzzed_requests_with_and_without_a_credential_are_each_answered(self) -> None:
        """600 malformed requests signed with the bottle's credential, 300 unsigned: each gets a well-formed answer."""
        self.serve("--request-timeout", "2")
        with Sampler(self.server.pid) as sampler:
            signed = fuzz(self.port, 600, seed=20261130, deadline=time.monotonic() + 120,
                          transform=lambda data: with_signature(data, self.endpoint))
            bare = fuzz(self.port, 300, seed=7, deadline=time.monotonic() + 60)
        for report in (signed, bare):
            self.assertEqual(report.unanswered, [])
            self.assertEqual(report.tracebacks, 0)
            self.assertEqual(len(report.sent), 8, report.sent)
        self.assertNotIn(500, signed.statuses, signed.statuses)
        # Bounded, where a thread a connection would be 900: 8, and a handler ending as the next starts may overlap
        # it on a loaded machine (9 was seen once, in a CI run with two other modules on the two cores).
        self.assertLessEqual(sampler.peak["Threads"], 8 + 2)
        self.assert_alive_and_clean()

    def test_foreign_hosts_and_origins_are_refused(self) -> None:
        """A rebinding page's Host and Origin get 403 even when signed; the VM names are served."""
        self.serve()
        hello = relay_call("hello", {})
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}):
            signed = with_signature(request(hello, host="127.0.0.1", headers=headers), self.endpoint)
            answer, _ = exchange(self.port, signed)
            self.assertEqual(answer.status if answer else None, 403, headers)
        answer, _ = exchange(self.port, with_signature(request(hello, host="evil.example:9110"), self.endpoint))
        self.assertEqual(answer.status if answer else None, 403)
        for name in ("host.docker.internal", "192.168.64.1", "localhost"):
            answer, _ = exchange(self.port, with_signature(request(hello, host=f"{name}:{self.port}"), self.endpoint))
            self.assertEqual(answer.status if answer else None, 200, name)
        self.assert_alive_and_clean()


class RelaySlowClientTest(RelayHostileCase):
    def test_a_client_trickling_bytes_is_cut_off_at_the_deadline(self) -> None:
        """One byte every 0.2 s, signed: the request's deadline (2 s) ends it with 408."""
        self.serve("--request-timeout", "2")
        data = self.authed(b"{}", headers={"X-Padding": "p" * 100})
        sent, reply = trickle(self.port, data)
        self.assertLess(sent, len(data))
        answer = parse_answer(reply)
        assert answer is not None, reply
        self.assertEqual(answer.status, 408)
        self.assert_alive_and_clean()

    def test_stalled_bodies_hold_bounded_memory_and_threads(self) -> None:
        """40 signed clients declare 4 MiB, send 1 MiB and stall: bounded, all answered, all released."""
        self.serve("--request-timeout", "3", "--max-connections", "48")
        idle = proc_status(self.server.pid)
        with Sampler(self.server.pid) as sampler:
            # Each with a signature of its own: a nonce is served once.
            results = stall_bodies(self.port, lambda: self.authed(b"", length=str(4 * MiB)), 40, MiB)
        self.assertEqual(len(results), 40)
        self.assertEqual(set(results) - {408, 503}, set(), results)
        growth_mib = (sampler.peak["VmHWM"] - idle["VmHWM"]) / 1024
        self.assertLess(growth_mib, 64, f"grew {growth_mib:.0f} MiB")
        self.assertLessEqual(sampler.peak["Threads"], 48 + 4)
        self.assertTrue(wait_until(lambda: proc_status(self.server.pid)["Threads"] <= idle["Threads"] + 1, 15))
        self.assert_alive_and_clean()

    def test_a_connection_flood_is_cut_beyond_the_pool(self) -> None:
        """300 idle connections from one peer against a pool of 32 (8 a peer): all but 8 are closed, without a
        word (they sent nothing) or, past 8 times the pool at once, with 503; threads never grow; then it
        serves as before."""
        self.serve("--request-timeout", "2", "--max-connections", "32")
        idle = proc_status(self.server.pid)
        with Sampler(self.server.pid) as sampler:
            socks = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(300)]
            time.sleep(0.5)
            closed = 0
            for sock in socks:
                sock.settimeout(0.05)
                received = b""
                with contextlib.suppress(TimeoutError):
                    while chunk := sock.recv(4096):
                        received += chunk
                    closed += 1
                answer = parse_answer(received)
                if answer is not None:  # past 8 times the pool at once: refused by the accept loop itself
                    self.assertEqual((answer.status, answer.headers.get("retry-after")), (503, "1"))
        self.assertGreaterEqual(closed, 300 - 8)  # a quarter of the pool per peer is kept
        # Parked, not a thread each: the flood never added a thread.
        self.assertLessEqual(sampler.peak["Threads"], idle["Threads"] + 1)
        for sock in socks:
            sock.close()
        answer, _ = exchange(self.port, self.authed(relay_call("hello", {})))
        self.assertEqual(answer.status if answer else None, 200)
        self.assert_alive_and_clean()


class RelayLoadTest(RelayHostileCase):
    def test_a_thousand_concurrent_filings_are_each_answered(self) -> None:
        """1,000 filings at once: each filed once (200), told to retry (503, or busy past its writes), or cut
        before a byte of it was read (closed without a word: the client connects all of them before it sends
        anything, and the pool keeps 32 idle ones a peer); none lost, none filed twice, threads bounded."""
        count = 1000
        self.serve("--max-pending", str(count))
        calls = [self.authed(relay_call("submit", {"tool": TOOL_EGRESS_ALLOW, "payload": f'{{"host": "h{i}"}}',
                                                   "justification": "load"}, i)) for i in range(count)]
        idle = proc_status(self.server.pid)
        with Sampler(self.server.pid) as sampler:
            raws = concurrent_exchanges(self.port, calls, timeout=120)
        filed, busy, cut = set(), 0, 0
        for index, raw in enumerate(raws):
            if raw == b"":
                cut += 1
                continue
            answer = parse_answer(raw)
            assert answer is not None, f"call {index} got no whole answer: {raw[:200]!r}"
            if answer.status == 503:
                self.assertEqual(answer.headers.get("retry-after"), "1")
                busy += 1
                continue
            self.assertEqual(answer.status, 200, answer.body)
            document = json.loads(answer.body)
            if document.get("error", {}).get("code") == BUSY:  # over the bottle's writes a second: retry
                busy += 1
                continue
            result = document["result"]
            self.assertEqual((result["queue_key"], result["payload"]), ("web-1", f'{{"host": "h{index}"}}'))
            filed.add(result["id"])
        self.assertEqual(len(filed) + busy + cut, count)
        self.assertGreater(len(filed), 0)
        # Handlers checking signatures (the pool's 128 readers) and the bottle's share in flight (64), at most; the
        # thread that drains refused connections, started at the first 503; and a few handlers ending: one leaves
        # the pool before its thread is gone, so the next can start meanwhile (peaks of 2 over the 192 were seen,
        # twice, with two other suites on the two cores). A thread a connection, what this bounds, would be 1,000.
        self.assertLessEqual(sampler.peak["Threads"], idle["Threads"] + 128 + 64 + 8)
        with RelayCredentials(self.db) as credentials, credentials.db.read() as conn:
            stored = conn.execute("SELECT count(*) FROM proposals WHERE queue_key = 'web-1'").fetchone()[0]
        self.assertEqual(stored, len(filed), "every 200 is a stored proposal, and nothing else was stored")
        self.assert_alive_and_clean()

    def test_one_bottle_holding_many_waits_leaves_room_for_the_others(self) -> None:
        """web-1 opens 100 waits (cap 32): the rest are told to retry at once; web-2's wait is answered.

        Each wait is sent as its connection opens: opened all before any is
        sent, those the client had not reached within the pool's grace were
        idle connections, cut without a word (a loaded CI machine did so)."""
        self.serve("--max-waits-per-bottle", "32")
        answer, _ = exchange(self.port, self.authed(relay_call("submit", {
            "tool": TOOL_EGRESS_ALLOW, "payload": '{"host": "a"}', "justification": "hold"})))
        assert answer is not None
        held_id = answer.json()["result"]["id"]
        waits = [self.authed(relay_call("wait", {"id": held_id, "timeout": 3}, i)) for i in range(100)]
        outcome: list[list[bytes]] = []
        hog = threading.Thread(target=lambda: outcome.append(concurrent_exchanges(
            self.port, waits, timeout=60, send_on_connect=True)))
        hog.start()
        time.sleep(1.0)
        other = with_signature(request(relay_call("submit", {"tool": TOOL_EGRESS_ALLOW, "payload": '{"host": "b"}',
                                                             "justification": "mine"}), host="127.0.0.1"), self.other)
        answer, _ = exchange(self.port, other)
        assert answer is not None
        mine = answer.json()["result"]["id"]
        with QueueStore(self.db) as store:
            decide(mine, STATUS_APPROVED, "ok", store=store)
        answer, _ = exchange(self.port, with_signature(request(relay_call("wait", {"id": mine, "timeout": 5}),
                                                               host="127.0.0.1"), self.other))
        assert answer is not None
        self.assertEqual(answer.json()["result"]["status"], STATUS_APPROVED)
        hog.join(60)
        answers = [parse_answer(raw) for raw in outcome[0]]
        self.assertNotIn(None, answers, "every wait was answered")
        outcomes = []
        for each in answers:
            assert each is not None
            error = json.loads(each.body).get("error")
            if error is None:
                outcomes.append("waited")
            elif error["code"] == BUSY or (each.status == 503 and each.headers.get("retry-after") == "1"):
                # Over the bottle's 32 waits, or over its 64 requests in flight (which one depends on timing).
                outcomes.append("retry")
            else:
                outcomes.append(f"{each.status} {error}")
        self.assertEqual((outcomes.count("waited"), outcomes.count("retry")), (32, 100 - 32), outcomes)
        self.assert_alive_and_clean()

