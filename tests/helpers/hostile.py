"""A hostile agent against the supervise server, over raw sockets: fuzz cases, slow clients, floods, load.

Shared by tests/attacks/test_sidecar_server.py (bounded runs that assert behaviour)
and bench/hostile.py (longer runs that print figures for docs/benchmarks.md).
Nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bot_bottle.sidecar.launcher import spawn

REPO = Path(__file__).resolve().parent.parent.parent
_STATUS_RE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9]{2}) [^\r\n]*")
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def request(body: bytes | dict[str, object] = PING, *, host: str | None = "localhost", method: str = "POST",
            headers: dict[str, str] | None = None, length: str | None = None) -> bytes:
    """A raw HTTP/1.1 request; ``length`` overrides the Content-Length header's text, ``host=None`` omits Host."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"{method} / HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(data) if length is None else length}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    head = "\r\n".join(lines)
    try:
        encoded = head.encode("latin-1")  # how HTTP reads header bytes: '²' is the one byte 0xb2
    except UnicodeEncodeError:
        encoded = head.encode("utf-8")
    return encoded + b"\r\n\r\n" + data


def tool_call(name: str, arguments: dict[str, object], request_id: int = 1) -> dict[str, object]:
    """A tools/call JSON-RPC message."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


@dataclass
class Answer:
    """One HTTP response as read off the wire: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body parsed as JSON."""
        return json.loads(self.body)


def parse_answer(raw: bytes) -> Answer | None:
    """The first final response in ``raw`` if it is a complete, well-formed HTTP/1.1 response with a Content-Length.

    Interim ``100 Continue`` responses before it are skipped.
    """
    while raw.startswith(b"HTTP/1.1 100 "):
        _, _, raw = raw.partition(b"\r\n\r\n")
    head, separator, rest = raw.partition(b"\r\n\r\n")
    if not separator:
        return None
    lines = head.split(b"\r\n")
    status = _STATUS_RE.fullmatch(lines[0])
    if status is None:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None
        headers[name.decode("ascii").lower()] = value.strip().decode("latin-1")
    length = headers.get("content-length", "")
    if not length.isascii() or not length.isdigit() or len(rest) < int(length):
        return None
    body = rest[: int(length)]
    if body and headers.get("content-type") == "application/json":
        try:
            json.loads(body)
        except ValueError:
            return None
    return Answer(int(status.group(1)), headers, body)


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 30.0) -> tuple[Answer | None, bytes]:
    """Send ``data`` on a new connection, then read until the server closes it (or ``timeout``).

    ``half_close`` shuts our side after sending, as a client with nothing more
    to say does, so a truncated request is seen as such at once. Returns the
    first response parsed (None when there was none, or it was malformed) and
    everything read.
    """
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading everything: read its answer
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            received += chunk
    return parse_answer(bytes(received)), bytes(received)


def fuzz_cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """An endless stream of (class, request bytes): the malformed requests a hostile agent can send."""
    valid = tool_call("egress-allow", {"host": "a.example", "justification": "j"})
    valid_text = json.dumps(valid)
    lengths = ["²", "1³", "9" * 4301, "9" * 11, "-1", "+5", "0x10", "1e3", "", " ", "5 5", "٣", "1.0",
               "18446744073709551616", "\t7\t"]
    hosts = ["[", "[::1", "[::1]x", "[::1]:", "[zz]", "evil.example", "evil.example:9100", "localhost:abc",
             "localhost:99999", "", "loc alhost", "ÿ", "localhost:", "localhost.", "127.0.0.1.evil.example",
             "supervise@evil.example", "http://localhost", "*"]
    origins = ["http://[::1", "null", "http://evil.example", "file://localhost", "http://", "localhost",
               "http://localhost:3000/x", "javascript://localhost", "http://evil.example:9100", "://localhost",
               "http://[::1]:99999"]
    while True:
        kind = rng.randrange(12)
        if kind == 0:
            yield "content-length", request(b"{}", length=rng.choice(lengths))
        elif kind == 1:
            yield "content-length", request(b"{}", headers={"Content-Length": "2"})
        elif kind == 2:
            depth = rng.choice([33, 1000, 100_000, 1_000_000])
            opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
            inner = opener * depth + "1" + closer * depth if opener != "[" else "[" * depth + "]" * depth
            yield "json-depth", request(inner.encode())
        elif kind == 3:
            yield "host", request(host=rng.choice([*hosts, None]))
        elif kind == 4:
            yield "host", request(headers={"Host": "localhost"})
        elif kind == 5:
            yield "origin", request(headers={"Origin": rng.choice(origins)})
        elif kind == 6:
            yield "request-line", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif kind == 7:
            yield "request-line", rng.choice([
                b"\r\n" * 20, b"GET /\r\n\r\n", b"POST / HTTP/2.0\r\nHost: localhost\r\n\r\n",
                b"BREW / HTTP/1.1\r\nHost: localhost\r\n\r\n", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
                b"POST / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
                b"POST / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
                "PÖST / HTTP/1.1\r\nHost: localhost\r\n\r\n".encode(), b"   \r\n",
                b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
                b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/json"
                b"\r\nContent-Length: 2\r\n\r\n{}",
            ])
        elif kind == 8:
            yield "body", request(rng.choice([b"\xff\xfe{}", b"{\"a\": \xc3}", b"\x00" * 50, b""]))
        elif kind == 9:
            yield "body", request(b"{}", length="100")  # ends early (we half-close)
        elif kind == 10:
            mutated = list(valid_text)
            for _ in range(rng.randrange(1, 6)):
                code = rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x3000)])
                mutated[rng.randrange(len(mutated))] = chr(code)
            yield "mutated", request("".join(mutated).encode())
        else:
            value = rng.choice([None, 1, -1, 1.5, [], {}, "x" * 1000, True, "\x00", "é" * 100, [[[[]]]]])
            yield "arguments", request(tool_call(rng.choice(["egress-allow", "egress-block", "check-proposal"]),
                                                 {"host": value, "justification": value, "routes_file": value,
                                                  "proposal_id": value, "paths": value}))


@dataclass
class FuzzReport:
    """What a fuzz run saw: requests per class, the unanswered ones, statuses, and the server's peaks."""

    sent: dict[str, int] = field(default_factory=dict)
    unanswered: list[tuple[str, bytes]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    tracebacks: int = 0


def fuzz(port: int, count: int, seed: int = 1234, deadline: float | None = None,
         transform: Callable[[bytes], bytes] | None = None) -> FuzzReport:
    """Send up to ``count`` fuzz cases, one connection each; every one must get a well-formed answer.

    ``transform`` rewrites each case before it is sent (adding a credential, say).
    """
    rng = random.Random(seed)
    report = FuzzReport()
    for sent, (kind, data) in enumerate(fuzz_cases(rng)):
        if sent >= count or (deadline is not None and time.monotonic() > deadline):
            break
        if transform is not None:
            data = transform(data)
        report.sent[kind] = report.sent.get(kind, 0) + 1
        answer, raw = exchange(port, data)
        if answer is None:
            report.unanswered.append((kind, data[:200]))
            continue
        report.statuses[answer.status] = report.statuses.get(answer.status, 0) + 1
        if b"Traceback" in raw:
            report.tracebacks += 1
    return report


def concurrent_exchanges(port: int, requests: list[bytes], timeout: float, *,
                         send_on_connect: bool = False) -> list[bytes]:
    """Send every request on its own connection at once, from one thread; return what each connection read.

    By default every connection is opened before any request is sent, as a
    flood would: a server may cut those that sent nothing for a while (a
    loaded machine makes the while long). ``send_on_connect`` sends each
    request as soon as its connection is up, as an honest client does, so
    that none of them is ever an idle connection.
    """
    selector = selectors.DefaultSelector()
    received = [bytearray() for _ in requests]
    pending: dict[int, memoryview] = {}
    for index, data in enumerate(requests):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if send_on_connect:
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
            continue
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        pending[index] = memoryview(data)
        selector.register(sock, selectors.EVENT_WRITE, index)
    deadline = time.monotonic() + timeout
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=0.5):
            sock, index = key.fileobj, key.data
            assert isinstance(sock, socket.socket)
            try:
                if events & selectors.EVENT_WRITE:
                    sent = sock.send(pending[index])
                    pending[index] = pending[index][sent:]
                    if not pending[index]:
                        sock.shutdown(socket.SHUT_WR)
                        selector.modify(sock, selectors.EVENT_READ, index)
                    continue
                chunk = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
                if events & selectors.EVENT_WRITE:
                    # Refused before we finished sending: read what the server answered.
                    selector.modify(sock, selectors.EVENT_READ, index)
                    continue
            if chunk:
                received[index] += chunk
            else:
                selector.unregister(sock)
                sock.close()
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return [bytes(r) for r in received]


