"""The sidecar's supervise server: JSON-RPC/MCP behaviour, bad input, concurrency, a real MCP client."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bot_bottle.connection import connect
from bot_bottle.db import DB_PATH_IN_CONTAINER, open_db
from bot_bottle.decisions import decide
from bot_bottle.errors import ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    DEFAULT_QUOTA,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_BLOCK,
    Proposal,
    Quota,
)
from bot_bottle.schema import migrate
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.sidecar.mcp import SuperviseService, route_payload
from bot_bottle.sidecar.server import build_parser, wait_seconds_from
from bot_bottle.sidecar.transport import SidecarQueue
from bot_bottle.wire.jsonrpc_server import MAX_BODY_BYTES, SuperviseHTTPServer
from bot_bottle.wire.relay_file import RELAY_FILE_IN_CONTAINER
from tests.helpers.support import REPO, TempDirTest, decide_when_filed, in_ci, in_mount_namespace, wait_until


def mcp_python() -> str | None:
    """A Python that can import the official ``mcp`` client: $BOT_BOTTLE_MCP_PYTHON, or this one."""
    configured = os.environ.get("BOT_BOTTLE_MCP_PYTHON")
    candidates = [configured] if configured else []
    candidates.append(sys.executable)
    for candidate in candidates:
        probe = subprocess.run([candidate, "-c", "import mcp.client.streamable_http"], capture_output=True)
        if probe.returncode == 0:
            return candidate
    return None


class ServerTestCase(TempDirTest):
    wait_seconds = 5.0
    quota = DEFAULT_QUOTA

    def setUp(self) -> None:
        super().setUp()
        self.path = self.tmp / "server.db"
        self.store = QueueStore(self.path)
        self.addCleanup(self.store.close)
        self.logged: list[str] = []
        service = SuperviseService(self.bottle_queue(self.quota), wait_seconds=self.wait_seconds,
                                   poll_interval=0.02, log=self.logged.append,
                                   routes_file=self.tmp / "routes.yaml")
        self.server = SuperviseHTTPServer(("127.0.0.1", 0), service, request_timeout=1.0)
        self.port = self.server.server_address[1]
        thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)

    def bottle_queue(self, quota: Quota) -> SidecarQueue:
        """The queue handle the server files through: the database directly (here) or the relay (subclasses)."""
        return self.store.for_bottle("web-1", quota=quota)

    def post(self, body: bytes | dict[str, Any], headers: dict[str, str] | None = None,
             timeout: float = 30) -> tuple[int, dict[str, Any] | None]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/", data, {"Content-Type": "application/json",
                                              "Accept": "application/json, text/event-stream", **(headers or {})})
            response = conn.getresponse()
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)
        finally:
            conn.close()

    def call(self, name: str, arguments: dict[str, Any], request_id: int = 1) -> tuple[int, dict[str, Any] | None]:
        return self.post({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                          "params": {"name": name, "arguments": arguments}})

    def decide_when_filed(self, status: str, notes: str, final_file: str | None = None) -> None:
        decide_when_filed(self, self.store, "web-1", status, notes, final_file)


class ProtocolTest(ServerTestCase):
    def test_initialize_negotiates_the_version(self) -> None:
        """A supported version is echoed; an unknown one gets the newest we speak."""
        for asked, answered in (("2025-06-18", "2025-06-18"), ("2099-01-01", "2025-11-25")):
            status, body = self.post({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                      "params": {"protocolVersion": asked, "capabilities": {},
                                                 "clientInfo": {"name": "t", "version": "1"}}})
            assert body is not None
            self.assertEqual(status, 200)
            self.assertEqual(body["result"]["protocolVersion"], answered)
            self.assertIn("tools", body["result"]["capabilities"])
            self.assertEqual(body["result"]["serverInfo"]["name"], "bot-bottle-supervise")

    def test_notifications_ping_and_tools_list(self) -> None:
        """notifications get 202 and no body; ping answers {}; tools/list has the three tools with schemas."""
        self.assertEqual(self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}), (202, None))
        self.assertEqual(self.post({"jsonrpc": "2.0", "id": "p", "method": "ping"})[1],
                         {"jsonrpc": "2.0", "id": "p", "result": {}})
        _, body = self.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert body is not None
        tools = {tool["name"]: tool for tool in body["result"]["tools"]}
        self.assertEqual(set(tools), {"egress-block", "egress-allow", "check-proposal"})
        for tool in tools.values():
            self.assertEqual(tool["inputSchema"]["type"], "object")
            self.assertTrue(tool["inputSchema"]["required"])

    def test_error_codes(self) -> None:
        """Parse, invalid request, method not found, invalid params: each its JSON-RPC code."""
        cases: list[tuple[bytes | dict[str, Any], int]] = [
            (b"{not json", -32700),
            (b"\xff\xfe", -32700),
            ({"id": 1, "method": "ping"}, -32600),
            ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], -32600),  # type: ignore[list-item]
            ({"jsonrpc": "2.0", "id": 1, "method": 7}, -32600),
            ({"jsonrpc": "2.0", "id": True, "method": "ping"}, -32600),
            ({"jsonrpc": "2.0", "id": 1, "method": "resources/list"}, -32601),
            ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "rm-rf"}}, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}, -32602),
            ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, -32602),
        ]
        for body, code in cases:
            with self.subTest(body=body):
                data = json.dumps(body).encode() if isinstance(body, dict | list) else body
                _, answer = self.post(data)
                assert answer is not None
                self.assertEqual(answer["error"]["code"], code)

    def test_bad_tool_arguments(self) -> None:
        """Missing, mistyped, unknown and invalid arguments are tool results with isError, and file nothing."""
        cases = [
            ("egress-allow", {"justification": "x"}, "missing argument: host"),
            ("egress-allow", {"host": 5, "justification": "x"}, "must be a string, not int"),
            ("egress-allow", {"host": "a.com", "justification": "x", "extra": 1}, "unknown argument"),
            ("egress-allow", {"host": "not a host!", "justification": "x"}, "such as docs.python.org"),
            ("egress-allow", {"host": "a.com", "paths": ["no-slash"], "justification": "x"}, "starting with /"),
            ("egress-allow", {"host": "a.com", "paths": "/x", "justification": "x"}, "an array of strings"),
            ("egress-block", {"routes_file": "r", "justification": ""}, "justification"),
            ("egress-block", {"routes_file": "a\x00b", "justification": "j"}, "NUL"),
            ("egress-block", {"routes_file": "x" * (1024 * 1024 + 1), "justification": "j"}, "over the limit"),
            ("check-proposal", {"proposal_id": "f" * 32}, "no proposal"),
            ("check-proposal", {"proposal_id": "../../etc"}, "no proposal"),
        ]
        for name, arguments, needle in cases:
            with self.subTest(name=name, arguments=str(arguments)[:80]):
                status, answer = self.call(name, arguments)
                assert answer is not None
                self.assertEqual(status, 200)
                self.assertNotIn("error", answer)
                result = answer["result"]
                self.assertIs(result["isError"], True)
                self.assertIn(needle, result["content"][0]["text"])
        self.assertEqual(self.store.pending(), [])

    def test_protocol_errors_stay_json_rpc_errors(self) -> None:
        """An unknown tool, a missing name and arguments that are not an object are -32602, not tool results."""
        cases: list[dict[str, Any]] = [{"name": "rm-rf", "arguments": {}}, {"arguments": {}},
                                       {"name": "egress-allow", "arguments": []}]
        for params in cases:
            with self.subTest(params=params):
                _, answer = self.post({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
                assert answer is not None
                self.assertEqual(answer["error"]["code"], -32602)

    def test_http_level_refusals(self) -> None:
        """Wrong content type 415, no length 411, bad protocol header 400, GET/DELETE 405, foreign Origin 403."""
        self.assertEqual(self.post(b"{}", {"Content-Type": "text/plain"})[0], 415)
        self.assertEqual(self.post(b"{}", {"MCP-Protocol-Version": "1999-01-01"})[0], 400)
        self.assertEqual(self.post(b"{}", {"Origin": "https://evil.example"})[0], 403)
        ok = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        self.assertEqual(self.post(ok, {"Origin": "http://localhost:3000"})[0], 200)
        for method in ("GET", "DELETE"):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request(method, "/")
            self.assertEqual(conn.getresponse().status, 405)
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", "/healthz")
        self.assertEqual(json.loads(conn.getresponse().read())["bottle"], "web-1")
        conn.close()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\r\n{}")
            self.assertIn(b" 411 ", raw.recv(4096).split(b"\r\n")[0] + b" ")

    def test_oversized_body_gets_413_before_it_is_read(self) -> None:
        """A declared body over the limit is answered 413 while the client has sent only the headers."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode())
            status_line = raw.recv(4096).split(b"\r\n")[0]
        self.assertIn(b"413", status_line)


