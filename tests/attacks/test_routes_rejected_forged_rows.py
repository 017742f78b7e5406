"""A sidecar's rule rows make every screen slow through the routes files' ``[rejected]`` caution.

A routes file pending for a bottle is read against the standing rejections in force for it
(``audit.routes_approved.routes_base``), each rule row proven against the sealed audit log
(``audit.rule_proofs.standing_rejections``). A sidecar can write any row: 40,000 rejecting rule rows for web-1
(none proven, none deciding) made each of its pending routes files prove all 40,000 again, at every look of
every screen ('proposals list' of five such files: 8 s with 60,000 rows, measured by hostile review 70). The
rejections read for a bottle are now kept for the connection until the file changes or one of them ends
(``routes_approved._rejections_in_force``). Counted here, not timed: a list of five files proves the rules once.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import sqlite3
from unittest import mock

from bot_bottle.audit import routes_approved
from bot_bottle.cli import main as cli_main
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.policy.subjects import subject_sha256
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.helpers.support import TempDirTest

COLUMNS = ("id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, ends_at, created_by, "
           "proposal_id, audit_seq")
ROWS = 500
FILES = 5


class ForgedRuleRowsTest(TempDirTest):
    def test_a_list_of_routes_files_proves_the_rejections_once(self) -> None:
        store = QueueStore(None)
        self.addCleanup(store.close)
        record_launch_routes(store, "web-1", "routes:\n- pypi.org\n")
        for index in range(FILES):
            store.submit("web-1", TOOL_EGRESS_BLOCK, f"routes:\n- c{index}.example\n", "mirrors",
                         current_file="routes:\n- pypi.org\n")
        said = self.run_cli("rules", "add", "--bottle", "web-1", "--host", "c0.example", "--reject", "--json")
        self.assertEqual(said.returncode, 0, said.stderr)
        rule = str(json.loads(said.stdout)["id"])[:8]
        raw = sqlite3.connect(str(store.db.path))  # as the sidecar writes: its triggers are the file's too
        for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            raw.execute(f'DROP TRIGGER "{name}"')
        seq = int(raw.execute("SELECT max(seq) FROM audit_log").fetchone()[0])
        rows = []
        for index in range(ROWS):
            subject = {"host": f"h{index}.example", "methods": [], "paths": []}
            rows.append((secrets.token_hex(16), "web-1", TOOL_EGRESS_ALLOW,
                         json.dumps(subject, sort_keys=True, separators=(",", ":")),
                         subject_sha256(TOOL_EGRESS_ALLOW, subject), 0, "reject", "never",
                         "2020-01-01T00:00:00.000000Z", None, "ann", None, seq + 1000 + index))
        raw.executemany(f"INSERT INTO rules ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        raw.commit()
        raw.close()
        with mock.patch.object(routes_approved, "standing_rejections",
                               wraps=routes_approved.standing_rejections) as proved, \
                contextlib.redirect_stdout(io.StringIO()) as listed, contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(cli_main(["proposals", "list", "--db", str(store.db.path)]), 0)
        self.assertEqual(listed.getvalue().count("[rejected]"), 1, listed.getvalue())  # the real rule's alone
        # BROKE before: once for each of the five files, every row of the bottle's proven again each time.
        self.assertEqual(proved.call_count, 1)
        shown = self.run_cli("proposals", "list", "--json")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        self.assertIn(f"which standing rejection {rule} rejects for web-1", shown.stdout)
