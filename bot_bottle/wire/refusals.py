"""Every refusal a server answers, logged without letting a flood of them flood the log.

The first refusal of a kind (who was refused, and with which status) is
logged at once with its reason; the same refusals in the next minute are
only counted, and their count is logged when the minute is over. So an
operator sees each bottle or peer that is refused, why and how often, in at
most two lines a minute each, whatever the rate of the requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SEC = 60.0
MAX_KINDS = 1000  # kinds tracked at once; beyond, refusals are counted under "others" (a peer can vary its address)


@dataclass
class _Kind:
    first: float
    reason: str
    more: int = 0


class RefusalLog:
    """Logs refusals: one line for the first of each (who, status), then their count per minute."""

    def __init__(self, log: Callable[[str], None], window: float = WINDOW_SEC) -> None:
        self._log = log
        self.window = window
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, int], _Kind] = {}

    def note(self, who: str, status: int, reason: str) -> None:
        """One refusal of ``who`` (a bottle, or a peer's address) with ``status``, because ``reason``."""
        now = time.monotonic()
        self.flush(now)
        with self._lock:
            key = (who, status)
            kind = self._kinds.get(key)
            if kind is None and len(self._kinds) >= MAX_KINDS:
                key = ("others", status)
                kind = self._kinds.get(key)
            if kind is not None:
                kind.more += 1
                return
            self._kinds[key] = _Kind(now, reason)
        self._log(f"refused {key[0]}: {status} {reason[:300]}")

    def flush(self, now: float | None = None) -> None:
        """Log the counts of every kind whose minute is over, and forget those kinds."""
        now = time.monotonic() if now is None else now
        lines = []
        with self._lock:
            for key, kind in list(self._kinds.items()):
                if now - kind.first >= self.window:
                    del self._kinds[key]
                    if kind.more:
                        lines.append(f"refused {key[0]}: {key[1]} {kind.reason[:120]} "
                                     f"({kind.more} more in the last {self.window:g} s)")
        for line in lines:
            self._log(line)