def trickle(port: int, data: bytes, pace: float = 0.2) -> tuple[int, bytes]:
    """Send ``data`` one byte every ``pace`` seconds until the server answers; bytes sent, and the whole answer."""
    sent, reply = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(pace)
        while sent < len(data):
            try:
                sock.send(data[sent : sent + 1])
            except OSError:
                break
            sent += 1
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            break
        # The answer may come in more than one segment (headers, then the body): read to its end.
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(4096):
                reply += chunk
    return sent, reply


def stall_bodies(port: int, head: bytes | Callable[[], bytes], clients: int, sent_bytes: int) -> list[int]:
    """``clients`` connections send ``head`` (declaring a body; a callable gives each its own), ``sent_bytes``
    of the body, then stall.

    Returns each one's answer status (0 for none), once the server has
    answered or dropped every one of them.
    """
    socks = []
    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(head() if callable(head) else head)
        socks.append(sock)
    statuses: list[int] = []

    def send(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b"x" * sent_bytes)  # then send nothing more

    def stall(sock: socket.socket) -> None:
        # Reading while the body goes out: an answer given before the body is read (a refusal) is read as it
        # comes. A client that read only once its megabyte was out lost it on a loaded machine when the
        # server's drain of the refused connection (http_bounds.Lingerer, 2 s) ended first and reset it.
        received = bytearray()
        sock.settimeout(20)
        sender = threading.Thread(target=send, args=(sock,))
        sender.start()
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
        sender.join(30)
        answer = parse_answer(bytes(received))
        statuses.append(answer.status if answer else 0)
        sock.close()

    threads = [threading.Thread(target=stall, args=(sock,)) for sock in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def proc_status(pid: int) -> dict[str, int]:
    """Threads, VmRSS and VmHWM (kB) of a process, from /proc; {} where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("Threads", "VmRSS", "VmHWM"):
            values[name] = int(value.split()[0])
    return values


class Sampler:
    """Samples a process's threads and RSS in the background; ``peak`` holds the highest of each."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, value in proc_status(self.pid).items():
                self.peak[name] = max(value, self.peak.get(name, 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_server(db: Path, *options: str, bottle: str = "web-1",
                 stderr: IO[str] | None = None) -> tuple[subprocess.Popen[str], int]:
    """The supervise server as its own process on a free loopback port (``server_launcher.spawn``); it and its port."""
    server, url = spawn(bottle, db, *options, stderr=stderr if stderr is not None else subprocess.DEVNULL)
    return server, int(url.rstrip("/").rsplit(":", 1)[1])


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
