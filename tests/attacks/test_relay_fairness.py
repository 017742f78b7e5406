"""No bottle can shut another out of the relay, nor can a client without a token: real processes throughout.

Bottle A is hostile: it holds its own relay.json and attacks from a process
of its own (``tests.helpers.relay_attacks``): bodies declared and never sent,
bodies trickled a byte a second, writes as fast as it can, a hundred waits
held, or, without any token, connections opened as fast as it can from the
honest bottle's own address. Bottle B is honest: its real sidecar process
files through the relay and an operator approves at once. Under each attack
B files and hears its decision, every time, long before a starved call would
give up (``WITHIN_SEC``, a bound that tells served from shut out even on a
loaded machine); how fast B actually is under each attack (within the
issue's second) is measured by bench/relay_fairness.py (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import IO

from bot_bottle.db import open_db
from bot_bottle.errors import UnsafePath
from bot_bottle.records import TOOL_GITLEAKS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from tests.helpers.hostile import Sampler, exchange, parse_answer, proc_status
from tests.helpers.relay_attacks import Honest, relay_message, signed, start_attack, stop_attack
from tests.helpers.relay_fixture import free_port, start_relay_process, stop_process
from tests.helpers.support import TempDirTest, wait_until

ROUNDS = 5
# Not a speed claim (bench/relay_fairness.py measures B's round trips under each attack): a B shut out waited
# for its 10 s RelayUnreachable, so a bound well under that tells served from starved even on a loaded machine.
WITHIN_SEC = 5.0
MiB = 1024 * 1024


@unittest.skipUnless(sys.platform.startswith("linux"), "reads threads and memory from /proc")
class FairnessCase(TempDirTest):
    """A relay process, bottle A's relay file for the attacker, bottle B's real sidecar and its operator."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.home / ".bot-bottle" / "db" / "bot-bottle.db"
        open_db(self.db).close()
        self.port = free_port()
        url = f"http://127.0.0.1:{self.port}/"
        with RelayCredentials(self.db) as credentials:
            self.a = RelayEndpoint(url=url, token=credentials.mint("hostile-a"), bottle="hostile-a")
            self.b = RelayEndpoint(url=url, token=credentials.mint("honest-b"), bottle="honest-b")
        self.a_file = write_endpoint_file(bottle_relay_dir("hostile-a"), self.a)
        self.b_file = write_endpoint_file(bottle_relay_dir("honest-b"), self.b)
        self.stderr_path = self.tmp / "relay.stderr"
        stderr: IO[str] = open(self.stderr_path, "w")  # noqa: SIM115 - closed by cleanup
        self.addCleanup(stderr.close)
        self.relay = start_relay_process(self.home, self.port, stderr=stderr)
        self.addCleanup(stop_process, self.relay)
        self.honest = Honest(self.db, self.b_file)
        self.addCleanup(self.honest.close)

    def assert_b_is_served_during(self, kind: str) -> None:
        """Under attack ``kind``, B's tool call is approved and answered every time, long before a starved call
        would give up."""
        self.assertEqual(self.honest.round_trip()[0], True, "B is served before the attack")
        attack = start_attack(kind, self.port, self.a_file)
        self.addCleanup(stop_attack, attack)
        time.sleep(1.0)  # the attack settles in
        outcomes = [self.honest.round_trip() for _ in range(ROUNDS)]
        self.assertIsNone(attack.poll(), "the attack ran throughout")
        stop_attack(attack)
        self.assertEqual([ok for ok, _ in outcomes], [True] * ROUNDS, outcomes)
        slowest = max(seconds for _, seconds in outcomes)
        self.assertLess(slowest, WITHIN_SEC, f"B's slowest round trip under {kind}: {slowest:.3f} s")
        self.assert_relay_clean()

    def assert_relay_clean(self) -> None:
        self.assertIsNone(self.relay.poll(), "the relay is alive")
        log = self.stderr_path.read_text(errors="replace")
        self.assertNotIn("Traceback", log)


