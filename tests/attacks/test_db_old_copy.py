"""Attack: an older copy of the database renamed over it while no host process runs revives a revoked grant.

A sidecar on the mount keeps a copy of the database (``VACUUM INTO``) while a
grant is in force; the operator revokes the grant and every host process
exits; the sidecar renames its copy over ``bot-bottle.db`` (no symbolic
link: a hard link of the copy, renamed). Every host process started then
opens the old copy at the right path, under the right anchor. The next
decision and ``audit verify`` see the log end before the anchor, but a relay
started then held each grant only to its own approval entry, which the old
copy still has and which is sealed: it passed the revoked grant on to the
bottle, whose requests went through. A log that does not reach the host's
anchor now proves no grant and no approval to the relay.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bot_bottle.cli.dashboard.state import Dashboard
from bot_bottle.cli.tui.app import SuperviseTUI
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from tests.helpers.kept_copy import grant_copied_then_revoked
from tests.helpers.support import REPO, TempDirTest

# A relay's proofs, in a process started after the swap: the grants (and the decision) it would pass on.
_RELAY_STARTED_NOW = """
import json, sys
from bot_bottle.queue_store import QueueStore
from bot_bottle.relay.proofs import Proofs
from bot_bottle.records import TOOL_EGRESS_ALLOW
with QueueStore(None) as store:
    bottle = store.for_bottle("web-1")
    proofs = Proofs(store.db, lambda line: print(line, file=sys.stderr))
    live = bottle.live_grants(TOOL_EGRESS_ALLOW)
    passed = proofs.grants("web-1", live)
    response = proofs.response("web-1", bottle.response(sys.argv[1]))
    print(json.dumps({"live": [g.id for g in live], "passed": [g.id for g in passed],
                      "response": None if response is None else response.status}))
"""


class OlderCopyRenamedOverTheDatabaseTest(TempDirTest):
    def test_a_relay_started_on_the_old_copy_passes_on_no_revoked_grant(self) -> None:
        self.assert_nothing_passed_on(lambda db, kept: None)

    def test_the_anchors_seal_copied_into_the_old_copy_alone_proves_nothing(self) -> None:
        """The sidecar reads the newest seal in the file (the anchor's) and adds it, without its entry, to its copy."""
        def add_the_newest_seal(db: Path, kept: Path) -> None:
            real = sqlite3.connect(db)
            seq, mac = real.execute("SELECT seq, mac FROM audit_seal ORDER BY seq DESC LIMIT 1").fetchone()
            real.close()
            copy = sqlite3.connect(kept, isolation_level=None)
            copy.execute("PRAGMA foreign_keys = OFF")
            copy.execute("DROP TRIGGER audit_seal_order")
            copy.execute("INSERT INTO audit_seal (seq, mac) VALUES (?, ?)", (seq, mac))
            copy.close()
        self.assert_nothing_passed_on(add_the_newest_seal)

    def old_copy_in_place(self, doctor: Callable[[Path, Path], None]) -> tuple[str, str]:
        """A grant made, the database copied (as a sidecar on the mount can), the grant revoked, and the copy
        (``doctor``-ed first) renamed over the database: the revoked grant's id and its proposal's."""
        grant, proposal_id = grant_copied_then_revoked(self)
        db = host_db_path()
        doctor(db, db.parent / "kept.db")
        os.link(db.parent / "kept.db", db.parent / "kept-link.db")  # no symbolic link anywhere
        os.rename(db.parent / "kept-link.db", db)
        self.assertFalse(db.is_symlink())
        return grant, proposal_id

    def assert_nothing_passed_on(self, doctor: Callable[[Path, Path], None]) -> None:
        grant, proposal_id = self.old_copy_in_place(doctor)
        env = {**os.environ, "HOME": str(self.home), "PYTHONDONTWRITEBYTECODE": "1"}
        relay = subprocess.run([sys.executable, "-c", _RELAY_STARTED_NOW, proposal_id], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(relay.returncode, 0, relay.stderr[-800:])
        seen = json.loads(relay.stdout)
        self.assertEqual(seen["live"], [grant], "the old copy should still hold the grant as live")
        self.assertEqual(seen["passed"], [], "the relay passed on a grant the operator revoked")
        self.assertIsNone(seen["response"], "an approval from a log short of its anchor was passed on")
        self.assertIn("does not reach the host's anchor", relay.stderr)
        verified = self.run_cli("audit", "verify")
        self.assertNotEqual(verified.returncode, 0, verified.stdout)

    def test_the_operators_screens_say_the_old_copy_is_behind_its_anchor(self) -> None:
        """grants list, proposals list, the TUI and the dashboard: the revoked grant the old copy still lists is
        never shown without the warning (the dashboard shows nothing from it at all)."""
        grant, _ = self.old_copy_in_place(lambda db, kept: None)
        listed = self.run_cli("grants", "list")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(grant[:8], listed.stdout)
        self.assertIn("does not reach the host's anchor", listed.stderr)
        self.assertIn("nothing can be decided on it", listed.stderr)
        listed = self.run_cli("proposals", "list")
        self.assertIn("does not reach the host's anchor", listed.stderr)
        with QueueStore(None) as store:
            tui = SuperviseTUI(screen=None, store=store)
            tui.refresh()
            self.assertIn("does not reach the host's anchor", tui.message)
        dashboard = Dashboard(None, log=lambda line: None)
        self.addCleanup(dashboard.close)
        problem = dashboard.file_problem()
        assert problem is not None
        self.assertEqual(problem[0], "The database does not reach its audit anchor")
        self.assertIn("nothing is shown or decided from it", problem[1])
