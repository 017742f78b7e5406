"""The TUI (in tmux) flags a routes file naming a host a standing rejection in force rejects, asks for a typed yes,
and records nothing where the rejection was made while it asked (review 68)."""

from __future__ import annotations

import shlex
import sys
import time

from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.cli.tui.app import GUARD_SEC
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import subject_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import EFFECT_REJECT, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from tests.helpers.support import REPO, TempDirTest
from tests.helpers.terminal import Terminal

BEFORE = "routes:\n- pypi.org\n- crates.io\n"
AFTER = BEFORE + "- static.crates.io\n"


class TuiRoutesRejectedTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "tui.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        record_launch_routes(self.store, "web-1", BEFORE)
        self.proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, AFTER, "crates mirror", current_file=BEFORE)

    def reject(self, host: str) -> str:
        with GrantStore(database=self.store.db) as grants:
            rule = grants.add_rule(queue_key="web-1", tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_REJECT,
                                   subject=subject_of(TOOL_EGRESS_ALLOW, f'{{"host": "{host}"}}'), notes="never",
                                   ends_at=None, created_by="operator")
        return rule.short_id

    def start(self) -> Terminal:
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; sleep 30")
        term = Terminal(self, command, width=200, height=40)
        term.wait_for("1 pending")
        time.sleep(GUARD_SEC + 0.3)
        return term

    def to_the_length(self, term: Terminal) -> None:
        term.send("a")
        term.wait_for("note (optional)")
        term.send("Enter")
        term.wait_for("for how long?")

    def test_the_row_the_detail_and_a_typed_yes(self) -> None:
        rule = self.reject("crates.io")
        term = self.start()
        self.assertIn("[rejected] routes file: adds static.crates.io", term.screen())
        term.send("Enter")
        term.wait_for(f"names crates.io, which standing rejection {rule} rejects for web-1")
        term.send("Escape")
        time.sleep(GUARD_SEC + 0.3)
        self.to_the_length(term)
        term.send("Enter")
        term.wait_for("grants a host a standing rejection rejects (rejected): type yes")
        term.send("no", "Enter")
        term.wait_for("approve cancelled: nothing recorded")
        self.assertIsNone(self.store.response(self.proposal.id))
        time.sleep(GUARD_SEC + 0.3)
        self.to_the_length(term)
        term.send("Enter")
        term.wait_for("type yes")
        term.send("yes", "Enter")
        term.wait_for(f"approved {self.proposal.short_id}")
        self.assertIsNotNone(self.store.response(self.proposal.id))

    def test_a_rejection_made_while_it_asks_records_nothing_and_the_row_is_read_again(self) -> None:
        term = self.start()
        self.assertNotIn("[rejected]", term.screen())
        self.to_the_length(term)
        self.reject("static.crates.io")  # meanwhile, from another screen
        term.send("Enter")
        term.wait_for("or a standing rejection for it was made or ended since")
        self.assertIsNone(self.store.response(self.proposal.id))
        term.wait_for("[rejected] routes file: adds static.crates.io")