class ToolCallTest(ServerTestCase):
    def test_filing_waits_for_the_decision_and_archives_it(self) -> None:
        """egress-allow waits, answers {status, notes, proposal_id}, and the decision is archived afterwards."""
        self.decide_when_filed(STATUS_APPROVED, "go ahead")
        status, body = self.call("egress-allow", {"host": "Docs.Python.org", "paths": ["/3/"], "justification": "docs"})
        assert body is not None
        self.assertEqual(status, 200)
        result = body["result"]
        self.assertFalse(result["isError"])
        answer = result["structuredContent"]
        self.assertEqual((answer["status"], answer["notes"]), (STATUS_APPROVED, "go ahead"))
        self.assertEqual(json.loads(result["content"][0]["text"]), answer)
        proposal = self.store.get(answer["proposal_id"])
        self.assertEqual(json.loads(proposal.payload), {"host": "docs.python.org", "paths": ["/3/"]})
        wait_until(lambda: self.store.get(proposal.id).archived_at, 5, 0.01, "archiving after the answer went out")

    def test_modified_answer_carries_the_final_file(self) -> None:
        """egress-block modified by the operator returns the final file; the current routes file is diffed."""
        (self.tmp / "routes.yaml").write_text("routes: [a.com]\n")
        self.decide_when_filed(STATUS_MODIFIED, "narrowed", "routes: [a.com, c.com]\n")
        _, body = self.call("egress-block", {"routes_file": "routes: [a.com, b.com]\n", "justification": "b"})
        assert body is not None
        answer = body["result"]["structuredContent"]
        self.assertEqual(answer["status"], STATUS_MODIFIED)
        self.assertEqual(answer["final_file"], "routes: [a.com, c.com]\n")
        self.assertEqual(self.store.get(answer["proposal_id"]).current_file, "routes: [a.com]\n")

    def test_rejection_is_a_normal_result(self) -> None:
        """A rejection comes back as a result with the reason, not as an error."""
        self.decide_when_filed(STATUS_REJECTED, "not this host")
        _, body = self.call("egress-allow", {"host": "x.example", "justification": "x"})
        assert body is not None
        self.assertFalse(body["result"]["isError"])
        self.assertEqual(body["result"]["structuredContent"]["notes"], "not this host")


