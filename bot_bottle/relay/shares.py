"""What each bottle may hold and do at the relay at once: a share of its own, which no other bottle can use up.

Every budget here is one bottle's and is taken only after its request's
signature is checked (``RelayService.admit``), so neither another bottle nor
a client without a credential can spend it: requests in flight (a wait is
one), request-body bytes held in memory, waits, and writes to the database
per second (a token bucket: a burst, then a steady rate), and requests
being answered (``answering``: what an answer holds in memory, the records
it was made from and its bytes while a client that never reads it keeps its
write waiting, is bounded by how many a bottle may have at once, not by how
many it asks for). A bottle over its share is told to retry; the others
never see the difference. What one
request may hold whatever its shape is ``wire.json_bounds``'s; what a client
without a credential may hold is ``wire.connection_pool``'s.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bot_bottle.errors import RetryLater, RpcError
from bot_bottle.wire.jsonrpc import BUSY

MiB = 1024 * 1024
DEFAULT_WRITES_PER_SEC = 10  # a bottle's steady writes a second at the relay (``relay --writes-per-bottle``)
WRITE_BURST_SEC = 5  # the burst before that rate binds: this many seconds' worth of writes


@dataclass(frozen=True)
class Share:
    """One bottle's share of the relay."""

    waits: int = 32  # long polls held at once
    requests: int = 64  # requests in flight at once, waits included (so the waits always leave room)
    body_bytes: int = 8 * MiB  # request bodies in memory at once: two of the largest (wire.jsonrpc_server)
    writes_per_sec: float = DEFAULT_WRITES_PER_SEC  # filings, archives, heartbeats and stops written, steadily...
    write_burst: int = WRITE_BURST_SEC * DEFAULT_WRITES_PER_SEC  # ...after a burst of this many
    answers: int = 2  # requests being served and answered at once (a wait, while it waits, is not one)

    @classmethod
    def for_waits(cls, waits: int, writes_per_sec: int = DEFAULT_WRITES_PER_SEC) -> Share:
        """The default share with ``waits`` waits (and twice that many requests in flight) and
        ``writes_per_sec`` writes a second (after a burst of ``WRITE_BURST_SEC`` seconds' worth)."""
        return cls(waits=waits, requests=2 * waits, writes_per_sec=float(writes_per_sec),
                   write_burst=WRITE_BURST_SEC * writes_per_sec)


@dataclass
class _Held:
    requests: int = 0
    body_bytes: int = 0
    waits: int = 0
    answering: int = 0


@dataclass
class _Bucket:
    tokens: float
    at: float


class Shares:
    """Each bottle's use of its ``Share`` now; thread-safe."""

    def __init__(self, share: Share) -> None:
        self.share = share
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)  # notified when a bottle's answering place is given back
        self._held: dict[str, _Held] = {}
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, bottle: str, length: int) -> str | None:
        """Take a place in flight and ``length`` body bytes of ``bottle``'s share; why it must retry if not."""
        with self._lock:
            held = self._held.setdefault(bottle, _Held())
            if held.requests >= self.share.requests:
                why = (f"bottle {bottle} has {held.requests} requests in flight at the relay, the most it may "
                       "have at once; retry")
            elif held.body_bytes + length > self.share.body_bytes:
                why = (f"bottle {bottle} has {held.body_bytes} bytes of requests in flight at the relay; "
                       f"{length} more would pass its {self.share.body_bytes}; retry")
            else:
                held.requests += 1
                held.body_bytes += length
                return None
            self._forget_if_idle(bottle, held)
            return why

    def leave(self, bottle: str, length: int) -> None:
        """Give back what ``admit`` took."""
        with self._lock:
            held = self._held[bottle]
            held.requests -= 1
            held.body_bytes -= length
            self._forget_if_idle(bottle, held)

    @contextlib.contextmanager
    def waiting(self, bottle: str) -> Iterator[None]:
        """Hold one of ``bottle``'s waits (``RpcError`` BUSY when it holds them all) for the ``with`` block."""
        with self._lock:
            held = self._held.setdefault(bottle, _Held())
            if held.waits >= self.share.waits:
                raise RpcError(BUSY, f"bottle {bottle} has {held.waits} calls waiting at the relay, the most it "
                                     "may have at once; retry")
            held.waits += 1
        try:
            yield
        finally:
            with self._lock:
                held.waits -= 1
                self._forget_if_idle(bottle, held)

    @contextlib.contextmanager
    def answering(self, bottle: str, timeout: float, cancelled: threading.Event | None = None) -> Iterator[None]:
        """Hold one of ``bottle``'s answering places for the ``with`` block, waiting up to ``timeout`` seconds for
        one (its own requests hold the others); ``RetryLater`` when none came, or ``cancelled`` was set (its
        credential was revoked: ``wake``) meanwhile."""
        self._take_turn(bottle, timeout, cancelled)
        try:
            yield
        finally:
            self._give_turn(bottle)

    @contextlib.contextmanager
    def set_aside(self, bottle: str, timeout: float) -> Iterator[None]:
        """Inside ``answering``: give the place back for the ``with`` block (a long wait), then take one again;
        ``RpcError`` BUSY when none came within ``timeout`` seconds."""
        self._give_turn(bottle)
        try:
            yield
        finally:
            try:
                self._take_turn(bottle, timeout)
            except RetryLater as exc:
                raise RpcError(BUSY, str(exc)) from None

    def wake(self) -> None:
        """Have every request waiting for its turn look again whether it was cancelled."""
        with self._turn:
            self._turn.notify_all()

    def _take_turn(self, bottle: str, timeout: float, cancelled: threading.Event | None = None) -> None:
        with self._turn:
            held = self._held.setdefault(bottle, _Held())

            def ready() -> bool:
                return held.answering < self.share.answers or (cancelled is not None and cancelled.is_set())

            if not self._turn.wait_for(ready, timeout) or (cancelled is not None and cancelled.is_set()):
                self._forget_if_idle(bottle, held)
                raise RetryLater(f"bottle {bottle} has {held.answering} requests being answered at the relay, the "
                                 "most it may have at once, and none ended in time (or its credential was "
                                 "revoked meanwhile); retry")
            held.answering += 1

    def _give_turn(self, bottle: str) -> None:
        with self._turn:
            held = self._held[bottle]
            held.answering -= 1
            self._forget_if_idle(bottle, held)
            self._turn.notify_all()

    def write(self, bottle: str) -> None:
        """Spend one of ``bottle``'s writes; ``RpcError`` BUSY when it has written its share for now."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(bottle)
            if bucket is None:
                bucket = self._buckets[bottle] = _Bucket(float(self.share.write_burst), now)
            bucket.tokens = min(float(self.share.write_burst),
                                bucket.tokens + (now - bucket.at) * self.share.writes_per_sec)
            bucket.at = now
            if bucket.tokens < 1.0:
                raise RpcError(BUSY, f"bottle {bottle} writes faster than the {self.share.writes_per_sec:g} a "
                                     "second it may; retry")
            bucket.tokens -= 1.0

    def in_flight(self) -> list[str]:
        """The bottles with requests in flight now."""
        with self._lock:
            return [bottle for bottle, held in self._held.items() if held.requests]

    def held(self, bottle: str) -> tuple[int, int, int]:
        """``bottle``'s requests in flight, body bytes and waits now."""
        with self._lock:
            held = self._held.get(bottle, _Held())
            return held.requests, held.body_bytes, held.waits

    def _forget_if_idle(self, bottle: str, held: _Held) -> None:
        if not (held.requests or held.body_bytes or held.waits or held.answering) and self._held.get(bottle) is held:
            del self._held[bottle]
