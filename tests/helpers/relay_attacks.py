"""One hostile bottle (or a client without a token) against the relay, while an honest bottle goes about its work.

Shared by tests/attacks/test_relay_fairness.py (bounded runs that assert B
is served) and bench/relay_fairness.py (the figures in docs/benchmarks.md).

Each attack runs in a process of its own (``python -m
tests.helpers.relay_attacks KIND PORT RELAY_FILE``), prints ``ready`` once
it is in force and keeps it in force until killed, so it competes with the
relay for the machine as a hostile VM would. ``Honest`` is bottle B: a real
sidecar process filing through the relay, an operator in a thread who
approves B's proposals as soon as they show, and the agent's tool call timed
from its start to its answer.
"""

from __future__ import annotations

import contextlib
import json
import resource
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bot_bottle.decisions import decide
from bot_bottle.errors import BotBottleError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RelayEndpoint, read_endpoint_file
from bot_bottle.wire.signing import sign_request
from tests.helpers.hostile import parse_answer, request, tool_call
from tests.helpers.support import REPO

MiB = 1024 * 1024
KINDS = ("stall-bodies", "trickle", "flood-writes", "hold-waits", "flood-connections", "flood-reads",
         "unread-answers", "flood-forged")
READY_TIMEOUT_SEC = 30.0


def relay_message(method: str, params: dict[str, Any], request_id: int = 1) -> dict[str, Any]:
    """A relay JSON-RPC message."""
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def signed(endpoint: RelayEndpoint, body: bytes, *, length: int | None = None, nonce: str | None = None,
           keep_alive: bool = False) -> bytes:
    """A raw relay request with ``body``, signed with ``endpoint``'s key (and ``nonce``, when given); it asks
    for the connection to be closed after it unless ``keep_alive``."""
    authorization, _ = sign_request(endpoint, body, nonce=nonce)
    headers = {"Authorization": authorization} if keep_alive else {"Authorization": authorization,
                                                                   "Connection": "close"}
    return request(body, host="127.0.0.1", headers=headers, length=None if length is None else str(length))


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


# The attacks, each in its own process --------------------------------------------