class TimeoutTest(ServerTestCase):
    wait_seconds = 0.3

    def test_timeout_is_pending_then_check_proposal_answers(self) -> None:
        """Past the wait bound: a non-error 'pending' result; check-proposal later returns the decision."""
        _, body = self.call("egress-block", {"routes_file": "r: 1\n", "justification": "j"})
        assert body is not None
        answer = body["result"]["structuredContent"]
        self.assertFalse(body["result"]["isError"])
        self.assertEqual(answer["status"], "pending")
        self.assertIn("check-proposal", answer["message"])
        proposal_id = answer["proposal_id"]
        self.assertEqual([p.id for p in self.store.pending()], [proposal_id], "still in the queue")
        _, again = self.call("check-proposal", {"proposal_id": proposal_id})
        assert again is not None
        self.assertEqual(again["result"]["structuredContent"]["status"], "pending")
        decide(proposal_id, STATUS_APPROVED, "ok", store=self.store)
        _, checked = self.call("check-proposal", {"proposal_id": proposal_id})
        assert checked is not None
        self.assertEqual(checked["result"]["structuredContent"]["status"], STATUS_APPROVED)
        # Filed again after the answer was archived: a new proposal, not the old answer.
        time.sleep(0.2)
        _, refiled = self.call("egress-block", {"routes_file": "r: 1\n", "justification": "j"})
        assert refiled is not None
        self.assertNotEqual(refiled["result"]["structuredContent"]["proposal_id"], proposal_id)

    def test_another_bottles_proposal_is_unknown(self) -> None:
        """check-proposal cannot reach a proposal of another bottle."""
        other = self.store.submit("web-2", TOOL_EGRESS_BLOCK, "r", "j")
        _, body = self.call("check-proposal", {"proposal_id": other.id})
        assert body is not None
        self.assertTrue(body["result"]["isError"])
        self.assertIn("no proposal", body["result"]["content"][0]["text"])


