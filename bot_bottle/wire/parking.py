"""Connections waiting for their first request's headers, held by one thread instead of a thread each.

A connection that sends nothing costs a thread-per-connection server a
thread started, scheduled and ended; a client opening connections as fast as
it can then holds the server's CPU (and the interpreter's lock) and the
listen queue overflows, so an honest client's connection waits a second for
the kernel to retry it. The relay parks each new connection here instead
(``GuardedHTTPServer`` with ``park=True``): one thread reads, without
blocking, the bytes of every parked connection until its header block is in
(or 64 KiB, or the end of its input), and only then starts the connection's
handler thread, with what was read (``Connection.prefix``) and what is left
of its deadline, as soon as one of the pool's readers' places is free
(``ConnectionPool.try_read``): a flood of complete requests without a valid
signature holds no more handler threads than that. A parked connection that the pool cuts (``ConnectionPool``)
is answered why and closed here if it sent anything, and closed quietly if
it did not (so a flood of idle connections costs a close each); one past its
deadline is likewise answered 408, or closed quietly.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot_bottle.wire.connection_pool import EVICTION_GRACE_SEC, Connection

#: The end of a header block; a request's headers are in once it arrives.
HEADERS_END = b"\r\n\r\n"


@dataclass(eq=False)
class _Parked:
    connection: Connection
    address: tuple[str, int]
    deadline: float
    received: bytearray


class Parking:
    """One thread holding connections until their headers are in (see the module)."""

    def __init__(self, *, timeout: float, header_limit: int, ready: Callable[[Connection, tuple[str, int]], None],
                 answer: Callable[[Connection, int, str], None], forget: Callable[[Connection], None],
                 trim: Callable[[], object], try_read: Callable[[Connection], bool]) -> None:
        self.timeout = timeout
        self.header_limit = header_limit
        self._ready = ready  # start the connection's handler (its prefix and deadline are set)
        self._answer = answer  # write a refusal to a parked connection and let it go
        self._forget = forget  # close a parked connection without a word (it sent nothing)
        self._trim = trim  # cut the oldest waiting connections beyond the pool's caps (they are read first)
        self._try_read = try_read  # take a reader's place for a connection whose headers are in
        self._queued: list[_Parked] = []  # headers in, waiting for a reader's place (oldest first)
        self._lock = threading.Lock()
        self._incoming: list[_Parked] = []
        self._closed = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="parking", daemon=True)
        self._thread.start()

    def park(self, connection: Connection, address: tuple[str, int]) -> None:
        """Hold ``connection`` until its headers are in (its deadline runs from now)."""
        parked = _Parked(connection, address, time.monotonic() + self.timeout, bytearray())
        with self._lock:
            if self._closed:
                closed = True
            else:
                closed = False
                self._incoming.append(parked)
        if closed:
            self._forget(connection)
            return
        self.wake()

    def wake(self) -> None:
        """Look again now (a reader's place was given back, or a connection arrived)."""
        with contextlib.suppress(OSError):  # full: a wake-up is pending already
            self._wake_write.send(b"x")

    def close(self) -> None:
        """Stop: every parked connection is closed."""
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        self._thread.join(5)
        self._wake_read.close()
        self._wake_write.close()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ)
        parked: dict[socket.socket, _Parked] = {}
        try:
            while True:
                with self._lock:
                    incoming, self._incoming = self._incoming, []
                    closed = self._closed
                for each in incoming:
                    sock = each.connection.sock
                    try:
                        sock.setblocking(False)
                        selector.register(sock, selectors.EVENT_READ, each)
                    except (OSError, ValueError):
                        self._forget(each.connection)
                        continue
                    parked[sock] = each
                if closed:
                    break
                self._queued = [each for each in self._queued if each.connection.sock in parked]
                while self._queued and self._try_read(self._queued[0].connection):
                    self._hand_over(parked, self._queued.pop(0))
                # With anything parked, a look at least every grace period: what ages past it may be cut.
                timeout = None if not parked else min(
                    EVICTION_GRACE_SEC, max(0.0, min(each.deadline for each in parked.values()) - time.monotonic()))
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_read:
                        with contextlib.suppress(OSError):
                            while self._wake_read.recv(4096):
                                pass
                        continue
                    each = key.data
                    assert isinstance(each, _Parked)
                    self._read(selector, parked, each)
                for each in parked.values():
                    each.connection.looked_at = True  # read once: it had its chance
                # After the bytes that arrived were read: a connection whose headers are in is never cut.
                self._trim()
                for each in list(parked.values()):
                    if each.connection.ended is not None:
                        self._release(selector, parked, each)
                        self._let_go(each)
                now = time.monotonic()
                for each in [p for p in parked.values() if p.deadline <= now]:
                    self._release(selector, parked, each)
                    if each.received:
                        self._answer(each.connection, 408, f"the request was not sent within {self.timeout:g} s")
                    else:
                        self._forget(each.connection)  # idle: closed quietly, as a kept-alive one is
        finally:
            for each in list(parked.values()):
                self._release(selector, parked, each)
                self._forget(each.connection)
            selector.close()

    def _read(self, selector: selectors.BaseSelector, parked: dict[socket.socket, _Parked], each: _Parked) -> None:
        connection = each.connection
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if connection.ended is not None:  # cut by the pool to make room
            each.received += data
            self._release(selector, parked, each)
            self._let_go(each)
            return
        if not data and not each.received:
            self._release(selector, parked, each)
            self._forget(connection)  # closed without a word
            return
        each.received += data
        # Looked for only near the new bytes: the end may straddle two reads.
        start = max(0, len(each.received) - len(data) - len(HEADERS_END) + 1)
        if not data or each.received.find(HEADERS_END, start) >= 0 or len(each.received) >= self.header_limit:
            with contextlib.suppress(KeyError, ValueError, OSError):
                selector.unregister(connection.sock)  # nothing more is read here
            if self._queued or not self._try_read(connection):
                self._queued.append(each)  # still parked (its deadline runs) until a reader's place is free
                return
            self._hand_over(parked, each)

    def _hand_over(self, parked: dict[socket.socket, _Parked], each: _Parked) -> None:
        connection = each.connection
        parked.pop(connection.sock, None)
        connection.prefix = bytes(each.received)
        connection.deadline = each.deadline
        connection.parked = False
        try:
            connection.sock.setblocking(True)
        except OSError:
            self._forget(connection)
            return
        self._ready(connection, each.address)

    def _let_go(self, each: _Parked) -> None:
        """A cut connection: told why if it sent anything; closed without a word (no reset: it has nothing
        unread) if it sent nothing, which is all a flood of idle connections costs here."""
        assert each.connection.ended is not None
        if each.received:
            self._answer(each.connection, *each.connection.ended)
        else:
            self._forget(each.connection)

    @staticmethod
    def _release(selector: selectors.BaseSelector, parked: dict[socket.socket, _Parked], each: _Parked) -> None:
        parked.pop(each.connection.sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            selector.unregister(each.connection.sock)
