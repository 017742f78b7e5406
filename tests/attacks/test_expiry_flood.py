"""The quota against an agent that lets its asks expire, with the operator's short pending-ttl.

Before the fix next to this test, the quota counted a proposal waiting for
a person, and (for an hour from its filing) one a standing rule decided, but
not one that had expired: with 'config set pending-ttl 1m' (the shortest)
the agent filed its whole quota through its real sidecar, the host closed
those as expired a minute later, and it filed the whole quota again, every
minute, with no person pacing it (measured: egress-block proposals of 1 MB
each, 16 of them a minute; the database grew from 18 MB to 37 MB in one
minute, about 1 GB an hour from one bottle). Now an expired proposal counts
for an hour from its filing, as a rule-decided one does.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import expire_in
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.launcher import spawn
from bot_bottle.timestamps import later, utc_now
from tests.helpers.support import TempDirTest


def file(url: str, number: int) -> dict[str, Any]:
    """One egress-allow filing, as the agent makes it: the tool's whole result (an error when refused)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": TOOL_EGRESS_ALLOW, "arguments": {"host": f"h{number}.example.com",
                                                 "justification": "x" * 60_000}}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, Any] = json.loads(answer.read())["result"]
    return result


class ExpiryFloodTest(TempDirTest):
    def test_expired_filings_count_against_the_quota(self) -> None:
        ttl = self.run_cli("config", "set", "pending-ttl", "1m")
        self.assertEqual(ttl.returncode, 0, ttl.stderr)
        server, url = spawn("web-1", host_db_path(), "--wait-seconds", "0", "--max-pending", "5")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=10)))
        first = [file(url, number) for number in range(6)]
        self.assertEqual([bool(r.get("isError")) for r in first], [False] * 5 + [True])
        # The host's expiry, as its keeper or the next listing runs it once the minute has passed.
        with QueueStore() as store, AuditStore.recording(store.db) as log:
            self.assertEqual(expire_in(log, later(utc_now(), 120)), 5)
        again = [file(url, number) for number in range(6, 12)]
        stored = [r for r in again if not r.get("isError")]
        self.assertEqual(len(stored), 0, f"{len(stored)} more filings stored a minute later, no person pacing them")
        self.assertIn("or expired", again[0]["content"][0]["text"])
        with QueueStore() as store, store.db.read() as conn:
            self.assertEqual(conn.execute("SELECT count(*) FROM proposals").fetchone()[0], 5)