class QuotaTest(ServerTestCase):
    wait_seconds = 0.05
    quota = Quota(max_pending=2, max_pending_bytes=4096)

    def test_a_bottle_over_its_quota_gets_a_tool_error_saying_so(self) -> None:
        """Past max_pending (or max_pending_bytes) a filing is an isError result naming the limit; nothing is filed."""
        for index in range(2):
            _, body = self.call("egress-allow", {"host": f"h{index}.example", "justification": "j"})
            assert body is not None
            self.assertEqual(body["result"]["structuredContent"]["status"], "pending")
        _, body = self.call("egress-allow", {"host": "one-more.example", "justification": "j"})
        assert body is not None
        self.assertTrue(body["result"]["isError"])
        self.assertIn("already has 2 proposals waiting for the operator", body["result"]["content"][0]["text"])
        self.assertEqual(len(self.store.pending("web-1")), 2)
        _, again = self.call("egress-allow", {"host": "h0.example", "justification": "j"})
        assert again is not None
        self.assertFalse(again["result"]["isError"], "the same request again is not a new proposal")
        decide(self.store.pending("web-1")[0].id, STATUS_REJECTED, "no", store=self.store)
        _, big = self.call("egress-block", {"routes_file": "r" * 5000, "justification": "j"})
        assert big is not None
        self.assertTrue(big["result"]["isError"])
        self.assertIn("over the limit of 4096 bytes pending", big["result"]["content"][0]["text"])
        _, fits = self.call("egress-block", {"routes_file": "r: 1\n", "justification": "j"})
        assert fits is not None
        self.assertFalse(fits["result"]["isError"])
        self.assertEqual(len(self.store.pending("web-1")), 2)


