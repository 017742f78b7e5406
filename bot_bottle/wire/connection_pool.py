"""Who holds a server's connections: a bounded pool of those not yet authenticated, the rest their caller's.

A connection is *waiting* while nothing it sent has been read as a whole
request's headers (``enter``, and ``wait_again`` before each further
request on a kept-alive connection). Waiting connections are capped in all
and per peer, and so are the handler threads checking who sent a request
whose headers are in (``try_read``): that is all a client without
credentials can ever hold. Once the signature is checked the
connection is *charged* to its caller (``charge``), so the caller's own
budgets bound it from then on (``relay.shares``) and no flood of
unauthenticated connections can take its place.

At a cap, a server either refuses the new connection (``evict=False``: the
sidecar and the dashboard, which have a single client) or takes it and,
once the bytes that have arrived are read (``wire.parking`` calls
``trim``), cuts the oldest waiting connections of the peers that hold the
most until the pool is within its caps again (``evict=True``: the relay,
whose honest clients send their headers at once, so that only connections
held open without them are ever the oldest). A cut connection's read side
is shut down, which ends its handler's read at once; it is answered with the
status and message ``ended`` records.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: What an evicted connection is told: busy, retry (a client with credentials is served on its next try).
EVICTED = (503, "too many connections are waiting to be authenticated; retry")
#: A client sends its headers in the packets right after its handshake: a connection is cut for sending none
#: only once it is this old (and was read since), so that one whose bytes are on their way is never cut.
EVICTION_GRACE_SEC = 0.05


@dataclass(eq=False)
class Connection:
    """One accepted connection: its socket, its peer, since when it waits, and whom it is charged to."""

    sock: socket.socket = field(repr=False)
    peer: str
    since: float = field(default_factory=time.monotonic)
    principal: object | None = None  # set by ``charge``: the caller its request authenticated as
    who: str = ""  # for the log: the caller's name once charged, the peer before
    ended: tuple[int, str] | None = None  # set when cut: the status and message its handler answers
    prefix: bytes = field(default=b"", repr=False)  # read while it was parked (wire.parking)
    deadline: float | None = None  # its first request's deadline (monotonic), when it was parked
    parked: bool = False  # held by wire.parking (no thread reads it): a cut is answered there
    looked_at: bool = True  # False while parked and not yet read once: it is not cut before it had the chance
    reading: bool = False  # its headers are in and a handler checks who sent them (ConnectionPool.try_read)


def peer_key(address: str) -> str:
    """The peer a connection is counted against: its IPv4 address, or the /64 of an IPv6 one.

    One host can use every address of its IPv6 /64 at once, so counting by
    address would give it billions of shares.
    """
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class ConnectionPool:
    """The connections a server holds, capped while they wait to be authenticated (see the module)."""

    def __init__(self, waiting: int, per_peer: int | None = None, *, evict: bool = False,
                 on_cut: Callable[[Connection], None] = lambda connection: None) -> None:
        self.limit = waiting
        self.per_peer = per_peer if per_peer is not None else waiting
        self.evict = evict
        # With eviction, what may wait between two trims: only a descriptor each (they are parked).
        self.hard_limit = 8 * waiting
        self._on_cut = on_cut
        # Handlers checking who sent a request, at once: a flood of complete requests without a valid
        # signature holds no more threads than this (the rest stay parked until one is free).
        self.max_reading = waiting
        self._reading = 0
        self.on_room: Callable[[], None] = lambda: None  # called when a reader's place is given back
        self._lock = threading.Lock()
        self._by_socket: dict[socket.socket, Connection] = {}
        # Waiting connections per peer, oldest first (a dict keeps insertion order).
        self._waiting: dict[str, dict[Connection, None]] = {}
        self._waiting_count = 0

    @property
    def waiting(self) -> int:
        """How many connections wait to be authenticated now."""
        return self._waiting_count

    @property
    def held(self) -> int:
        """How many connections are open now, waiting or not."""
        return len(self._by_socket)

    def enter(self, sock: socket.socket, address: str, *, parked: bool = False) -> Connection | None:
        """Count a new connection as waiting (``parked``: held by ``wire.parking`` until its headers are in);
        ``None`` when it must be refused (at a cap)."""
        connection = Connection(sock, peer_key(address), parked=parked, looked_at=not parked)
        connection.who = f"peer {connection.peer}"
        cut: Connection | None = None
        with self._lock:
            if self.evict:
                if self._waiting_count >= self.hard_limit:
                    # Room is made now rather than refusing: the new one may be the honest client.
                    cut = self._victim(time.monotonic(), peers_over_share_only=False)
                    if cut is None:
                        return None
                    self._cut(cut, EVICTED)
                    self._unwait(cut)
            elif self._waiting_count >= self.limit or len(self._waiting.get(connection.peer, ())) >= self.per_peer:
                return None
            self._by_socket[sock] = connection
            self._wait(connection)
        if cut is not None:
            self._on_cut(cut)
        return connection

    def trim(self) -> int:
        """Cut the oldest waiting connections of the peers holding the most until within the caps; how many.

        Only connections whose bytes were looked at and that are past the
        grace may go (one that just arrived may have its headers on the
        way): the others count, but are kept until then.
        """
        cut: list[Connection] = []
        with self._lock:
            now = time.monotonic()
            while True:
                victim = self._victim(now, peers_over_share_only=True)
                if victim is None and self._waiting_count > self.limit:
                    victim = self._victim(now, peers_over_share_only=False)
                if victim is None:
                    break
                self._cut(victim, EVICTED)
                self._unwait(victim)
                cut.append(victim)
        for connection in cut:
            self._on_cut(connection)
        return len(cut)

    def of(self, sock: socket.socket) -> Connection | None:
        """The pool's record of ``sock`` (``None`` for a socket it never admitted)."""
        with self._lock:
            return self._by_socket.get(sock)

    def try_read(self, connection: Connection) -> bool:
        """The connection's headers are in: take one of the readers' places for its handler, which checks who
        sent it at once; False when all are taken (it stays parked until ``on_room``)."""
        with self._lock:
            if self._reading >= self.max_reading:
                return False
            self._unwait(connection)
            connection.reading = True
            self._reading += 1
            return True

    def charge(self, connection: Connection, principal: object, who: str) -> None:
        """The connection's request is authenticated as ``principal`` (``who`` in the log): it leaves the pool."""
        with self._lock:
            connection.principal = principal
            connection.who = who
            self._unwait(connection)
            room = self._unread(connection)
        if room:
            self.on_room()

    def wait_again(self, connection: Connection) -> bool:
        """Before a further request on a kept-alive connection: waiting again; False when there is no room."""
        with self._lock:
            if connection in self._waiting.get(connection.peer, ()):
                return True  # it never left the pool
            if self._waiting_count >= self.limit or len(self._waiting.get(connection.peer, ())) >= self.per_peer:
                return False
            connection.principal = None
            connection.who = f"peer {connection.peer}"
            connection.since = time.monotonic()
            self._wait(connection)
            return True

    def leave(self, sock: socket.socket) -> None:
        """The connection is about to be closed: forget it (before its socket closes, so a cut never hits
        a descriptor number reused by a later connection)."""
        room = False
        with self._lock:
            connection = self._by_socket.pop(sock, None)
            if connection is not None:
                self._unwait(connection)
                room = self._unread(connection)
        if room:
            self.on_room()

    def cut(self, matches: Callable[[object], bool], status: int, message: str) -> int:
        """Cut every charged connection whose principal ``matches``: its handler answers ``status``."""
        cut: list[Connection] = []
        with self._lock:
            for connection in self._by_socket.values():
                if connection.principal is not None and connection.ended is None and matches(connection.principal):
                    self._cut(connection, (status, message))
                    cut.append(connection)
        for connection in cut:
            self._on_cut(connection)
        return len(cut)

    # Under the lock -------------------------------------------------------------

    def _victim(self, now: float, *, peers_over_share_only: bool) -> Connection | None:
        """The oldest waiting connection that may be cut, of the peer holding the most (of those over their
        share, with ``peers_over_share_only``); ``None`` if there is none. A peer's connections are kept
        oldest first, so its first is its only candidate."""
        for peer in sorted(self._waiting, key=lambda name: len(self._waiting[name]), reverse=True):
            if peers_over_share_only and len(self._waiting[peer]) <= self.per_peer:
                return None
            oldest = next(iter(self._waiting[peer]))
            if oldest.looked_at and now - oldest.since >= EVICTION_GRACE_SEC:
                return oldest
        return None

    def _unread(self, connection: Connection) -> bool:
        if not connection.reading:
            return False
        connection.reading = False
        self._reading -= 1
        return True

    def _wait(self, connection: Connection) -> None:
        self._waiting.setdefault(connection.peer, {})[connection] = None
        self._waiting_count += 1

    def _unwait(self, connection: Connection) -> None:
        mine = self._waiting.get(connection.peer)
        if mine is None or connection not in mine:
            return
        del mine[connection]
        if not mine:
            del self._waiting[connection.peer]
        self._waiting_count -= 1

    @staticmethod
    def _cut(connection: Connection, why: tuple[int, str]) -> None:
        connection.ended = why
        if connection.parked:
            return  # the parking thread answers it after the trim
        # Ends a handler's read in progress at once (it returns no more bytes); the answer can still be
        # written. What the client sends after it is lost, and may reset the connection.
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RD)