class HostileBottleTest(FairnessCase):
    def test_stalled_bodies_of_one_bottle_leave_the_others_served(self) -> None:
        """BROKE before the fix: eight of A's requests declaring 4 MiB bodies that never came filled the body
        budget all bottles shared, and B filed 0 of 5 in 45 s. Now A's bodies fill only A's share."""
        self.assert_b_is_served_during("stall-bodies")

    def test_trickled_bodies_of_one_bottle_leave_the_others_served(self) -> None:
        """BROKE before the fix: trickled bodies took every place in flight the relay had for all."""
        self.assert_b_is_served_during("trickle")

    def test_a_write_flood_of_one_bottle_leaves_the_others_served(self) -> None:
        """BROKE before the fix: 'stopped' at 120 a second from A made B's calls 200 times slower."""
        self.assert_b_is_served_during("flood-writes")

    def test_a_bottle_holding_a_hundred_waits_leaves_the_others_served(self) -> None:
        self.assert_b_is_served_during("hold-waits")

    def test_a_read_flood_of_pipelined_requests_leaves_the_others_served(self) -> None:
        """Reads write nothing, so no write share slows them: eight kept-alive connections of A's, each
        pipelining twenty freshly signed reads at a time, as fast as they are answered."""
        self.assert_b_is_served_during("flood-reads")

    def test_answers_a_bottle_never_reads_leave_the_others_served(self) -> None:
        """A hundred of A's requests for a 4 MiB answer, none read: they wait their turn in A's share."""
        self.assert_b_is_served_during("unread-answers")

    def test_a_flood_of_forged_requests_in_bs_name_leaves_b_served(self) -> None:
        """No token: whole requests naming bottle B, signed with a made-up key, as fast as they are refused.
        Each is checked (a credential look-up and a MAC) by one of the pool's few readers, and none touches
        B's share or nonces."""
        self.assert_b_is_served_during("flood-forged")

    def test_a_connection_flood_without_a_token_leaves_every_bottle_served(self) -> None:
        """BROKE before the fix: a client reconnecting as fast as it could held the relay's 512 connections
        and B filed 0 of 5. Now connections waiting to be authenticated are a small pool that cuts its
        oldest, and B (from the very same address) sends its headers at once."""
        self.assert_b_is_served_during("flood-connections")


class NonceTheftTest(FairnessCase):
    def test_a_request_of_a_carrying_bs_nonce_does_not_spend_it(self) -> None:
        """BROKE before the fix: nonces were one pool for all bottles, so A, signing with its own key a
        request that carried a nonce sniffed from B's traffic, spent it: B was refused as served already,
        took that for a revoked credential, and its sidecar exited. Here A goes first, every time."""
        body = json.dumps(relay_message("hello", {})).encode()
        for _ in range(10):
            nonce = os.urandom(16).hex()
            theirs, _ = exchange(self.port, signed(self.a, body, nonce=nonce))
            mine, _ = exchange(self.port, signed(self.b, body, nonce=nonce))
            assert theirs is not None and mine is not None
            self.assertEqual((theirs.status, mine.status), (200, 200), mine.body)
            self.assertEqual(json.loads(mine.body)["result"], {"bottle": "honest-b"})
            # B's nonce is spent now, for B: a replay of B's request is told to retry, never served.
            again, _ = exchange(self.port, signed(self.b, body, nonce=nonce))
            assert again is not None
            self.assertEqual(again.status, 503)