class RobustnessTest(ServerTestCase):
    wait_seconds = 0.2

    def test_a_port_in_use_is_an_os_error(self) -> None:
        """Binding where another server listens raises OSError (what the CLI reports), nothing else."""
        service = SuperviseService(self.store.for_bottle("web-1"))
        with self.assertRaises(OSError):
            SuperviseHTTPServer(("127.0.0.1", self.port), service)

    def test_fuzzed_requests_then_a_normal_call(self) -> None:
        """A bounded loop of malformed requests and stalled clients; the server answers each, then still works."""
        rng = random.Random(1234)
        valid = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                            "params": {"name": "egress-allow", "arguments": {"host": "a.b", "justification": "j"}}})
        deadline = time.monotonic() + 20
        sent = 0
        # A stalled client that stays for its 408 waits out the server's 1 s request deadline: each waits in a
        # thread of its own while the loop goes on (the server holds it meanwhile); the answers are checked last.
        stalled: list[tuple[threading.Thread, list[bytes]]] = []
        while sent < 300 and time.monotonic() < deadline:
            sent += 1
            kind = rng.randrange(6)
            if kind == 0:
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            elif kind == 1:
                body = valid[: rng.randrange(len(valid))].encode()
            elif kind == 2:
                mutated = list(valid)
                for _ in range(3):
                    mutated[rng.randrange(len(mutated))] = chr(rng.randrange(32, 127))
                body = "".join(mutated).encode()
            elif kind == 3:
                value = rng.choice([None, 1, -1, 1.5, [], {}, "x" * 1000, True])
                body = json.dumps({"jsonrpc": "2.0", "id": rng.choice([1, "a", None]), "method": "tools/call",
                                   "params": {"name": rng.choice(["egress-allow", "egress-block", "check-proposal"]),
                                              "arguments": {"host": value, "justification": value,
                                                            "routes_file": value, "proposal_id": value}}}).encode()
            elif kind == 4:
                body = json.dumps(rng.choice([None, 1, "s", [], {"jsonrpc": "1.0"}])).encode()
            else:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                raw.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n")  # then stall
                if rng.random() < 0.1:
                    first_line: list[bytes] = []
                    waiter = threading.Thread(target=_first_line, args=(raw, first_line))
                    waiter.start()
                    stalled.append((waiter, first_line))
                else:
                    raw.close()
                continue
            status, answer = self.post(body)
            self.assertIn(status, (200, 202, 400), body[:80])
            if answer is not None and "error" in answer:
                self.assertIn(answer["error"]["code"], (-32700, -32600, -32601, -32602))
                self.assertNotIn("Traceback", answer["error"]["message"])
        for waiter, first_line in stalled:
            waiter.join(10)
            self.assertIn(b" 408 ", b"".join(first_line) + b" ",
                          "a stalled client is answered 408 at the deadline, then dropped")
        _, body_ok = self.post({"jsonrpc": "2.0", "id": 99, "method": "ping"})
        self.assertEqual(body_ok, {"jsonrpc": "2.0", "id": 99, "result": {}})
        self.assertFalse([line for line in self.logged if "internal error" in line], self.logged)


def _first_line(raw: socket.socket, into: list[bytes]) -> None:
    """The first line the server sends on ``raw`` (within 5 s), into ``into``; the socket is closed after."""
    with raw:
        raw.settimeout(5)
        into.append(raw.recv(4096).split(b"\r\n")[0])


class ConcurrencyTest(ServerTestCase):
    wait_seconds = 30

    def test_fifty_waiting_calls_get_their_own_decisions(self) -> None:
        """50 tool calls waiting at once are each answered with the decision made for them."""
        count = 50
        answers: dict[int, dict[str, Any]] = {}

        def agent(index: int) -> None:
            _, body = self.call("egress-allow", {"host": f"h{index}.example", "justification": f"j{index}"}, index)
            assert body is not None
            answers[index] = body["result"]["structuredContent"]

        agents = [threading.Thread(target=agent, args=(i,)) for i in range(count)]
        for thread in agents:
            thread.start()
        decided = 0
        deadline = time.monotonic() + 60
        while decided < count and time.monotonic() < deadline:
            for proposal in self.store.pending("web-1"):
                host = json.loads(proposal.payload)["host"]
                number = int(host[1:].split(".")[0])
                status = STATUS_REJECTED if number % 2 else STATUS_APPROVED
                decide(proposal.id, status, f"for {host}", store=self.store)
                decided += 1
            time.sleep(0.01)
        for thread in agents:
            thread.join(60)
        self.assertEqual(len(answers), count)
        for index, answer in answers.items():
            self.assertEqual(answer["notes"], f"for h{index}.example")
            self.assertEqual(answer["status"], STATUS_REJECTED if index % 2 else STATUS_APPROVED)


class WaitBoundTest(TempDirTest):
    def test_argument_then_environment_then_default(self) -> None:
        """--wait-seconds wins, then $BOT_BOTTLE_SUPERVISE_WAIT_SECONDS, then 30 s; nonsense is refused."""
        self.assertEqual(wait_seconds_from(None, {}), 30.0)
        self.assertEqual(wait_seconds_from(None, {"BOT_BOTTLE_SUPERVISE_WAIT_SECONDS": "12.5"}), 12.5)
        self.assertEqual(wait_seconds_from(4.0, {"BOT_BOTTLE_SUPERVISE_WAIT_SECONDS": "12.5"}), 4.0)
        for bad in ("soon", "-1", "1e9", "nan"):
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                wait_seconds_from(None, {"BOT_BOTTLE_SUPERVISE_WAIT_SECONDS": bad})

    def test_route_payload(self) -> None:
        """One route is a stable JSON document; host lower-cased, paths sorted and unique."""
        self.assertEqual(json.loads(route_payload("A.Example", ["/b", "/a", "/a"])),
                         {"host": "a.example", "paths": ["/a", "/b"]})
        self.assertEqual(route_payload("x.io", None), route_payload("x.io", []))


