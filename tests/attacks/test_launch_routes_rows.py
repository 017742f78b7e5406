"""Rows a sidecar on the mount plants for ``bot-bottle prepare --routes-file`` to take as the launch file's.

``prepare --routes-file FILE`` files the launch file for its bottle and
approves it; where the same file is already filed (the dedupe of
``QueueStore.submit``, found by the row's ``payload_sha256`` column), that row
is what it approves or reports. A sidecar on the mount writes rows: one whose
``payload_sha256`` is the launch file's digest and whose payload is another
file was approved as the launch file, in the operator's name, granting routes
the operator never saw. A response row it wrote (no seal of the host's) had
prepare say "already its approved routes file" while every screen read the
bottle's routes against none, or refuse the file as rejected in the
operator's name.
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

    def plant(self, payload: str, digest: str, ident: str | None = None) -> str:
        """A pending egress-block row of web-1's holding ``payload`` under ``digest``; its id."""
        ident = secrets.token_hex(16) if ident is None else ident
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

    def forge_answer(self, proposal_id: str, status: str) -> None:
        """The response a sidecar writes for ``proposal_id`` (and for an approval, the grant in force): no seal."""
        self.raw.execute("INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
                         "VALUES (?, ?, 'ok', NULL, 'ann@host', ?)", (proposal_id, status, utc_now()))
        if status == STATUS_APPROVED:
            self.raw.execute(
                "INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, proposal_id, "
                "rule_id, decided_by, audit_seq) VALUES (?, 'web-1', ?, ?, ?, '2020-01-01T00:00:00.000000Z', ?, ?, "
                "NULL, 'ann@host', 900)",
                (secrets.token_hex(16), TOOL_EGRESS_BLOCK, json.dumps({"file_sha256": sha256_text(LAUNCH)}),
                 sha256_text(LAUNCH), LATER, proposal_id))

    def test_an_unsealed_approval_of_the_launch_file_is_not_taken_as_its_record(self) -> None:
        """prepare said 'already its approved routes file' while every screen read the bottle's routes against
        none: the approval was the sidecar's row, and no seal of the host's holds it."""
        planted = self.plant(LAUNCH, sha256_text(LAUNCH))
        self.forge_answer(planted, STATUS_APPROVED)
        result = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.routes))
        self.assertNotIn("already its approved routes file", result.stdout)
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertIn("not proven", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)

    def test_an_unsealed_rejection_of_the_launch_file_is_not_named_as_the_operators(self) -> None:
        planted = self.plant(LAUNCH, sha256_text(LAUNCH))
        self.forge_answer(planted, "rejected")
        result = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.routes))
        self.assertEqual(result.returncode, 2, result.stdout)
        self.assertNotIn("rejected for web-1 (proposal", result.stderr)
        self.assertIn("not proven", result.stderr)

    def test_a_row_with_no_proposal_id_does_not_stop_the_launch_file_being_recorded(self) -> None:
        """Found as the same file waiting, it could not be decided: prepare refused (after preparing the bottle)
        for as long as the row was there, and the bottle's routes were read against none."""
        self.raw.execute("PRAGMA ignore_check_constraints = ON")
        self.plant(LAUNCH, sha256_text(LAUNCH), ident="zz")
        result = self.prepare()
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        recorded = json.loads(result.stdout)["routes_file"]
        self.assertTrue(recorded["recorded"])
        self.assertNotEqual(recorded["proposal"], "zz")
