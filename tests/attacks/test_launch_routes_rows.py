"""Rows a sidecar on the mount plants for ``bot-bottle prepare --routes-file`` to take as the launch file's.

``prepare --routes-file FILE`` files the launch file for its bottle and
approves it; where the same file is already filed (the dedupe of
``QueueStore.submit``, found by the row's ``payload_sha256`` column), that row
is what it approves or reports. A sidecar on the mount writes rows: one whose
``payload_sha256`` is the launch file's digest and whose payload is another
file was approved as the launch file, in the operator's name, granting routes
the operator never saw.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_BLOCK, sha256_text
from bot_bottle.timestamps import utc_now
from tests.helpers.support import TempDirTest

LAUNCH = "routes:\n- pypi.org\n"
EVIL = "routes:\n- pypi.org\n- evil-exfil.example.net\n"
LATER = "2999-01-01T00:00:00.000000Z"


class LaunchRoutesRowsTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("db", "upgrade").returncode, 0)
        self.raw = sqlite3.connect(host_db_path(), isolation_level=None)  # the sidecar's own connection
        self.addCleanup(self.raw.close)
        self.routes = self.tmp / "routes.yaml"
        self.routes.write_text(LAUNCH, encoding="utf-8")

    def plant(self, payload: str, digest: str) -> str:
        """A pending egress-block row of web-1's holding ``payload`` under ``digest``; its id."""
        ident = secrets.token_hex(16)
        self.raw.execute(
            "INSERT INTO proposals (id, queue_key, tool, payload, payload_sha256, justification, current_file, "
            "current_file_hash, created_at, expires_at) VALUES (?, 'web-1', ?, ?, ?, 'routine', NULL, NULL, ?, ?)",
            (ident, TOOL_EGRESS_BLOCK, payload, digest, utc_now(), LATER))
        return ident

    def prepare(self) -> Any:
        return self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.routes), "--json")

    def test_a_row_holding_another_file_under_the_launch_files_digest_is_not_approved(self) -> None:
        planted = self.plant(EVIL, sha256_text(LAUNCH))
        result = self.prepare()
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        recorded = json.loads(result.stdout)["routes_file"]
        store = QueueStore()
        self.addCleanup(store.close)
        self.assertNotEqual(recorded["proposal"], planted)
        self.assertIsNone(store.response(planted), "the planted file was decided by prepare")
        launch = store.get(recorded["proposal"])
        self.assertEqual(launch.payload, LAUNCH)
        response = store.response(launch.id)
        assert response is not None
        self.assertEqual(response.status, STATUS_APPROVED)
        grants = json.loads(self.run_cli("grants", "list", "--json").stdout)
        self.assertEqual([grant["proposal_id"] for grant in grants], [launch.id])
        self.assertNotIn("evil-exfil", json.dumps(grants))