class ProcessTest(TempDirTest):
    def start_server(self, *extra: str) -> tuple[subprocess.Popen[str], str]:
        server, url = spawn("agent-1", self.tmp / "p.db", *extra, stderr=subprocess.PIPE)
        self.addCleanup(self._stop, server)
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/$")
        return server, url

    @staticmethod
    def _stop(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=10)

    def test_bad_arguments(self) -> None:
        """A bad slug or wait bound is a usage error (exit 2) with one line on stderr."""
        for argv in (["--bottle", "../x"], ["--bottle", "ok", "--wait-seconds", "-3"]):
            result = subprocess.run([sys.executable, "-m", "bot_bottle.supervise_server", *argv, "--db",
                                     str(self.tmp / "x.db")], cwd=REPO, capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1)

    def test_without_its_mount_the_sidecar_refuses_to_start(self) -> None:
        """No --db or --relay, and neither the database nor a relay file at /run/supervise: exit 1 with one line,
        never listening, nothing created."""
        real = Path(DB_PATH_IN_CONTAINER)
        if real.exists():
            self.skipTest(f"{real} exists on this machine (a real sidecar?); not touching it")
        result = subprocess.run([sys.executable, "-m", "bot_bottle.supervise_server", "--bottle", "web-1",
                                 "--host", "127.0.0.1", "--port", "0"], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual(result.returncode, 1, result.stderr)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn(f"neither the host's database ({DB_PATH_IN_CONTAINER}) nor a relay file "
                      f"({RELAY_FILE_IN_CONTAINER}) is at /run/supervise", lines[0])
        self.assertEqual(result.stdout, "", "it never listened")
        self.assertFalse(real.exists(), "and created nothing")

    def test_the_mount_decides_in_a_real_mount_namespace(self) -> None:
        """In a private mount namespace: no file, then a file not on a mount, refused (server and git-gate,
        at once); the host's database bind-mounted at /run/supervise, accepted."""
        host_db = self.tmp / "host-db"
        open_db(host_db / "bot-bottle.db").close()
        old_db = self.tmp / "old-host-db"  # the host's database at an older schema than the sidecar's
        conn = open_db(old_db / "bot-bottle.db")
        migrate.downgrade(conn, 3, backup=False)
        conn.close()
        start = ("from bot_bottle.sidecar import server as s; "
                 "server, store = s.start(s.build_parser().parse_args(['--bottle', 'web-1', '--host', '127.0.0.1', "
                 "'--port', '0']), print); print('started'); server.server_close(); store.close()")
        script = f"""
            mount -t tmpfs tmpfs /run || exit 90
            mkdir /run/supervise
            "$PY" -m bot_bottle.supervise_server --bottle web-1 --host 127.0.0.1 --port 0; echo "no-file=$?"
            test -e /run/supervise/bot-bottle.db && echo created
            : > /run/supervise/bot-bottle.db
            "$PY" -m bot_bottle.supervise_server --bottle web-1 --host 127.0.0.1 --port 0; echo "no-mount=$?"
            echo "{'0' * 40} {'1' * 40} refs/heads/main" | "$PY" -m bot_bottle.git_gate pre-receive --bottle web-1
            echo "git-gate=$?"
            mount --bind "$HOSTDB" /run/supervise || exit 91
            "$PY" -c "$START"; echo "mounted=$?"
            umount /run/supervise && mount --bind "$OLDDB" /run/supervise || exit 91
            "$PY" -m bot_bottle.supervise_server --bottle web-1 --host 127.0.0.1 --port 0; echo "old-schema=$?"
        """
        result = in_mount_namespace(self, script, {"HOSTDB": str(host_db), "START": start,
                                                   "OLDDB": str(old_db)})
        out = result.stdout.splitlines()
        self.assertIn("no-file=1", out, result.stderr)
        self.assertNotIn("created", out)
        self.assertIn("no-mount=1", out, result.stderr)
        self.assertIn("git-gate=1", out, result.stderr)
        self.assertIn("started", out, result.stderr)
        self.assertIn("mounted=0", out, result.stderr)
        self.assertIn("old-schema=1", out, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertEqual(len(errors), 4, result.stderr)
        self.assertIn("schema version 3 but this sidecar needs", errors[3])
        check = connect(old_db / "bot-bottle.db")
        self.addCleanup(check.close)
        self.assertEqual(migrate.current_version(check), 3, "the sidecar never migrates the host's database")
        self.assertIn("neither the host's database", errors[0])
        self.assertIn("is not on a mount of its own", errors[1])
        self.assertTrue(errors[2].startswith("git-gate: push refused: /run/supervise/bot-bottle.db is not on a mount"),
                        errors[2])

    def test_sigterm_stops_it_cleanly(self) -> None:
        """The server prints its address when ready and exits 0 on SIGTERM."""
        server, _ = self.start_server()
        server.terminate()
        _, errors = server.communicate(timeout=10)
        self.assertEqual(server.returncode, 0)
        self.assertNotIn("Traceback", errors)

    def test_official_mcp_client(self) -> None:
        """The mcp SDK's client: initialize, list tools, a call approved meanwhile, a pending one checked later."""
        python = mcp_python()
        if python is None:
            message = "the official MCP client (pip install mcp==2.3.0) is not installed; set BOT_BOTTLE_MCP_PYTHON"
            if in_ci():
                self.fail(message)
            self.skipTest(message)
        _, url = self.start_server("--wait-seconds", "3")
        client = subprocess.Popen([python, str(REPO / "tests" / "helpers" / "mcp_client.py"), url],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: client.poll() is None and client.kill())
        assert client.stdout is not None and client.stdin is not None
        events: dict[str, dict[str, Any]] = {}
        with QueueStore(self.tmp / "p.db") as store:
            while "second" not in events:
                line = client.stdout.readline()
                if not line:
                    self.fail(f"the MCP client stopped: {client.communicate()[1][-2000:]}")
                event = json.loads(line)
                events[event["event"]] = event
                if event["event"] == "tools":
                    threading.Thread(target=self._approve_first, args=(store,), daemon=True).start()
            self.assertEqual(events["first"]["result"]["status"], STATUS_APPROVED)
            self.assertEqual(events["second"]["result"]["status"], "pending")
            decide(events["second"]["result"]["proposal_id"], STATUS_REJECTED, "too late", store=store)
            client.stdin.write("go\n")
            client.stdin.flush()
            checked = json.loads(client.stdout.readline())
        client.communicate(timeout=30)
        self.assertEqual(events["initialized"]["server"], "bot-bottle-supervise")
        self.assertEqual(set(events["tools"]["names"]), {"egress-block", "egress-allow", "check-proposal"})
        self.assertEqual((checked["event"], checked["result"]["status"], checked["result"]["notes"]),
                         ("checked", STATUS_REJECTED, "too late"))
        self.assertFalse(checked["error"])

    @staticmethod
    def _approve_first(store: QueueStore) -> None:
        def filed() -> list[Proposal]:
            return [p for p in store.pending("agent-1") if "approve.example" in p.payload]
        decide(wait_until(filed, 20, 0.02, "the agent's filing")[0].id, STATUS_APPROVED, "fine", store=store)


class HelpTest(TempDirTest):
    def test_routes_file_says_what_the_screens_read_against(self) -> None:
        """BROKE before the fix: '--routes-file' said 'diffed against egress-block proposals', but the operator's
        screens read a proposal against the last routes file the host approved for the bottle (the sidecar's file
        is its word alone), and mark it drifted where the sidecar's is another."""
        text = " ".join(build_parser().format_help().split())
        self.assertNotIn("diffed against egress-block proposals", text)
        self.assertIn("the last routes file the host approved for the bottle", text)
