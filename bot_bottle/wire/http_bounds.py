"""What a hostile HTTP client meets before the supervise server reads a byte of its request's meaning.

The sidecar's only client is the agent, the party we do not trust. This
module holds the pieces that keep any sequence of bytes, at any pace, from
holding the server's threads or memory or reaching a handler as an exception:

- ``DeadlineReader``: the socket reader under each connection. One deadline
  covers a whole request (its headers and its body), however the bytes
  trickle in; the header block is bounded in bytes.
- ``Lingerer``: closes refused connections without a TCP reset. A socket
  closed with unread input resets the connection, and a reset can destroy
  the refusal the client has not read yet; one thread drains such sockets
  for a moment first.
- ``ByteBudget``: a counter of request-body bytes held in memory at once.
- Strict parsers: ``parse_content_length``, ``parse_authority`` (Host) and
  ``parse_origin``. What a JSON body may hold is ``wire.json_bounds``'s.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import re
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING

from bot_bottle.errors import DeadlineExceeded, HeadersTooLarge

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_CONTENT_LENGTH_DIGITS = 10
_DIGITS_RE = re.compile(f"[0-9]{{1,{MAX_CONTENT_LENGTH_DIGITS}}}")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")




class DeadlineReader(io.RawIOBase):
    """Reads a socket under one deadline per request, and a byte limit on the header block.

    ``start`` arms both for the next request; ``headers_done`` lifts the byte
    limit (the body is bounded by its Content-Length instead). Each read sets
    the socket's timeout to what is left of the deadline, so a client that
    sends one byte every few seconds is cut off at the deadline all the same.
    ``prefix`` is what was read from the socket before (``wire.parking``):
    it is read first, as if it came from the socket.
    """

    def __init__(self, sock: socket.socket, prefix: bytes = b"") -> None:
        super().__init__()
        self._sock = sock
        self._prefix = memoryview(prefix)
        self._deadline = float("inf")
        self._limit: int | None = None
        self.received = 0  # bytes of the current request so far

    def start(self, seconds: float, header_limit: int, deadline: float | None = None) -> None:
        """Arm the deadline (``seconds`` from now, or the monotonic ``deadline`` given) and the header byte
        limit for the next request."""
        self._deadline = time.monotonic() + seconds if deadline is None else deadline
        self._limit = header_limit
        self.received = 0

    def headers_done(self) -> None:
        """The header block was read whole: lift its byte limit."""
        self._limit = None

    def readable(self) -> bool:
        """Always: this is a reader."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read what the socket has, within the deadline and the header limit."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the request was not sent within its deadline")
        view = memoryview(buffer).cast("B")
        if self._limit is not None:
            room = self._limit - self.received
            if room <= 0:
                raise HeadersTooLarge(f"the request line and headers are over {self._limit} bytes")
            view = view[:room]
        if self._prefix:
            count = min(len(view), len(self._prefix))
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
            self.received += count
            return count
        self._sock.settimeout(remaining)
        try:
            count = self._sock.recv_into(view)
        except TimeoutError:
            raise DeadlineExceeded("the request was not sent within its deadline") from None
        self.received += count
        return count


