"""A revoked grant of a bottle behind the relay, brought back by a sidecar on the mount: review 16's attack.

The relay passes a grant on only once the audit log proves it, and a grant
whose revocation the log records is not passed on, whatever its row says.
Before the fix, the relay read the log's revocations once and then only the
entries added since, but read them whole again from scratch when the entry
it had read last was changed: a sidecar on the host's mount (Docker, beside
a VM bottle on the relay) rewrote the revocation entry to name another grant
(it was the last entry), cleared the row's revocation, and the relay, having
forgotten the revocation it had seen, passed the grant on again: the VM's
egress helper let the revoked route through. Measured with the real relay,
the real ``grants revoke`` and the helper in a process of its own.

What the relay has once read stays read: a revocation it saw is never
forgotten while it runs. And the same rewrite, then a restart of the relay
(which reads the log afresh), brought the grant back too: now a grant is
passed on only while every entry after its own, to the anchor's, is there
and whole as the host sealed it. The same held an approving rule the
operator revoked: rewritten so, it approved again in the next process that
applied the rules (``proposals list``); it now decides only on the same
condition (``audit.whole``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from tests.helpers.relay_fixture import free_port, relay_env, start_relay_process, stop_process
from tests.helpers.support import REPO, TempDirTest, drop_triggers

# The VM bottle's egress helper, in a process of its own, asking through the relay (no cache: asked afresh).
HELPER = """
import sys
from bot_bottle.sidecar.egress import EgressGrants
from bot_bottle.sidecar.transport import find_transport
print(EgressGrants(find_transport(None, sys.argv[1]).open("vm-1"), ttl=0).allows_route("pastebin.com", "POST", "/"))
"""


class ForgottenRevocationTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        QueueStore(self.db).close()
        port = free_port()
        self.relay = start_relay_process(self.home, port)
        self.addCleanup(lambda: stop_process(self.relay))
        with RelayCredentials(self.db) as credentials:
            token = credentials.mint("vm-1")
        endpoint = RelayEndpoint(url=f"http://127.0.0.1:{port}/", token=token, bottle="vm-1")
        self.relay_file = write_endpoint_file(bottle_relay_dir("vm-1"), endpoint)
        self.port = port
        with QueueStore(self.db) as store:
            proposal = store.for_bottle("vm-1").submit(TOOL_EGRESS_ALLOW, json.dumps({"host": "pastebin.com"}),
                                                       "share a log")
            decide(proposal.id, STATUS_APPROVED, "for the log", store=store)

    def helper_allows(self) -> bool:
        done = subprocess.run([sys.executable, "-c", HELPER, str(self.relay_file)], env=relay_env(self.home),
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.strip() == "True"

    def revoke_then_rewrite(self) -> None:
        """The operator revokes the grant (the relay reads it); a sidecar on the mount then rewrites the log's
        revocation to name another grant and clears the row's revocation."""
        self.assertTrue(self.helper_allows(), "the grant, before its revocation")
        with GrantStore(self.db) as grants:
            (grant,) = grants.listing("vm-1")
        revoked = self.run_cli("grants", "revoke", grant.short_id, "--reason", "it leaks")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertFalse(self.helper_allows(), "revoked: the relay read the revocation")
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                                    "('audit_log', 'grants')").fetchall()
            for (name,) in triggers:
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.execute("UPDATE audit_log SET details = json_set(details, '$.grant', :other) "
                         "WHERE action = 'grant-revoked' AND json_extract(details, '$.grant') = :id",
                         {"other": "0" * 32, "id": grant.id})
            changed = conn.execute("UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                                   "revoke_seq = NULL WHERE id = :id", {"id": grant.id}).rowcount
            self.assertEqual(changed, 1)
        finally:
            conn.close()

    def test_a_rewritten_revocation_does_not_bring_the_grant_back(self) -> None:
        self.revoke_then_rewrite()
        self.assertFalse(self.helper_allows(), "the relay forgot the revocation it had read and passed the grant on")
        # Once more, with the entry the relay had read last changed too (a later entry, as the log grows).
        with QueueStore(self.db) as store:
            later = store.for_bottle("vm-1").submit(TOOL_EGRESS_ALLOW, json.dumps({"host": "example.org"}), "x")
            decide(later.id, STATUS_APPROVED, "ok", store=store)
        self.assertFalse(self.helper_allows())
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            drop_triggers(conn, "audit_log")  # made again by the decision's write (schema.guard)
            conn.execute("UPDATE audit_log SET notes = notes || '.' WHERE seq = (SELECT max(seq) FROM audit_log)")
        finally:
            conn.close()
        self.assertFalse(self.helper_allows(), "the relay read the log again from scratch and forgot the revocation")

    def test_a_rewritten_revocation_does_not_bring_the_grant_back_across_a_relay_restart(self) -> None:
        """A relay started after the rewrite read the log afresh and passed the grant on: now the entries after
        the grant's own, to the anchor's, must each be there and whole as sealed, or no grant is passed on."""
        self.revoke_then_rewrite()
        stop_process(self.relay)
        self.relay = start_relay_process(self.home, self.port)
        self.assertFalse(self.helper_allows(), "a restarted relay passed the revoked grant on")

    def test_a_row_renamed_while_it_is_revoked_does_not_bring_the_grant_back(self) -> None:
        """BROKE before the fix (hostile review 57): a sidecar on the mount renamed the grant's row (another 32
        hex digits) before the operator revoked it, and put it back after. The revocation entry named the id the
        row had then, sealed and whole: the grant the approval made was revoked by no entry, and the relay
        passed it on again."""
        with GrantStore(self.db) as grants:
            (grant,) = grants.listing("vm-1")
        renamed = "ab" * 16
        self.assertTrue(self.helper_allows())
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = "
                                        "'grants'").fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            conn.execute("UPDATE grants SET id = :new WHERE id = :id", {"new": renamed, "id": grant.id})
            revoked = self.run_cli("grants", "revoke", renamed[:8], "--reason", "it leaks")  # as 'grants list' shows it
            self.assertEqual(revoked.returncode, 0, revoked.stderr)
            drop_triggers(conn, "grants")  # made again by the revocation's write (schema.guard)
            conn.execute("UPDATE grants SET id = :id, revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                         "revoke_seq = NULL WHERE id = :new", {"new": renamed, "id": grant.id})
        finally:
            conn.close()
        self.assertFalse(self.helper_allows(), "the grant the approval made was passed on again")
        notes = self.run_cli("audit", "list", "--json")
        self.assertIn(f"(revoked as grant {renamed[:8]}, whose row claims it)", notes.stdout)

    def rewrite_grant_row(self, sql: str, grant_id: str) -> None:
        """What a sidecar on the mount does to the grants table, its triggers dropped (its CHECKs kept)."""
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = "
                                        "'grants'").fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            self.assertEqual(conn.execute(sql, {"id": grant_id}).rowcount, 1)
        finally:
            conn.close()

    def test_a_row_marked_revoked_or_ended_does_not_stop_the_revocation(self) -> None:
        """BROKE before the fix (hostile review 57): a sidecar on the mount marked the grant's row revoked (or
        ended) before the operator revoked it; 'grants revoke' said "revoked already" (or "nothing to revoke")
        and recorded nothing, and once the row was put back the relay passed the grant on again."""
        with GrantStore(self.db) as grants:
            (grant,) = grants.listing("vm-1")
        marks = {"revoked": "revoked_at = starts_at, revoked_by = 'root@vm', revoke_seq = 1, revoke_reason = 'x'",
                 "ended": "ends_at = substr(starts_at, 1, 20) || '999999Z'"}
        for which in ("ended", "revoked"):  # the second finds the first's revocation, sealed
            with self.subTest(mark=which):
                self.rewrite_grant_row(f"UPDATE grants SET {marks[which]} WHERE id = :id", grant.id)
                revoked = self.run_cli("grants", "revoke", grant.short_id, "--reason", "it leaks")
                self.rewrite_grant_row("UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_seq = NULL, "
                                       f"revoke_reason = NULL, ends_at = '{grant.ends_at}' WHERE id = :id", grant.id)
                self.assertFalse(self.helper_allows(), "the grant was passed on again, its revocation refused")
                if which == "ended":
                    self.assertEqual(revoked.returncode, 0, revoked.stderr)
                else:
                    self.assertIn("was revoked already, at", revoked.stderr)
                    self.assertIn("(audit entry", revoked.stderr)


