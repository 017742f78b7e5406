"""A revoked credential lets go of the relay at once: its waits end and its connections are cut.

The relay checks a bottle's credential on every request, and again once a
request's body is in and after a wait; but a request already in flight (a
25 s long poll, a body trickling in) would hold its bottle's places until
then. ``RevocationWatch`` looks, a few times a second and only while any
request is in flight, whether the credential of each caller in flight is
still its bottle's live one (one query), and for those that are not ends
their waits (answered "revoked") and cuts their connections.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable

from bot_bottle.errors import BotBottleError
from bot_bottle.relay.service import Caller, RelayService
from bot_bottle.wire.connection_pool import ConnectionPool

WATCH_INTERVAL_SEC = 0.2
REVOKED_MESSAGE = "this bottle's relay credential was revoked or replaced: prepare the bottle again"


class RevocationWatch:
    """A thread that releases what revoked credentials hold at the relay (see the module)."""

    def __init__(self, service: RelayService, pool: ConnectionPool, *, interval: float = WATCH_INTERVAL_SEC,
                 log: Callable[[str], None] | None = None) -> None:
        self.service = service
        self.pool = pool
        self.interval = interval
        self._log = log or service.log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="revocation-watch", daemon=True)

    def start(self) -> RevocationWatch:
        """Start watching; returns itself."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (within one interval)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def check(self) -> int:
        """One look: release the callers in flight whose credential is no longer live; how many there were."""
        callers = self.service.in_flight()
        if not callers:
            return 0
        live = self.service.credentials.live_keys(sorted({caller.bottle for caller in callers}))
        revoked = [caller for caller in callers
                   if caller.bottle not in live or not hmac.compare_digest(live[caller.bottle], caller.key)]
        if not revoked:
            return 0
        self.service.revoked(revoked)
        gone = set(revoked)
        self.pool.cut(lambda principal: isinstance(principal, Caller) and principal in gone, 401, REVOKED_MESSAGE)
        for bottle in sorted({caller.bottle for caller in revoked}):
            count = sum(caller.bottle == bottle for caller in revoked)
            self._log(f"bottle {bottle}: credential revoked; released its {count} request(s) in flight")
        return len(revoked)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except BotBottleError as exc:  # the database is busy or gone for a moment: look again
                self._log(f"could not look for revoked credentials: {exc}")