class ByteBudget:
    """A thread-safe allowance of bytes: ``take`` without waiting, ``give`` back when done."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._used = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> bool:
        """Reserve ``amount`` bytes if they are free now; False (nothing reserved) if not."""
        with self._lock:
            if self._used + amount > self.total:
                return False
            self._used += amount
            return True

    def give(self, amount: int) -> None:
        """Return bytes reserved with ``take``."""
        with self._lock:
            self._used -= amount

    @property
    def used(self) -> int:
        """Bytes reserved now."""
        return self._used


class Lingerer:
    """Drains and closes refused connections in one thread, so the refusal is read, not reset.

    ``adopt`` takes ownership of a socket whose answer is written and whose
    write side is shut: its unread input is read and thrown away until the
    client closes or ``seconds`` pass. At most ``limit`` sockets linger;
    beyond that they are closed at once (bounded memory and descriptors
    under a flood, at the price of a possible reset).
    """

    def __init__(self, seconds: float = 2.0, limit: int = 256) -> None:
        self.seconds = seconds
        self.limit = limit
        self._lock = threading.Lock()
        self._incoming: list[socket.socket] = []
        self._count = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)

    @property
    def lingering(self) -> int:
        """How many sockets are being drained now."""
        return self._count

    def adopt(self, sock: socket.socket) -> None:
        """Drain ``sock`` for a moment, then close it (now, if too many linger or we are closed)."""
        with self._lock:
            if self._closed or self._count >= self.limit:
                sock.close()
                return
            self._count += 1
            self._incoming.append(sock)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="linger", daemon=True)
                self._thread.start()
        self._wake()

    def _wake(self) -> None:
        # Full: a wake-up is pending already; closed: we are stopping anyway.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ)
        deadlines: dict[socket.socket, float] = {}
        scratch = bytearray(65536)
        try:
            while True:
                with self._lock:
                    incoming, self._incoming = self._incoming, []
                    closed = self._closed
                for sock in incoming:
                    deadlines[sock] = time.monotonic() + self.seconds
                    try:
                        sock.setblocking(False)
                        selector.register(sock, selectors.EVENT_READ)
                    except (OSError, ValueError):
                        self._release(selector, deadlines, sock)
                if closed:
                    break
                timeout = max(0.0, min(deadlines.values()) - time.monotonic()) if deadlines else None
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_read:
                        try:
                            while self._wake_read.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                        continue
                    client = key.fileobj
                    if not isinstance(client, socket.socket):
                        continue
                    try:
                        more = client.recv_into(scratch)
                    except BlockingIOError:
                        continue
                    except OSError:
                        more = 0
                    if not more:
                        self._release(selector, deadlines, client)
                now = time.monotonic()
                for sock in [s for s, at in deadlines.items() if at <= now]:
                    self._release(selector, deadlines, sock)
        finally:
            for sock in list(deadlines):
                self._release(selector, deadlines, sock)
            selector.close()

    def _release(self, selector: selectors.BaseSelector, deadlines: dict[socket.socket, float],
                 sock: socket.socket) -> None:
        deadlines.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            selector.unregister(sock)
        sock.close()
        with self._lock:
            self._count -= 1

    def close(self) -> None:
        """Close every lingering socket and stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
            leftover, self._incoming = self._incoming, []
        for sock in leftover:
            sock.close()
            with self._lock:
                self._count -= 1
        self._wake()
        if thread is not None:
            thread.join(5)
        self._wake_read.close()
        self._wake_write.close()


def parse_content_length(values: list[str]) -> int | None:
    """The one Content-Length of a request; None when there is none.

    Strict: exactly one header, ASCII digits only (``²`` and ``1³`` pass
    ``str.isdigit`` and fail ``int``), at most 10 of them. ``ValueError``
    with a message for anything else.
    """
    if not values:
        return None
    if len(values) > 1:
        raise ValueError("more than one Content-Length header")
    text = values[0].strip(" \t")
    if not _DIGITS_RE.fullmatch(text):
        raise ValueError(f"Content-Length must be 1 to {MAX_CONTENT_LENGTH_DIGITS} ASCII digits")
    return int(text)


def parse_authority(value: str) -> str:
    """The host of a ``host[:port]`` authority (a Host header), lower-case; IPv6 without brackets.

    ``ValueError`` for anything that is not a host name, an IPv4 address or
    a bracketed IPv6 address, optionally followed by ``:port``.
    """
    text = value.strip(" \t")
    if not text or not text.isascii():
        raise ValueError("not a host name")
    port = ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("an IPv6 address without its closing ']'")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("not an IPv6 address") from None
        if rest:
            if not rest.startswith(":"):
                raise ValueError("text after the IPv6 address")
            port = rest[1:]
        host = host.lower()
    else:
        host, colon, port = text.partition(":")
        host = host.lower()
        if not _NAME_RE.fullmatch(host) or len(host) > 253:
            raise ValueError("not a host name")
        if colon and not port:
            raise ValueError("an empty port")
    if port and (not _PORT_RE.fullmatch(port) or int(port) > 65535):
        raise ValueError("not a port number")
    return host


def parse_origin(value: str) -> tuple[str, str] | None:
    """An Origin header's scheme and host; None for the opaque origin ``null``.

    ``ValueError`` when it is not ``scheme://host[:port]``.
    """
    text = value.strip(" \t")
    if text == "null":
        return None
    scheme, separator, authority = text.partition("://")
    if not separator or not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]{0,31}", scheme):
        raise ValueError("not scheme://host[:port]")
    return scheme.lower(), parse_authority(authority.removesuffix("/"))