class RevivedRuleTest(TempDirTest):
    """An approving rule the operator revoked, brought back the same way: the next 'proposals list' (a process
    reading the log afresh, which applies the rules) let it approve the agent's pastebin.com again, with a grant
    the host sealed, which the relay passes on to any bottle."""

    def test_a_rewritten_rule_revocation_does_not_approve_again(self) -> None:
        db = host_db_path()
        QueueStore(db).close()
        added = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "pastebin.com", "--for", "7d", "--notes",
                             "pastes")
        self.assertEqual(added.returncode, 0, added.stderr)
        (rule,) = json.loads(self.run_cli("rules", "list", "--json").stdout)
        revoked = self.run_cli("rules", "revoke", rule["id"][:8], "--reason", "no more pastes")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        conn = sqlite3.connect(db, isolation_level=None)  # the sidecar on the mount
        try:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                                        "('audit_log', 'rules')").fetchall():
                conn.execute(f'DROP TRIGGER "{name}"')
            self.assertEqual(conn.execute(
                "UPDATE audit_log SET details = json_set(details, '$.rule', :other) WHERE action = 'rule-revoked' "
                "AND json_extract(details, '$.rule') = :id", {"other": "0" * 32, "id": rule["id"]}).rowcount, 1)
            conn.execute("UPDATE rules SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, "
                         "revoke_seq = NULL WHERE id = :id", {"id": rule["id"]})
        finally:
            conn.close()
        with QueueStore(db) as store:
            proposal = store.for_bottle("web-1").submit(TOOL_EGRESS_ALLOW, json.dumps({"host": "pastebin.com"}),
                                                        "a paste")
        listed = self.run_cli("proposals", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        with QueueStore(db) as store:
            self.assertIsNone(store.response(proposal.id), "the revoked rule approved pastebin.com again")
        with GrantStore(db) as grants:
            self.assertEqual(grants.listing("web-1"), [])
