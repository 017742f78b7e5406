"""One decision the file refuses stops no other standing decision.

A sidecar on the mount rebuilds ``rules`` without its key (as a copy: the
rows, and so the operator's rules, stay as they were), so that a grant naming
a rule (``grants.rule_id REFERENCES rules (id)``) can no longer be written:
"foreign key mismatch". It then files, in this order, an ask the operator's
approving rule matches and one the operator's standing rejection matches.
Before the fix next to these tests, measured with the real dashboard as the
keeper: the approval failed, and the whole look with it, every look, so the
standing rejection of pastebin.com never answered (the ask waited for the
operator, a rule they had made to say no for them silently not applied) and
nothing pending expired. Now the approval waits for the operator, the
rejection is made, and the failure is still said.
"""

from __future__ import annotations

import sqlite3

from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import EFFECT_APPROVE, EFFECT_REJECT, STATUS_REJECTED, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import later, utc_now
from tests.helpers.dashboard import start_dashboard
from tests.helpers.support import TempDirTest


class KeeperIsolationTest(TempDirTest):
    def test_a_failed_approval_does_not_stop_a_standing_rejection(self) -> None:
        path = self.tmp / "host.db"
        with QueueStore(path) as store:
            grants = GrantStore(database=store.db)
            now = utc_now()
            for host, effect in (("*.example.com", EFFECT_APPROVE), ("pastebin.com", EFFECT_REJECT)):
                grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern="*" in host, effect=effect,
                                subject={"host": host, "methods": [], "paths": []}, notes="", created_by="ann",
                                ends_at=later(now, 3600) if effect == EFFECT_APPROVE else None, now=now)
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            # The copy has no key, so the grants table's reference to rules (id) fails every approval ("foreign
            # key mismatch"); a row the migration's CHECK refuses keeps the host from rebuilding it as made
            # (schema.table_rebuild), which would end the mismatch.
            for statement in ("CREATE TABLE rules_copy AS SELECT * FROM rules", "DROP TABLE rules",
                              "ALTER TABLE rules_copy RENAME TO rules", "INSERT INTO rules (id) VALUES ('x')"):
                raw.execute(statement)
        finally:
            raw.close()
        process = start_dashboard(self, path)
        with QueueStore(path) as store:
            bottle = store.for_bottle("web-1")
            approved = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "docs.example.com"}', "docs")
            rejected = bottle.submit(TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
            response = bottle.wait_for_response(rejected.id, 12)
            self.assertIsNotNone(response, "BROKE before the fix: the standing rejection was never applied")
            assert response is not None
            self.assertEqual(response.status, STATUS_REJECTED)
            self.assertIsNone(store.response(approved.id), "the approval the file refused waits for the operator")
        process.terminate()
        _, errors = process.communicate(timeout=15)
        self.assertIn("foreign key mismatch", errors)  # the failure is still said
