"""What the dashboard says on the operator's terminal holds no escape sequence a row put there.

``bot-bottle dashboard`` prints a line on its terminal (stderr) for each rule
the keeper finds the audit log does not prove, for each revocation made on
its pages (the rule's or grant's bottle and effect, as the row has them), and
for each failure of a look. A sidecar on the mount writes a rule row (CHECK
constraints off) whose id begins with ESC [2J ESC [H. Before the fix next to
these tests, measured with the real command: the keeper's line "rule <id>
decides nothing ..." reached the terminal raw, clearing the operator's screen
(the earlier lines with it); an OSC 52 in a row's bottle, logged when the
operator revoked that row on the page, would have set their clipboard. Now
each line goes through the sanitizer, as every other line bot-bottle prints.
"""

from __future__ import annotations

import sqlite3
import time

from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import EFFECT_REJECT, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import utc_now
from tests.helpers.dashboard import start_dashboard
from tests.helpers.support import TempDirTest, wait_until


class DashboardLogEscapesTest(TempDirTest):
    def test_a_forged_rules_id_reaches_the_terminal_sanitized(self) -> None:
        path = self.tmp / "host.db"
        with QueueStore(path) as store:
            real = GrantStore(database=store.db).add_rule(
                queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_REJECT,
                subject={"host": "pastebin.com", "methods": [], "paths": []}, notes="no paste sites",
                created_by="ann", ends_at=None, now=utc_now())
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")
            raw.execute("INSERT INTO rules (id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, "
                        "created_at, ends_at, created_by, audit_seq) SELECT :id, queue_key, tool, subject, "
                        "subject_sha256, pattern, effect, notes, created_at, ends_at, created_by, 999999 FROM rules "
                        "WHERE id = :real", {"id": "\x1b[2J\x1b[H" + "0" * 25, "real": real.id})
        finally:
            raw.close()
        process = start_dashboard(self, path)
        with QueueStore(path) as store:  # a commit: the keeper looks at once
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
            wait_until(lambda: store.response(proposal.id) is not None, 30, what="the standing rejection")
        time.sleep(0.5)
        process.terminate()
        _, errors = process.communicate(timeout=15)
        self.assertIn("decides nothing", errors)
        self.assertNotIn("\x1b", errors, "BROKE before the fix: the row's escape sequence reached the terminal raw")
