"""Rows a sidecar writes into the file with its CHECKs switched off, against the operator's tools and the keeper.

A sidecar on the mount can write any row, and ``PRAGMA
ignore_check_constraints`` lets it past every CHECK of the schema (a
proposal's id of 32 hex digits, a grant's subject that is JSON). Before the
fixes next to these tests: one grant or rule row whose subject was not JSON
made ``grants list``, ``rules list`` (and the TUI's grants view, the
dashboard's bottles page) end in a traceback, and a bottle's egress helper
raise where it promises a yes or a no; one pending proposal whose id was not
32 hex digits made ``proposals list`` and ``supervise --once`` fail for every
bottle (exit 2), and stopped the keeper of the relay or the dashboard, so no
standing rule or expiry was applied to any bottle while the row was there.
"""

from __future__ import annotations

import json
import secrets
import sqlite3

from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.sidecar.egress import EgressGrants
from tests.attacks.test_forged_rules import assert_a_keeper_rejects_a_paste
from tests.helpers.support import TempDirTest

LATER = "2999-01-01T00:00:00.000000Z"


class HostileRowsTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("db", "upgrade").returncode, 0)
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject", "--notes", "no")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.store = QueueStore()
        self.addCleanup(self.store.close)
        self.docs = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        self.raw = sqlite3.connect(host_db_path(), isolation_level=None)  # the sidecar's own connection
        self.addCleanup(self.raw.close)
        self.raw.execute("PRAGMA ignore_check_constraints = ON")

    def assert_runs(self, *verb: str) -> str:
        result = self.run_cli(*verb)
        self.assertEqual(result.returncode, 0, f"{' '.join(verb)}: {result.stderr[-400:]}")
        self.assertNotIn("Traceback", result.stderr)
        return result.stdout

    def test_a_subject_that_is_not_json_fails_no_listing_and_covers_nothing(self) -> None:
        for number, subject in enumerate(("{not json", "[1, 2]", "[" * 100_000)):
            self.raw.execute(
                "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
                "decided_by, audit_seq) VALUES (?, 'web-1', ?, ?, ?, '2020-01-01T00:00:00.000000Z', ?, ?, 'ann', ?)",
                (secrets.token_hex(16), TOOL_EGRESS_ALLOW, subject, "0" * 64, LATER, self.docs.id if number == 0
                 else secrets.token_hex(16), 900 + number))
            self.raw.execute(
                "INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, "
                "ends_at, created_by, proposal_id, audit_seq) VALUES (?, NULL, ?, ?, ?, 1, 'approve', 'n', "
                "'2020-01-01T00:00:00.000000Z', ?, 'ann', NULL, ?)",
                (secrets.token_hex(16), TOOL_EGRESS_ALLOW, subject, "0" * 64, LATER, 900 + number))
        listed = json.loads(self.assert_runs("grants", "list", "--json"))
        self.assertEqual(len(listed), 3)
        self.assertIn("unreadable", self.assert_runs("grants", "list"))
        self.assert_runs("grants", "list", "--all")
        self.assert_runs("rules", "list", "--all")
        self.assert_runs("bottles", "show", "web-1")
        grants = EgressGrants(self.store.for_bottle("web-1"))
        self.assertFalse(grants.allows_route("docs.python.org", "GET", "/3/"))

    def test_a_proposal_id_no_bot_bottle_writes_stops_no_listing_nor_the_keeper(self) -> None:
        for proposal_id, expires in (("z", LATER), ("y" * 32, "2020-01-01T00:00:00.000000Z")):
            self.raw.execute(
                "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, created_at, "
                "expires_at) VALUES (?, 'web-2', ?, '{\"host\": \"pastebin.com\"}', ?, 'j', "
                "'2026-01-01T00:00:00.000000Z', ?)", (proposal_id, TOOL_EGRESS_ALLOW, "0" * 64, expires))
        for verb in (("proposals", "list", "--json"), ("proposals", "list", "--all", "--json"),
                     ("supervise", "--once", "--json")):
            with self.subTest(verb=verb):
                self.assertEqual([row["id"] for row in json.loads(self.assert_runs(*verb))], [self.docs.id])
        assert_a_keeper_rejects_a_paste(self, self.store, "web-9", settle=1.0)
