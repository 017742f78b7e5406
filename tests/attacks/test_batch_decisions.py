"""Several decisions in one command against a process that writes the database (review 18).

``proposals approve B A`` on a terminal shows and asks about each approval,
then records them in one transaction. A proposal decided already was not
asked about ("decide() says by whom"): the command read its response first,
outside the transaction. Measured before the fix, with the real command line
in tmux and the sidecar as a separate process on the same file: the sidecar
wrote a response row for B (the metadata service, [internal], typed yes),
so B was passed over unshown; it took the row away again while the operator
read A's screen, and the operator's "yes" to A recorded B's approval too,
grant and all, in the operator's name. Now a proposal decided already ends
the command before anything is asked, and nothing is recorded.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import REPO, TempDirTest
from tests.helpers.terminal import Terminal


def as_a_sidecar(db: Path, sql: str, *params: str) -> None:
    """``sql`` run by another process on the same file, with the triggers a sidecar can drop dropped."""
    script = textwrap.dedent("""
        import sqlite3, sys
        raw = sqlite3.connect(sys.argv[1], isolation_level=None)
        raw.execute("DROP TRIGGER IF EXISTS responses_no_delete")
        raw.execute(sys.argv[2], sys.argv[3:])
        raw.close()
    """)
    subprocess.run([sys.executable, "-c", script, str(db), sql, *params], check=True, timeout=30)


class DecidedAlreadyInABatchTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "host.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def test_a_response_row_that_comes_and_goes_is_not_approved_unseen(self) -> None:
        honest = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        metadata = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "169.254.169.254"}', "the cache")
        as_a_sidecar(self.db, "INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
                     "VALUES (?, 'approved', '', NULL, 'someone', '2026-12-06T00:00:00.000000Z')", metadata.id)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle proposals approve {metadata.short_id} "
                   f"{honest.short_id} --db {shlex.quote(str(self.db))}; echo EXIT=$?; sleep 30")
        term = Terminal(self, command, width=120, height=40)
        deadline = time.monotonic() + 15
        screen = term.settled()
        while f"approve {honest.short_id}" not in screen and "EXIT=" not in screen and time.monotonic() < deadline:
            screen = term.settled()
        self.assertNotIn(f"approve {metadata.short_id}", screen)  # never shown, never asked about
        if "EXIT=" not in screen:  # asked about the honest one: the sidecar takes its row away, the operator agrees
            as_a_sidecar(self.db, "DELETE FROM responses WHERE proposal_id = ?", metadata.id)
            term.send("y", "Enter")
            screen = term.wait_for("EXIT=")
        self.assertNotIn("EXIT=0", screen)
        self.assertIn(f"proposal {metadata.short_id} was already approved by someone", screen)
        self.assertIsNone(GrantStore(database=self.store.db).for_proposal(metadata.id))
        self.assertIsNone(self.store.response(honest.id))
