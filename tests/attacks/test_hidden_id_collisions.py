"""Rows whose ids no bot-bottle writes, named by the id of a proposal the operator sees (hostile review 50).

A sidecar on the mount writes rows past the schema's CHECKs (``PRAGMA
ignore_check_constraints``). A proposal row whose id is not 32 hex digits is
listed on no screen, yet ``proposals approve/reject/show ID`` still counted
it: a row with the id of another bottle's pending proposal and one more digit
(or its 8-digit short id alone) made that proposal's whole id, as listed, and
its short id 'ambiguous', so the operator could not decide it from the command
line at all, by any number of digits, against a row they could not see. Only
ids bot-bottle writes are named by a prefix now, as only they are listed.
"""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import TempDirTest


class HiddenIdCollisionTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("db", "upgrade").returncode, 0)
        self.store = QueueStore()
        self.addCleanup(self.store.close)
        self.docs = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        raw = sqlite3.connect(host_db_path(), isolation_level=None)  # a sidecar's own connection
        self.addCleanup(raw.close)
        raw.execute("PRAGMA ignore_check_constraints = ON")
        for forged in (self.docs.id + "0", self.docs.id[:8], self.docs.id[:31] + "x"):
            raw.execute(
                "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at) "
                "VALUES (?, 'web-2', ?, '{\"host\": \"pastebin.com\"}', ?, 'j', '2026-01-01T00:00:00.000000Z')",
                (forged, TOOL_EGRESS_ALLOW, "0" * 64))

    def test_the_listed_proposal_is_named_by_its_id_and_its_short_id(self) -> None:
        listed = json.loads(self.run_cli("proposals", "list", "--json").stdout)
        self.assertEqual([row["id"] for row in listed], [self.docs.id])
        for named in (self.docs.id, self.docs.id[:8], self.docs.id[:4]):
            with self.subTest(named=named):
                shown = self.run_cli("proposals", "show", named, "--json")
                self.assertEqual(shown.returncode, 0, shown.stderr)
                self.assertEqual(json.loads(shown.stdout)["id"], self.docs.id)
        digest = json.loads(self.run_cli("proposals", "show", self.docs.id, "--json").stdout)["digest"]
        done = self.run_cli("proposals", "approve", self.docs.id[:8], "--digest", digest)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(self.run_cli("proposals", "show", self.docs.id, "--json").stdout)["status"],
                         "approved")
        (grant,) = json.loads(self.run_cli("grants", "list", "--json").stdout)
        self.assertEqual(grant["queue_key"], "web-1")
