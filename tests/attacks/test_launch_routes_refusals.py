"""What ``bot-bottle bottles routes`` and ``prepare --routes-file`` refuse, held where a sidecar cannot undo it.

A routes file the operator rejected for a bottle is not recorded as its
approved launch file. Before the fixes next to these tests the refusal read
the rejection from the proposal's row while it was unarchived, and every
sidecar archives a proposal once its agent has the answer (``sidecar.mcp``):
so a rejected file, written into the checkout's routes file by the agent that
proposed it, was "recorded as approved" by the operator's next ``bottles
routes`` or ``prepare --routes-file``, its hosts in force; read from the
sealed entries an index finds under the bottle's name, a sidecar on the
mount hid it still by rewriting the entry's bottle. And ``bottles
routes`` asked no standing rule at all: a file a rule rejects for the bottle
(which ``prepare --routes-file`` refuses) was recorded as approved.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.launch_routes import check_launch_routes, record_launch_routes
from bot_bottle.decisions import decide
from bot_bottle.errors import ValidationError
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_BLOCK
from tests.helpers.support import TempDirTest

FIRST = "routes:\n- a.com\n"
EVIL = "routes:\n- a.com\n- evil-exfil.example.net\n"


class LaunchRoutesRefusalsTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.assertEqual(self.run_cli("prepare", "web-1", "--backend", "docker").returncode, 0)
        self.assertEqual(self.run_cli("prepare", "web-2", "--backend", "docker").returncode, 0)
        self.path = self.tmp / "routes.yaml"  # in the agent's checkout: the agent writes it
        self.path.write_text(EVIL, encoding="utf-8")
        self.store = QueueStore(None)
        self.addCleanup(self.store.close)

    def audit_count(self) -> int:
        return AuditStore(database=self.store.db).count()

    def assert_not_in_force(self, slug: str) -> None:
        with self.store.db.read() as conn:
            rows = conn.execute("SELECT p.payload FROM grants g JOIN proposals p ON p.id = g.proposal_id "
                                "WHERE g.queue_key = ? AND g.revoked_at IS NULL", (slug,)).fetchall()
        self.assertNotIn(EVIL, [row[0] for row in rows], f"the rejected file is in force for {slug}")

    def test_a_rejection_the_sidecar_archived_still_refuses(self) -> None:
        """The agent files EVIL, the operator rejects it, the sidecar archives it on handing the agent the answer
        (as every sidecar does), and the agent leaves EVIL in the routes file the operator names next."""
        queue = self.store.for_bottle("web-1")
        filed = queue.submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", None)
        decide(filed.id, STATUS_REJECTED, "no", store=self.store)
        queue.archive(filed.id)
        queue.heartbeat()  # the sidecar's next write carries the archive
        self.assertIsNotNone(self.store.get(filed.id).archived_at)
        count = self.audit_count()
        for command in (("bottles", "routes", "web-1", str(self.path)),
                        ("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.path))):
            with self.subTest(command=command[0]):
                result = self.run_cli(*command)
                self.assert_clean_error(result, 2, "this file was rejected for web-1", filed.short_id,
                                        "nothing recorded")
                self.assertEqual(self.audit_count(), count)
                self.assert_not_in_force("web-1")

    def test_an_approval_since_the_rejection_records_it(self) -> None:
        """The operator changed their mind and approved the same file since: it is on record, not refused."""
        queue = self.store.for_bottle("web-1")
        filed = queue.submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", None)
        decide(filed.id, STATUS_REJECTED, "no", store=self.store)
        queue.archive(filed.id)
        again = queue.submit(TOOL_EGRESS_BLOCK, EVIL, "really", None)
        self.assertNotEqual(again.id, filed.id)
        decide(again.id, STATUS_APPROVED, "fine", store=self.store)
        result = self.run_cli("bottles", "routes", "web-1", str(self.path))
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertIn("already its approved routes file", result.stdout)

    def test_bottles_routes_holds_a_standing_rejection(self) -> None:
        """Remembered for every bottle from web-1's rejection; web-2 never filed it."""
        filed = self.store.submit("web-1", TOOL_EGRESS_BLOCK, EVIL, "I need it")
        decide(filed.id, STATUS_REJECTED, "no", store=self.store, remember="all")
        count = self.audit_count()
        result = self.run_cli("bottles", "routes", "web-2", str(self.path))
        self.assert_clean_error(result, 2, "rejects this file for every bottle", "nothing recorded")
        self.assertEqual(self.audit_count(), count)
        self.assert_not_in_force("web-2")

    def test_a_rejection_rewritten_out_of_sight_still_refuses(self) -> None:
        """A sidecar on the mount writes the file: the rejection's entry now names another bottle (its trigger
        dropped and made again), so no lookup under web-1's name finds it; the log is not whole, and that refuses."""
        queue = self.store.for_bottle("web-1")
        filed = queue.submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", None)
        decide(filed.id, STATUS_REJECTED, "no", store=self.store)
        queue.archive(filed.id)
        queue.heartbeat()
        count = self.audit_count()
        conn = sqlite3.connect(self.store.db.path)
        try:
            trigger = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log_no_update'").fetchone()[0]
            conn.execute("DROP TRIGGER audit_log_no_update")
            conn.execute("UPDATE audit_log SET queue_key = 'web-9' WHERE proposal_id = ?", (filed.id,))
            conn.execute(trigger)
            conn.commit()
        finally:
            conn.close()
        result = self.run_cli("bottles", "routes", "web-1", str(self.path))
        self.assert_clean_error(result, 2, "may be out of sight", "nothing recorded")
        self.assertEqual(self.audit_count(), count)
        self.assert_not_in_force("web-1")

    def test_a_revoked_file_is_not_recorded_again(self) -> None:
        """BROKE before the fix (hostile review 57): the operator revoked the grant of EVIL, which the agent had
        proposed and left in the checkout's routes file, and the next 'bottles routes' (or 'prepare
        --routes-file') recorded it as approved again at once, in the operator's name: evil-exfil in force again,
        read against none as every host new, which no revocation stands against."""
        first = self.tmp / "first.yaml"
        first.write_text(FIRST, encoding="utf-8")
        self.assertEqual(self.run_cli("bottles", "routes", "web-1", str(first)).returncode, 0)
        filed = self.store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", FIRST)
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        grant = self.grant_of(filed.id)
        self.assertEqual(self.run_cli("grants", "revoke", grant[:8], "--reason", "evil-exfil must go").returncode, 0)
        count = self.audit_count()
        for command in (("bottles", "routes", "web-1", str(self.path)),
                        ("prepare", "web-1", "--backend", "docker", "--routes-file", str(self.path))):
            with self.subTest(command=command[0]):
                result = self.run_cli(*command)
                self.assert_clean_error(result, 2, "this file's grant for web-1", filed.short_id, "was revoked by",
                                        "nothing recorded")
                revoker = AuditStore(database=self.store.db).entries("web-1", limit=1)[0]  # who revoked it, and when
                self.assertIn(f"was revoked by {revoker.actor} at {revoker.ts}", result.stderr)
                self.assertEqual(self.audit_count(), count)
                self.assert_not_in_force("web-1")
        # Approved again when the bottle proposes it: the operator's answer, and the launch records it again.
        again = self.store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, EVIL, "please", None)
        decide(again.id, STATUS_APPROVED, "fine after all", store=self.store)
        result = self.run_cli("bottles", "routes", "web-1", str(self.path))
        self.assertEqual((result.returncode, result.stderr), (0, ""))

    def test_a_revocation_between_the_check_and_the_filing_refuses(self) -> None:
        """Hostile review 57's race, made to happen: prepare checks the launch file before it prepares, then files
        it, walking only the entries its check had not. The operator revokes the file's grant in between. Held,
        because a check that finds the file approved and in force walks nothing for the filing to skip (it
        returns 0): the filing walks the whole log and finds the revocation. A check that walked further found
        no grant of the file in force, so none left to revoke (an ended grant is refused by 'grants revoke')."""
        filed = self.store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", None)
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        self.store.for_bottle("web-1").archive(filed.id)  # as the sidecar does once its agent has the answer
        checked = check_launch_routes(self.store, "web-1", EVIL)  # prepare's look: the approval, in force
        self.assertEqual(self.run_cli("grants", "revoke", self.grant_of(filed.id)[:8], "--reason",
                                      "evil-exfil must go").returncode, 0)
        count = self.audit_count()
        with self.assertRaises(ValidationError) as refused:
            record_launch_routes(self.store, "web-1", EVIL, checked=checked)
        self.assertIn("was revoked by", str(refused.exception))
        self.assertIn("nothing recorded", str(refused.exception))
        self.assertEqual(self.audit_count(), count)
        self.assert_not_in_force("web-1")

    def test_a_revocation_between_the_check_and_the_filing_refuses_with_no_proposal_answering(self) -> None:
        """BROKE before the fix (hostile review 59): as above, but the sidecar first rewrote the approved
        proposal's payload, so no proposal still answered the file and prepare's check found its approval by the
        log alone, walked on and returned the last entry it walked; the operator's revocation came after that, the
        filing walked only the entries since, found no answer on the file there, and recorded it approved again."""
        filed = self.store.for_bottle("web-1").submit(TOOL_EGRESS_BLOCK, EVIL, "I need it", None)
        decide(filed.id, STATUS_APPROVED, "ok", store=self.store)
        grant = self.grant_of(filed.id)
        conn = sqlite3.connect(host_db_path(), isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.execute("UPDATE proposals SET payload = payload || ' ' WHERE id = ?", (filed.id,))
        finally:
            conn.close()
        checked = check_launch_routes(self.store, "web-1", EVIL)
        self.assertNotEqual(checked, 0)  # it walked the log, and the filing need not again
        self.assertEqual(self.run_cli("grants", "revoke", grant[:8], "--reason", "evil-exfil must go").returncode, 0)
        count = self.audit_count()
        with self.assertRaises(ValidationError) as refused:
            record_launch_routes(self.store, "web-1", EVIL, checked=checked)
        self.assertIn("was revoked by", str(refused.exception))
        self.assertEqual(self.audit_count(), count)
        self.assert_not_in_force("web-1")

    def test_a_file_replaced_by_a_newer_one_is_recorded_again(self) -> None:
        """Approving a newer file revokes the older one's grant (replaced): no word of the operator's against it,
        so launching with the older file again records it, as before."""
        first = self.tmp / "first.yaml"
        first.write_text(FIRST, encoding="utf-8")
        self.assertEqual(self.run_cli("bottles", "routes", "web-1", str(first)).returncode, 0)
        self.assertEqual(self.run_cli("bottles", "routes", "web-1", str(self.path)).returncode, 0)
        result = self.run_cli("prepare", "web-1", "--backend", "docker", "--routes-file", str(first))
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertIn("recorded as approved", result.stdout)

    def grant_of(self, proposal_id: str) -> str:
        with self.store.db.read() as conn:
            return str(conn.execute("SELECT id FROM grants WHERE proposal_id = ?", (proposal_id,)).fetchone()[0])
