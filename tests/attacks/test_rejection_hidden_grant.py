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

import sys

from bot_bottle.audit_store import AuditStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from bot_bottle.relay.proofs import Proofs
from tests.helpers.host_grants import HostGrantsCase


class HiddenGrantTest(HostGrantsCase):

    def relay_passes(self, bottle: str) -> list[str]:
        """The grants web-1's relay passes on now, proven against the audit log."""
        with QueueStore(self.db, migrate_schema=False) as fresh:
            live = fresh.for_bottle(bottle).live_grants(TOOL_EGRESS_ALLOW)
            return [g.id for g in Proofs(fresh.db, lambda line: print(line, file=sys.stderr)).grants(bottle, live)]

    def test_a_grant_hidden_while_the_rejection_is_made_is_ended_too(self) -> None:
        grant = self.approve("web-1", {"host": "pastebin.com"})
        self.assertEqual(self.relay_passes("web-1"), [grant])
        with self.store.db.read() as conn:
            (trigger,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'grants_immutable'").fetchone()
        self.raw("UPDATE grants SET revoked_at = '2026-01-01T00:00:00.000000Z', revoked_by = 'x', "
                 "revoke_reason = 'x', revoke_seq = 1 WHERE id = :id", {"id": grant})
        added = self.cli("rules", "add", "--all-bottles", "--host", "pastebin.com", "--reject")
        self.raw("DROP TRIGGER grants_immutable")
        self.raw("UPDATE grants SET revoked_at = NULL, revoked_by = NULL, revoke_reason = NULL, revoke_seq = NULL "
                 "WHERE id = :id", {"id": grant})
        self.raw(trigger)
        self.assertEqual(self.relay_passes("web-1"), [], added)
        self.assertIn(f"it ended grant {grant[:8]}", added)
        verified = AuditStore(database=self.store.db).verify()
        self.assertFalse(verified.ok)  # the revocation the row no longer says is named
        self.assertIn(f"grant {grant} was revoked", verified.problem or "")