def stall_bodies(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """200 signed requests declaring 4 MiB bodies, 1 KiB sent, then nothing; each reopened when it is answered."""
    def one() -> socket.socket:
        # The signature covers a body that never comes: it only has to pass the header check.
        sock = _connect(port)
        sock.sendall(signed(endpoint, b"x" * 1024, length=4 * MiB))
        return sock

    _hold(one, 200, ready)


def trickle(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """300 signed requests with small bodies sent a byte a second: each holds a place in flight for long."""
    body = json.dumps(relay_message("hello", {})).encode()

    def one() -> socket.socket:
        sock = _connect(port)
        whole = signed(endpoint, body)
        sock.sendall(whole[: -len(body)])  # the headers; the body follows a byte at a time
        sock.setblocking(False)
        return sock

    socks = [one() for _ in range(300)]
    ready()
    while True:
        for index, sock in enumerate(socks):
            try:
                if sock.recv(65536) == b"":
                    raise OSError("closed")
                raise OSError("answered")  # refused (busy): make another
            except BlockingIOError:
                try:
                    sock.send(b" ")  # JSON allows leading white space; the signature's body differs, never read
                except OSError:
                    socks[index] = _reopen(sock, one)
            except OSError:
                socks[index] = _reopen(sock, one)
        time.sleep(1.0)


def flood_writes(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """Four threads sending 'stopped' and filings as fast as they can, each freshly signed."""
    def run(number: int) -> None:
        count = 0
        while True:
            count += 1
            message = relay_message("stopped", {}) if count % 2 else relay_message("submit", {
                "tool": TOOL_EGRESS_ALLOW, "payload": json.dumps({"host": f"flood-{number}-{count}.example"}),
                "justification": "flood"})
            with contextlib.suppress(OSError), _connect(port) as sock:
                sock.sendall(signed(endpoint, json.dumps(message).encode()))
                sock.settimeout(10)
                while sock.recv(65536):
                    pass

    for number in range(4):
        threading.Thread(target=run, args=(number,), daemon=True).start()
    ready()
    threading.Event().wait()


def hold_waits(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """A pending proposal of A's, and 100 long polls on it at once, each reopened when it ends."""
    held = RelayQueue(endpoint).submit(TOOL_EGRESS_ALLOW, '{"host": "held.example"}', "hold")
    body = json.dumps(relay_message("wait", {"id": held.id, "timeout": 25})).encode()

    def run() -> None:
        while True:
            with contextlib.suppress(OSError), _connect(port) as sock:
                sock.sendall(signed(endpoint, body))
                sock.settimeout(40)
                while sock.recv(65536):
                    pass
            time.sleep(0.01)

    for _ in range(100):
        threading.Thread(target=run, daemon=True).start()
    ready()
    threading.Event().wait()


def flood_connections(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """No token: connections opened as fast as possible and held idle, from the honest bottle's own address."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    keep = min(hard - 64, 4000)
    socks: list[socket.socket] = []
    announced = False
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            time.sleep(0.01)
            continue
        socks.append(sock)
        if len(socks) > keep:
            socks.pop(0).close()
        if not announced and len(socks) >= 500:
            announced = True
            ready()


def flood_reads(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """Reads, which write nothing and so spend no write share, as fast as eight threads can: each keeps one
    connection alive and pipelines 20 freshly signed requests at a time before reading their answers."""
    held = RelayQueue(endpoint).submit(TOOL_EGRESS_ALLOW, '{"host": "read.example"}', "read")
    messages = [relay_message("get", {"id": held.id}), relay_message("response", {"id": held.id}),
                relay_message("hello", {}), relay_message("grants", {"tool": TOOL_EGRESS_ALLOW})]

    def run() -> None:
        while True:
            with contextlib.suppress(OSError), _connect(port) as sock:
                while True:
                    batch = b"".join(signed(endpoint, json.dumps(messages[n % 4]).encode(), keep_alive=True)
                                     for n in range(20))
                    sock.sendall(batch)
                    answered = 0
                    while answered < 20:
                        chunk = sock.recv(1 << 20)
                        if not chunk:
                            raise OSError("closed")
                        answered += chunk.count(b"HTTP/1.1 ")

    for _ in range(8):
        threading.Thread(target=run, daemon=True).start()
    ready()
    threading.Event().wait()


def unread_answers(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """A proposal whose answer is 4 MiB, asked for on 100 connections that never read their answers (each
    reopened when the relay gives up on it)."""
    text = "\x01" * 330_000  # 2 MiB in JSON each, payload and current file: one request within 4 MiB
    held = RelayQueue(endpoint).submit(TOOL_GITLEAKS_ALLOW, text, "big", text)
    body = json.dumps(relay_message("get", {"id": held.id})).encode()

    def one() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a window the answer never fits
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(signed(endpoint, body))
        return sock

    socks = [one() for _ in range(100)]
    ready()
    threading.Event().wait()  # the relay gives up on each after its 15 s write timeout; the test is done by then
    del socks


def flood_forged(port: int, endpoint: RelayEndpoint, ready: Callable[[], None]) -> None:
    """No token: whole requests in honest-b's name signed with a made-up key, each one (refused 401) followed
    by the next on a new connection, from eight threads as fast as they are answered. Each costs the relay a
    look-up of honest-b's credential and a MAC before it is refused."""
    forged = RelayEndpoint(url=endpoint.url, token=secrets.token_urlsafe(32), bottle="honest-b")
    body = json.dumps(relay_message("hello", {})).encode()

    def run() -> None:
        while True:
            with contextlib.suppress(OSError), _connect(port) as sock:
                sock.sendall(signed(forged, body))
                while sock.recv(65536):
                    pass

    for _ in range(8):
        threading.Thread(target=run, daemon=True).start()
    ready()
    threading.Event().wait()


def _hold(make: Callable[[], socket.socket], count: int, ready: Callable[[], None]) -> None:
    socks = [make() for _ in range(count)]
    for sock in socks:
        sock.setblocking(False)
    ready()
    while True:
        for index, sock in enumerate(socks):
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            del data  # answered (refused, or past its deadline) or closed: keep the pressure on
            socks[index] = _reopen(sock, make)
            socks[index].setblocking(False)
        time.sleep(0.2)


def _reopen(sock: socket.socket, make: Callable[[], socket.socket]) -> socket.socket:
    sock.close()
    while True:
        try:
            return make()
        except OSError:
            time.sleep(0.05)


ATTACKS: dict[str, Callable[[int, RelayEndpoint, Callable[[], None]], None]] = {
    "stall-bodies": stall_bodies, "trickle": trickle, "flood-writes": flood_writes, "hold-waits": hold_waits,
    "flood-connections": flood_connections, "flood-reads": flood_reads, "unread-answers": unread_answers,
    "flood-forged": flood_forged,
}


def start_attack(kind: str, port: int, relay_file: Path) -> subprocess.Popen[str]:
    """The attack ``kind`` in a process of its own, returned once it says it is in force."""
    process = subprocess.Popen([sys.executable, "-m", "tests.helpers.relay_attacks", kind, str(port),
                                str(relay_file)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_SEC)
    if not lines or lines[0].strip() != "ready":
        process.kill()
        process.communicate()
        raise AssertionError(f"the {kind} attack did not start (exit {process.returncode})")
    return process


def stop_attack(process: subprocess.Popen[str]) -> None:
    """Kill the attack's process (every socket it held closes with it); once, later calls do nothing."""
    if process.returncode is None:
        process.kill()
        process.communicate()


# The honest bottle ------------------------------------------------------------------


class Honest:
    """Bottle B: its real sidecar through the relay, and an operator approving its proposals as they show."""

    def __init__(self, db: Path, relay_file: Path, stderr: IO[str] | int = subprocess.DEVNULL) -> None:
        self.endpoint = read_endpoint_file(relay_file)
        self.sidecar, url = spawn(self.endpoint.bottle, None, "--wait-seconds", "30", relay_file=relay_file,
                                  stderr=stderr)
        self.port = int(url.rstrip("/").rsplit(":", 1)[1])
        self._store = QueueStore(db)
        self._stop = threading.Event()
        self._operator = threading.Thread(target=self._approve, daemon=True)
        self._operator.start()

    def _approve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(BotBottleError):
                for proposal in self._store.pending(self.endpoint.bottle):
                    with contextlib.suppress(BotBottleError):
                        decide(proposal.id, STATUS_APPROVED, "fine", store=self._store)
            self._stop.wait(0.01)

    def round_trip(self) -> tuple[bool, float]:
        """The agent asks for a new route and waits for the answer: whether it was approved, and how long."""
        host = f"b-{secrets.token_hex(4)}.example"
        message = tool_call(TOOL_EGRESS_ALLOW, {"host": host, "justification": "docs"})
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
                sock.sendall(request(message, host="127.0.0.1"))
                sock.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
        except OSError:
            return False, time.monotonic() - started
        elapsed = time.monotonic() - started
        answer = parse_answer(reply)
        if answer is None or answer.status != 200:
            return False, elapsed
        result = json.loads(answer.body).get("result", {})
        text = " ".join(part.get("text", "") for part in result.get("content", []))
        return (not result.get("isError") and "approved" in text), elapsed

    def close(self) -> None:
        """Stop the operator and the sidecar."""
        self._stop.set()
        self._operator.join(5)
        self._store.close()
        self.sidecar.terminate()
        try:
            self.sidecar.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.sidecar.kill()
            self.sidecar.communicate()


def main(argv: list[str]) -> int:
    """``KIND PORT RELAY_FILE``: run that attack with the relay file's credential until killed."""
    kind, port, relay_file = argv
    endpoint = read_endpoint_file(relay_file)

    def ready() -> None:
        print("ready", flush=True)

    ATTACKS[kind](int(port), endpoint, ready)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