class MemoryBoundTest(FairnessCase):
    def test_bodies_of_empty_objects_stay_within_the_memory_bound(self) -> None:
        """BROKE before the fix: one 4 MiB body raised the relay's peak memory by 120-224 MiB (a dict per
        '{}'), eight at once by 930 MiB. Now a body is refused 413 before parsing when it holds more JSON
        values than a request may, and what it took in memory is its bytes."""
        shapes = {
            "objects": b"[" + b"{}," * (4 * MiB // 3 - 2) + b"{}]",
            "arrays": b"[" + b"[]," * (4 * MiB // 3 - 2) + b"[]]",
            "numbers": b"[" + b"1," * (2 * MiB - 2) + b"1]",
        }
        idle = proc_status(self.relay.pid)
        with Sampler(self.relay.pid) as sampler:
            for name, body in shapes.items():
                with self.subTest(name):
                    self.assertLessEqual(len(body), 4 * MiB)
                    answer, raw = exchange(self.port, signed(self.a, body))
                    assert answer is not None, raw[:200]
                    self.assertEqual(answer.status, 413, answer.body)
            # Eight at once, as the issue measured: A's share holds two of them; the rest are told to retry.
            results: list[int] = []

            def send() -> None:
                answer, _ = exchange(self.port, signed(self.a, shapes["objects"]))
                results.append(answer.status if answer else 0)

            threads = [threading.Thread(target=send) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        self.assertEqual(set(results) - {413, 503}, set(), results)
        growth_mib = (sampler.peak["VmHWM"] - idle["VmHWM"]) / 1024
        self.assertLess(growth_mib, 64, f"the relay's peak memory grew {growth_mib:.0f} MiB")
        self.assertTrue(self.honest.round_trip()[0])
        self.assert_relay_clean()


    def test_answers_never_read_stay_within_the_memory_bound(self) -> None:
        """BROKE before the fix: A filed one proposal whose answer is 4 MiB (control characters, which an answer
        escapes six bytes each, as the request did) and asked for it on 100 connections that never read: every
        answer was built and held while its write waited 15 s, and the relay's peak memory grew 856 MiB. Now a
        bottle's requests are answered two at a time, the rest wait their turn in its own share."""
        queue = RelayQueue(self.a)
        text = "\x01" * 330_000  # 2 MiB in JSON each, payload and current file: one request within 4 MiB
        held = queue.submit(TOOL_GITLEAKS_ALLOW, text, "big", text)
        body = json.dumps(relay_message("get", {"id": held.id})).encode()
        idle = proc_status(self.relay.pid)
        readers: list[socket.socket] = []
        with Sampler(self.relay.pid) as sampler:
            for _ in range(100):
                sock = socket.socket()
                self.addCleanup(sock.close)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window the answer never fits
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(signed(self.a, body))
                readers.append(sock)
            time.sleep(3.0)
            ok, seconds = self.honest.round_trip()
            time.sleep(3.0)
        growth_mib = (sampler.peak["VmHWM"] - idle["VmHWM"]) / 1024
        self.assertLess(growth_mib, 64, f"the relay's peak memory grew {growth_mib:.0f} MiB")
        self.assertTrue(ok)
        self.assertLess(seconds, WITHIN_SEC)
        for sock in readers:
            sock.close()
        self.assert_relay_clean()


class RevocationTest(FairnessCase):
    def held_body(self) -> socket.socket:
        """A's request whose body is still arriving, held by the relay: sent while A's waits arrive, one can find
        A's share full for a moment and be answered 503 at once, which is no body held for the revocation to cut;
        such a one is sent again, for up to 15 s. (Ten tries in a row were once all refused in CI: the waits the
        share turns away reconnect every 10 ms, and on a loaded machine they can keep its places full.)"""
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            stalled = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.addCleanup(stalled.close)
            stalled.sendall(signed(self.a, b"x" * 100, length=MiB))
            stalled.settimeout(1.0)
            try:
                early = stalled.recv(65536, socket.MSG_PEEK)
            except TimeoutError:
                return stalled  # nothing answered: held, reading its body
            answer = parse_answer(early)
            self.assertEqual(answer.status if answer else None, 503, early[:200])
            stalled.close()
            time.sleep(0.05)
        self.fail("A's body was answered 503 for 15 s: never held")

    def test_revocation_releases_the_bottles_waits_and_places_at_once(self) -> None:
        """BROKE before the fix: revoking a bottle left its 32 waits holding their places for 23 s. Now the
        relay notices within a fraction of a second, ends them (answered: revoked) and cuts its bodies."""
        # Counted from the idle relay's threads: a count taken while A's waits were still arriving (a loaded
        # machine) asked more of the release than the waits held.
        idle = proc_status(self.relay.pid)["Threads"]
        attack = start_attack("hold-waits", self.port, self.a_file)
        self.addCleanup(stop_attack, attack)
        stalled = self.held_body()
        wait_until(lambda: proc_status(self.relay.pid)["Threads"] >= idle + 30, 20, what="A's waits to be held")
        stop_attack(attack)  # the waits stay open at the relay until it lets them go
        with RelayCredentials(self.db) as credentials:
            revoked_at = time.monotonic()
            self.assertTrue(credentials.revoke("hostile-a"))
        stalled.settimeout(10)
        reply = b""
        while chunk := stalled.recv(65536):
            reply += chunk
        answer = parse_answer(reply)
        assert answer is not None, reply[:200]
        self.assertEqual(answer.status, 401)
        self.assertIn(b"revoked", answer.body)
        wait_until(lambda: proc_status(self.relay.pid)["Threads"] <= idle + 5, 10,
                   what="the revoked bottle's waits to be released")
        released_after = time.monotonic() - revoked_at
        # Before, the revoked bottle's waits held their places for 23 s; released at once now (within a bound a
        # loaded machine keeps: the timing itself is the benchmark's).
        self.assertLess(released_after, 5.0, f"released after {released_after:.2f} s")
        # Logged once the waits are let go and the bodies cut: a look right after the threads ended can come first.
        wait_until(lambda: "bottle hostile-a: credential revoked; released" in self.stderr_path.read_text(), 5,
                   what="the relay to log the release")
        self.assertTrue(self.honest.round_trip()[0])


    def test_revocation_releases_the_requests_waiting_for_their_turn_to_be_answered(self) -> None:
        """A hundred of A's requests for an answer it never reads: two are being written (until the write
        timeout), the rest of A's share waits for its turn. Revoked, those waiting let go at once."""
        idle = proc_status(self.relay.pid)["Threads"]
        attack = start_attack("unread-answers", self.port, self.a_file)
        self.addCleanup(stop_attack, attack)
        wait_until(lambda: proc_status(self.relay.pid)["Threads"] >= idle + 60, 20, what="A's requests to be held")
        with RelayCredentials(self.db) as credentials:
            revoked_at = time.monotonic()
            self.assertTrue(credentials.revoke("hostile-a"))
        wait_until(lambda: proc_status(self.relay.pid)["Threads"] <= idle + 10, 10,
                   what="the revoked bottle's requests to be released")
        released_after = time.monotonic() - revoked_at
        self.assertLess(released_after, 5.0, f"released after {released_after:.2f} s")
        self.assertTrue(self.honest.round_trip()[0])
        self.assert_relay_clean()


class RefusalLogTest(FairnessCase):
    def test_every_refusal_is_logged_without_flooding_the_log(self) -> None:
        """BROKE before the fix: refusals and 503s were not logged at all. Now the first of each kind per
        bottle or peer is one line at once, the rest are counted for the minute."""
        attack = start_attack("flood-writes", self.port, self.a_file)
        self.addCleanup(stop_attack, attack)
        time.sleep(3.0)
        stop_attack(attack)
        unsigned = exchange(self.port, signed(RelayEndpoint(url=self.a.url, token="x" * 43, bottle="hostile-a"),
                                              b"{}"))[0]
        assert unsigned is not None
        self.assertEqual(unsigned.status, 401)
        wait_until(lambda: "refused peer 127.0.0.1: 401" in self.stderr_path.read_text(), 10,
                   what="the unsigned request's refusal in the log")
        lines = self.stderr_path.read_text().splitlines()
        refused = [line for line in lines if "refused" in line]
        self.assertTrue(any("refused bottle hostile-a:" in line for line in refused), refused)
        self.assertLessEqual(len(refused), 10, refused)  # thousands of refusals, a handful of lines
        self.assertTrue(all(len(line) < 500 for line in lines))


class PrivateFilesTest(TempDirTest):
    def test_the_relay_lock_as_a_symbolic_link_is_refused(self) -> None:
        """BROKE before the fix: relay.lock was opened through a symlink, so the file it pointed to was
        overwritten with the relay's address, then emptied when it stopped. Now the relay refuses it."""
        relay_dir = self.home / ".bot-bottle" / "relay"
        relay_dir.mkdir(parents=True)
        victim = self.tmp / "victim.txt"
        victim.write_text("precious\n")
        (relay_dir / "relay.lock").symlink_to(victim)
        open_db(self.home / ".bot-bottle" / "db" / "bot-bottle.db").close()
        result = self.run_cli("relay", "--port", str(free_port()))
        self.assert_clean_error(result, 1, "relay.lock is a symbolic link")
        self.assertEqual(victim.read_text(), "precious\n")

    def test_the_relay_log_as_a_symbolic_link_is_refused(self) -> None:
        relay_dir = self.home / ".bot-bottle" / "relay"
        relay_dir.mkdir(parents=True)
        victim = self.tmp / "victim.txt"
        victim.write_text("precious\n")
        (relay_dir / "relay.log").symlink_to(victim)
        open_db(self.home / ".bot-bottle" / "db" / "bot-bottle.db").close()
        result = self.run_cli("relay", "start", "--port", str(free_port()))
        self.assert_clean_error(result, 1, "relay.log is a symbolic link")
        self.assertEqual(victim.read_text(), "precious\n")

    def test_every_relay_directory_is_the_owners_alone(self) -> None:
        """BROKE before the fix: ~/.bot-bottle/relay/bottles was 0755 (made by mkdir's parents=True)."""
        root = self.home / ".bot-bottle"
        root.mkdir(mode=0o755)
        write_endpoint_file(bottle_relay_dir("web-1"), RelayEndpoint(url="http://127.0.0.1:9/", token="t" * 43,
                                                                     bottle="web-1"))
        for level in (root, root / "relay", root / "relay" / "bottles", root / "relay" / "bottles" / "web-1"):
            self.assertEqual(level.stat().st_mode & 0o777, 0o700, level)

    def test_a_link_inside_the_relay_directory_is_refused(self) -> None:
        outside = self.tmp / "elsewhere"
        outside.mkdir()
        (self.home / ".bot-bottle" / "relay").mkdir(parents=True)
        (self.home / ".bot-bottle" / "relay" / "bottles").symlink_to(outside)
        with self.assertRaises(UnsafePath) as caught:
            write_endpoint_file(bottle_relay_dir("web-1"), RelayEndpoint(url="http://127.0.0.1:9/", token="t" * 43,
                                                                         bottle="web-1"))
        self.assertIn("bottles is not a directory", str(caught.exception))
        self.assertEqual(list(Path(outside).iterdir()), [])
