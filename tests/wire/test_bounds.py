"""The pieces that bound what a client may hold: the refusal log, the connection pool, the JSON shape check."""

from __future__ import annotations

import json
import socket
import time
import unittest

from bot_bottle.wire.connection_pool import EVICTED, EVICTION_GRACE_SEC, ConnectionPool, peer_key
from bot_bottle.wire.json_bounds import shape_problem
from bot_bottle.wire.refusals import MAX_KINDS, RefusalLog


class RefusalLogTest(unittest.TestCase):
    def test_the_first_of_a_kind_at_once_then_the_count_per_window(self) -> None:
        lines: list[str] = []
        log = RefusalLog(lines.append, window=0.2)
        for _ in range(1000):
            log.note("bottle web-1", 503, "busy; retry")
        log.note("peer 10.0.0.5", 401, "not signed")
        self.assertEqual(lines, ["refused bottle web-1: 503 busy; retry", "refused peer 10.0.0.5: 401 not signed"])
        time.sleep(0.25)
        log.flush()
        self.assertEqual(lines[2:], ["refused bottle web-1: 503 busy; retry (999 more in the last 0.2 s)"])
        log.note("bottle web-1", 503, "busy; retry")  # a new window: said again at once
        self.assertEqual(len(lines), 4)

    def test_a_peer_varying_its_address_cannot_grow_the_log_or_its_memory(self) -> None:
        lines: list[str] = []
        log = RefusalLog(lines.append)
        for number in range(5 * MAX_KINDS):
            log.note(f"peer 10.{number // 65536}.{number // 256 % 256}.{number % 256}", 401, "not signed")
        self.assertLessEqual(len(lines), MAX_KINDS + 1)
        self.assertIn("refused others: 401 not signed", lines)


class ConnectionPoolTest(unittest.TestCase):
    def setUp(self) -> None:
        self.socks: list[socket.socket] = []

    def tearDown(self) -> None:
        for sock in self.socks:
            sock.close()

    def sock(self) -> socket.socket:
        left, right = socket.socketpair()
        self.socks += [left, right]
        return left

    def test_without_eviction_the_caps_refuse(self) -> None:
        pool = ConnectionPool(4, 2)
        self.assertIsNotNone(pool.enter(self.sock(), "10.0.0.1"))
        self.assertIsNotNone(pool.enter(self.sock(), "10.0.0.1"))
        self.assertIsNone(pool.enter(self.sock(), "10.0.0.1"))  # the peer's share
        self.assertIsNotNone(pool.enter(self.sock(), "10.0.0.2"))
        self.assertIsNotNone(pool.enter(self.sock(), "10.0.0.3"))
        self.assertIsNone(pool.enter(self.sock(), "10.0.0.4"))  # the pool's

    def test_eviction_cuts_the_oldest_of_the_largest_peer_once_looked_at_and_past_the_grace(self) -> None:
        pool = ConnectionPool(4, 2, evict=True)
        flood = [pool.enter(self.sock(), "10.0.0.9", parked=True) for _ in range(5)]
        honest = pool.enter(self.sock(), "10.0.0.1", parked=True)
        self.assertEqual(pool.trim(), 0, "nothing is cut before it was read once")
        for each in [*flood, honest]:
            assert each is not None
            each.looked_at = True
        self.assertEqual(pool.trim(), 0, "nor within the grace")
        time.sleep(EVICTION_GRACE_SEC + 0.01)
        self.assertEqual(pool.trim(), 3)
        self.assertEqual([each.ended for each in flood if each], [EVICTED] * 3 + [None] * 2)
        assert honest is not None
        self.assertIsNone(honest.ended)
        self.assertEqual(pool.waiting, 3)

    def test_a_charged_connection_leaves_the_pool_and_can_be_cut_for_its_caller(self) -> None:
        pool = ConnectionPool(2, evict=True)
        connection = pool.enter(self.sock(), "10.0.0.1")
        assert connection is not None
        pool.charge(connection, "caller", "bottle web-1")
        self.assertEqual(pool.waiting, 0)
        self.assertEqual(pool.cut(lambda principal: principal == "caller", 401, "revoked"), 1)
        self.assertEqual(connection.ended, (401, "revoked"))
        pool.leave(connection.sock)
        self.assertEqual(pool.held, 0)

    def test_peers_are_counted_by_address_and_by_ipv6_slash_64(self) -> None:
        self.assertEqual(peer_key("10.1.2.3"), "10.1.2.3")
        self.assertEqual(peer_key("::ffff:10.1.2.3"), "10.1.2.3")
        self.assertEqual(peer_key("2001:db8::1"), peer_key("2001:db8::ffff:1"))
        self.assertNotEqual(peer_key("2001:db8::1"), peer_key("2001:db8:0:1::1"))


class JsonShapeTest(unittest.TestCase):
    def test_bodies_holding_too_many_values_are_too_large_whatever_their_shape(self) -> None:
        for body in ("[" + "{}," * 20000 + "{}]", "[" + '"",' * 20000 + '""]', "[" + "1," * 20000 + "1]",
                     "[" * 60000 + "]" * 60000):
            problem = shape_problem(body, 32, 10_000)
            assert problem is not None
            self.assertTrue(problem.too_large, body[:20])

    def test_depth_is_refused_and_ordinary_messages_pass(self) -> None:
        problem = shape_problem("[" * 33 + "]" * 33, 32, 10_000)
        assert problem is not None
        self.assertFalse(problem.too_large)
        self.assertIsNone(shape_problem("[" * 32 + "]" * 32, 32, 10_000))
        # A 1 MiB routes file inside a string: its commas and brackets are the string's, not values.
        routes = json.dumps([{"host": f"h{i}.example", "paths": ["/a", "/b"]} for i in range(20000)])
        message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "submit", "params": {"payload": routes}})
        self.assertIsNone(shape_problem(message, 32, 10_000))
        # Brackets and quotes inside strings, escaped quotes included, count for nothing.
        self.assertIsNone(shape_problem(json.dumps(["[[[[{{{{" * 100, '\\"' * 1000]), 4, 10))
