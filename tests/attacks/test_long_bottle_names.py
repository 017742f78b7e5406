"""A bottle named with 64 characters pushes every other bottle's grants off the command line's lists.

A bottle's slug may be 64 characters long (``records.QUEUE_KEY_RE``), and a
sidecar on the mount files under whatever slug it writes into the file. The
command line's tables (``common.print_table``) sized the BOTTLE column to its
longest cell, for every row: one proposal from such a bottle left the
others' GRANTS 15 columns at 99 ('files.pythonho…'), 7 at 120 ('pastebi…')
and none at 80, in 'proposals list' and 'supervise --once'; 'grants list'
and 'rules list' the same for what a grant or a rule lets through. The
operator's own bottles' proposals were listed with no word of what approving
them grants. The TUI cuts a bottle to 12 columns (16 in its grants and rules
views); now the command line's lists cut it to ``common.BOTTLE_COLUMNS``
on a terminal too (piped, every cell whole), and the TUI's grants view,
which padded it to 16 but never cut it, cuts it as its rules view does.
"""

from __future__ import annotations

import shlex
import sys

from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import REMEMBER_BOTTLE, STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import utc_now
from tests.helpers.dashboard import BrowserCase
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar
from tests.helpers.terminal import Terminal

LONG = "a" * 64
PASTE = "pastebin.com (POST; every path)"
WHEELS = "files.pythonhosted.org (GET; every path)"


class LongBottleNameTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "long.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.paste = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "methods": ["POST"]}',
                                       "share a log")
        self.wheels = self.store.submit("web-1", TOOL_EGRESS_ALLOW,
                                        '{"host": "files.pythonhosted.org", "methods": ["GET"]}', "wheels")
        self.long = file_as_a_sidecar(self.db, LONG, TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs",
                                      created_at=utc_now())

    def shown(self, width: int, *command: str) -> str:
        """What ``bot-bottle COMMAND --db DB`` prints on a terminal ``width`` columns wide (tmux)."""
        line = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "bot_bottle", *command, "--db",
                                                       str(self.db)))
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                              f"PAGER=cat {line}; echo DONE; sleep 30", width=width, height=30)
        return term.wait_for("DONE")

    def row(self, screen: str, short_id: str) -> str:
        return next((line for line in screen.splitlines() if line.startswith(short_id)), "")

    def test_the_lists_of_proposals_show_each_grant_beside_a_long_bottle_name(self) -> None:
        for width in (80, 99, 120):
            for command in (("proposals", "list"), ("supervise", "--once")):
                with self.subTest(width=width, command=command):
                    screen = self.shown(width, *command)
                    self.assertIn(PASTE, self.row(screen, self.paste.short_id), screen)
                    self.assertIn(WHEELS, self.row(screen, self.wheels.short_id), screen)
                    self.assertIn("docs.python.org", self.row(screen, self.long.short_id), screen)

    def test_the_lists_of_grants_and_rules_show_what_each_lets_through(self) -> None:
        for proposal in (self.paste, self.long):
            decide(proposal.id, STATUS_APPROVED, store=self.store, remember=REMEMBER_BOTTLE)
        with GrantStore(self.db) as grants:
            paste = grants.for_proposal(self.paste.id)
        assert paste is not None
        for width in (80, 120):
            with self.subTest(width=width):
                screen = self.shown(width, "grants", "list")
                self.assertIn(PASTE, self.row(screen, paste.short_id), screen)
                rules = self.shown(width, "rules", "list")
                self.assertIn("pastebin.com (POST; every path)",
                              next((line for line in rules.splitlines() if "web-2" in line), ""), rules)

    def test_piped_every_bottle_is_whole(self) -> None:
        done = self.run_cli("proposals", "list", "--db", str(self.db))
        self.assertIn(LONG, done.stdout)

    def test_the_tuis_grants_view_shows_the_grant_of_a_long_bottle(self) -> None:
        """The TUI's grants view padded the bottle to 16 columns but never cut it: at 80 columns a grant of the
        64-character bottle was listed with no word of what it lets through."""
        decide(self.long.id, STATUS_APPROVED, store=self.store)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; "
                   "sleep 30")
        term = Terminal(self, command, width=80, height=24)
        term.wait_for("2 pending")
        term.send("v")
        screen = term.wait_for("GRANTS  (BY)")
        with GrantStore(self.db) as grants:
            grant = grants.for_proposal(self.long.id)
        assert grant is not None
        row = next((line for line in screen.splitlines() if grant.short_id in line), "")
        self.assertIn("docs.python.org (any method; every path)", row, screen)


class LongBottleNameDashboardTest(BrowserCase):
    def test_the_inbox_does_not_scroll_sideways_for_a_long_bottle_name(self) -> None:
        """BROKE before the fix: at 360 px the inbox's bottle filter, a list naming every bottle, was as wide as
        the 64-character slug, and pushed the page 170 px past the window's edge (the page scrolled sideways,
        as the narrow layout promises it does not)."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com", "methods": ["POST"]}', "share")
        file_as_a_sidecar(self.path, LONG, TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs",
                          created_at=utc_now())
        self.log_in()
        self.browser.do("wait_text", text="2 pending")
        for width in (360, 600):
            with self.subTest(width=width):
                self.browser.do("size", width=width, height=800)
                self.open("/")
                shown = self.browser.script(
                    "const page = document.documentElement;"
                    "return {page: page.scrollWidth, window: page.clientWidth,"
                    " grants: Math.max(...Array.from(document.querySelectorAll('td.grants'))"
                    "  .map(cell => cell.getBoundingClientRect().right))}")
                self.assertLessEqual(shown["page"], shown["window"], f"the page scrolls sideways: {shown}")
                self.assertLessEqual(shown["grants"], shown["window"], shown)
        self.browser.do("size", width=1280, height=900)
