"""A grant hidden from a standing rejection while it was made, and shown again after (review 13).

The file is the writer's word: a sidecar on the mount (any bottle's) can
write it, where the audit log is the host's. Before the fix next to this
test, ``grants.end_grants_rejected_in`` chose the grants to end by the row's
``revoked_at`` (and ``ends_at``, ``tool``, bottle). Attack, measured: web-1's
grant for pastebin.com, approved by the operator; a sidecar on the mount set
the row's ``revoked_at`` (the grants trigger lets a revocation be written);
the operator typed ``rules add --all-bottles --host pastebin.com --reject``,
which said it ended nothing; the sidecar put the row back (trigger dropped and
made again). The relay then proved the grant (its approval entry matches, no
revocation entry names it) and passed it on, 'audit verify' found nothing, and
pastebin.com stayed open to web-1 under a standing rejection of it.
Now the grants a rejection ends are chosen by what the audit log records of
them too (their approval entries, less the grants a revocation entry names),
so the relay refuses the grant put back and 'audit verify' names the
revocation the row no longer says; what a rule ended is read from its
revocation entries, not the rows' ``revoke_seq``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.relay.proofs import Proofs
from tests.helpers.support import TempDirTest


class HiddenGrantTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = host_db_path()
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def raw(self, *statements: str) -> None:
        """What a sidecar on the mount writes into the file, past bot-bottle."""
        conn = sqlite3.connect(Path(self.db), isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    def relay_passes(self, bottle: str) -> list[str]:
        """The grants web-1's relay passes on now, proven against the audit log."""
        with QueueStore(self.db, migrate_schema=False) as fresh:
            live = fresh.for_bottle(bottle).live_grants(TOOL_EGRESS_ALLOW)
            return [g.id for g in Proofs(fresh.db, lambda line: print(line, file=sys.stderr)).grants(bottle, live)]

    def test_a_grant_hidden_while_the_rejection_is_made_is_ended_too(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": "pastebin.com"}), "logs")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        grant = GrantStore(database=self.store.db).for_proposal(proposal.id)
        assert grant is not None
        self.assertEqual(self.relay_passes("web-1"), [grant.id])
        with sqlite3.connect(Path(self.db)) as conn:
            (trigger,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'grants_immutable'").fetchone()
        conn.close()
        self.raw(f"UPDATE grants SET revoked_at = '2026-01-01T00:00:00.000000Z', revoked_by = 'x', "
                 f"revoke_reason = 'x', revoke_seq = 1 WHERE id = '{grant.id}'")
        added = self.run_cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.raw("DROP TRIGGER grants_immutable",
                 f"UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, revoke_seq = NULL "
                 f"WHERE id = '{grant.id}'", trigger)
        self.assertEqual(self.relay_passes("web-1"), [], added.stdout)
        self.assertIn(f"it ended grant {grant.id[:8]}", added.stdout)
        verified = AuditStore(database=self.store.db).verify()
        self.assertFalse(verified.ok)  # the revocation the row no longer says is named
        self.assertIn(f"grant {grant.id} was revoked", verified.problem or "")
