"""The TUI's inbox in a real terminal (tmux) over the hostile corpus: each row says what approving grants, with
its badge, before the agent's words; look-alike hosts never read as what they imitate; the warnings filter and
the search narrow it; a proposal's view shows the grant and its warning before a justification that draws a
route of its own, cut short until J."""

from __future__ import annotations

import curses
import json
import shlex
import sys
import time
from typing import Any, cast
from unittest import mock

from bot_bottle.cli.inbox import file_approval, routes_base_of
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.cli.render import inbox_row
from bot_bottle.cli.tui.app import GUARD_SEC, SuperviseTUI
from bot_bottle.cli.tui.deciding import Deciding
from bot_bottle.cli.tui.screen import TerminalScreen
from bot_bottle.decisions import decide
from bot_bottle.errors import AnchorNotWritten
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import approval_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_EGRESS_TOKEN_ALLOW, Proposal, Response
from bot_bottle.timestamps import utc_now
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar, wait_until
from tests.helpers.terminal import Terminal

FAKE_ROUTE = ("Read-only access to the Python docs\nroute:\n  host: docs.python.org\n  paths: [/3/]\n"
              "  (no wildcard, nothing to check)\n" + "\n" * 20000 + "THE LAST LINE")


class TuiInboxTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "inbox.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        submit = self.store.submit
        self.cyrillic = file_as_a_sidecar(self.db, "web-1", TOOL_EGRESS_ALLOW, '{"host": "pyp\u0456.org"}',
                                          "Read-only access to pypi", created_at=utc_now())
        self.launched = record_launch_routes(self.store, "web-2", "routes:\n- a.example\n").proposal
        self.routes = submit("web-2", TOOL_EGRESS_BLOCK, "routes:\n- a.example\n- pypi\u2024org\n", "the mirrors",
                             current_file="routes:\n- a.example\n")
        self.fake = submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "*.readthedocs.io"}', FAKE_ROUTE)
        self.token = submit("web-4", TOOL_EGRESS_TOKEN_ALLOW, json.dumps(
            {"host": "xn--pyp-lhd.org", "method": "POST", "path": "/upload", "detector": "github-pat",
             "value_length": 40, "snippet": "token ********", "fingerprint": "ab" * 32}), "DLP")
        self.plain = submit("web-5", TOOL_EGRESS_ALLOW, '{"host": "files.pythonhosted.org"}', "wheels")
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; "
                   "sleep 30")
        self.term = Terminal(self, command, width=180, height=40)
        self.term.wait_for("5 pending")

    def row(self, screen: str, short_id: str) -> str:
        return next(line for line in screen.splitlines() if f" {short_id}  " in line)

    def test_each_row_says_what_approving_grants_before_the_agent(self) -> None:
        screen = self.term.wait_for("5 pending")
        self.assertNotIn("\u0456", screen)
        self.assertNotIn("\u2024", screen)
        expected = {self.cyrillic: "[look-alike,unreadable] nothing: the route does not parse",
                    self.routes: "[look-alike] routes file: adds pypi\\u2024org",
                    self.fake: "[widens] *.readthedocs.io (any method; every path)",
                    self.token: "[look-alike] a github-pat token, sent to xn--pyp-lhd.org (POST",
                    self.plain: "files.pythonhosted.org (any method; every path)"}
        for proposal, grants in expected.items():
            with self.subTest(proposal.queue_key):
                row = self.row(screen, proposal.short_id)
                self.assertIn(grants, row)
                self.assertLess(row.index(grants), row.index("agent: "))
        self.assertIn("agent: Read-only access to the Python docs", self.row(screen, self.fake.short_id))
        self.assertNotIn("route:", screen)

    def test_the_warnings_filter_and_the_search(self) -> None:
        time.sleep(GUARD_SEC + 0.3)
        self.term.send("G")  # the last row, which the warnings filter hides
        self.term.wait_for("5 of 5")
        self.assertEqual(self.term.selected(), self.plain.short_id)
        self.term.send("w")
        self.term.wait_for("4 pending shown")
        # The title is drawn before the rows: wait for the whole screen, then the hidden row must be gone.
        wait_until(lambda: self.plain.short_id not in self.term.settled(), 10, what="the filtered list drawn")
        screen = self.term.settled()
        # Filtered out by the operator's own key, it did not leave the queue: the first row is selected, no alarm.
        self.assertNotIn("left the queue", screen)
        self.assertEqual(self.term.selected(), self.cyrillic.short_id)
        self.term.send("/")
        self.term.wait_for("show only proposals whose row holds")
        self.term.send("readthedocs", "Enter")
        screen = self.term.wait_for("1 pending shown")
        self.assertIn(self.fake.short_id, screen)
        self.assertIn("(filter: readthedocs +warnings)", screen)
        self.term.send("w")  # warnings off, the search stays: still the one
        screen = self.term.wait_for("(filter: readthedocs)")
        self.assertIn("1 pending shown", screen)
        self.term.send("/")
        self.term.wait_for("show only proposals whose row holds")
        self.term.send("zebra", "Enter")
        self.term.wait_for("no pending proposals match the filter")
        self.term.send("/")
        self.term.wait_for("show only proposals whose row holds")
        self.term.send("Enter")  # nothing: everything again
        self.term.wait_for("5 pending from 5 bottle(s)")
        for proposal in (self.cyrillic, self.routes, self.fake, self.token, self.plain):
            self.assertIsNone(self.store.response(proposal.id))

    def test_approving_a_routes_file_names_the_one_it_replaces(self) -> None:
        """BROKE before the fix: approving web-2's routes file, over the one recorded at its launch, ended that
        file's grant, and the status line said only 'approved ID (web-2, egress-block)': the file it replaced went
        unsaid. It names the grant it ended and the proposal that approved it."""
        ended = GrantStore(database=self.store.db).for_proposal(self.launched.id)
        assert ended is not None
        time.sleep(GUARD_SEC + 0.3)
        self.term.send("g", "j")
        self.term.wait_for("2 of 5")
        self.assertEqual(self.term.selected(), self.routes.short_id)
        self.term.send("a")
        self.term.wait_for("note (optional)")
        self.term.send("Enter")
        self.term.wait_for("for how long?")
        self.term.send("Enter")
        self.term.wait_for("anything else cancels")
        self.term.send("yes", "Enter")  # a look-alike host: only a typed 'yes' records it
        screen = self.term.wait_for(f"approved {self.routes.short_id} (web-2, egress-block)")
        self.assertIn(f"approved {self.routes.short_id} (web-2, egress-block); it replaces the routes file approved "
                      f"on proposal {self.launched.short_id}: grant {ended.short_id} ended (v lists grants)", screen)
        self.assertEqual(self.store.response(self.routes.id).status, "approved")  # type: ignore[union-attr]

    def test_the_detail_view_shows_the_grant_before_a_fake_route(self) -> None:
        """The justification draws a route and 20,000 blank lines: the real warning is on the first screen."""
        time.sleep(GUARD_SEC + 0.3)
        self.term.send("g", "j", "j")
        self.term.wait_for("3 of 5")
        self.assertEqual(self.term.selected(), self.fake.short_id)
        self.term.send("Enter")
        screen = self.term.wait_for("approving grants:")
        lines = screen.splitlines()
        grant = next(number for number, line in enumerate(lines) if "approving grants:" in line)
        warning = next(number for number, line in enumerate(lines) if "WARNING: widens: host '*.readthedocs.io'"
                       in line)
        self.assertLess(grant, warning)
        self.term.send("G")  # the end of what is shown: the justification, cut short
        screen = self.term.wait_for("J shows them")
        self.assertNotIn("THE LAST LINE", screen)
        self.term.send("J", "G")
        self.term.wait_for("THE LAST LINE")
        self.assertIsNone(self.store.response(self.fake.id))


class _Answers:
    """A screen whose every prompt is answered with Enter (the TUI's defaults)."""

    def prompt(self, question: str, lines: object = None) -> str:
        return ""


class AnchorNotMovedTest(TempDirTest):
    def test_a_decision_whose_anchor_was_not_moved_still_names_the_file_it_replaced(self) -> None:
        """The approval committed and the anchor could not be moved after it (a full disk): the status line said
        'approved ID (...); but ...', the routes file it replaced unsaid, though its grant ended with the decision."""
        with QueueStore(self.tmp / "anchor.db") as store:
            launched = record_launch_routes(store, "web-1", "routes:\n- a.example\n").proposal
            ended = GrantStore(database=store.db).for_proposal(launched.id)
            assert ended is not None
            routes = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.example\n- b.example\n", "b too",
                                  current_file="routes:\n- a.example\n")

            def anchor_not_moved(*args: Any, **kwargs: Any) -> Response:
                raise AnchorNotWritten("the audit anchor could not be moved", decide(*args, **kwargs))
            approval = file_approval(routes, routes.payload, routes_base_of(store, routes))
            with mock.patch("bot_bottle.cli.tui.deciding.decide", anchor_not_moved):
                said = Deciding(cast(TerminalScreen, _Answers()), store).decide(routes, approval, "a")
        self.assertEqual(said, f"approved {routes.short_id} (web-1, egress-block); it replaces the routes file "
                         f"approved on proposal {launched.short_id}: grant {ended.short_id} ended (v lists grants); "
                         "but the audit anchor could not be moved")


class RowRoomTest(TempDirTest):
    def test_a_grant_that_fills_the_row_is_not_cut_for_an_ellipsis_of_the_agents_words(self) -> None:
        """BROKE before the fix: at 120 columns the TUI's row for '*.nip.io' read '[widens,look-alike,internal]
        *.nip.io (any method; every pa… …': the grant was cut to leave two columns of gap before the agent's
        words, which then had room for nothing but their own '…'. A grant that needs the row's end has it."""
        with QueueStore(self.tmp / "row.db") as store:
            wild = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "*.nip.io"}', "wild")
            short = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "and this")

        def row(proposal: Proposal, width: int) -> str:
            with mock.patch("bot_bottle.cli.render.piped", return_value=False):  # as on the TUI's terminal
                line = inbox_row(proposal, approval_of(proposal.tool, proposal.payload), width)
            return "".join(segment.text for segment in line)
        self.assertTrue(row(wild, 120).endswith("[widens,look-alike,internal] *.nip.io (any method; every path)"))
        narrow = row(wild, 100)
        self.assertEqual((len(narrow), narrow[-1]), (100, "…"), "cut only at the row's end")
        self.assertNotIn("agent", narrow)
        self.assertRegex(row(short, 120), r"a\.example \(any method; every path\) +agent: and this$")


class DroppedKeyTest(TempDirTest):
    def test_a_dropped_key_is_named_as_it_is(self) -> None:
        """BROKE before the fix: Enter typed just after a decision (the next proposal under the cursor) was said
        as "'a key' ignored", quoted as if the key typed were the words 'a key'; printable keys were named
        ('a'), the others not. Enter, Esc, Tab and Backspace are named now."""
        tui = SuperviseTUI.__new__(SuperviseTUI)  # the guard alone: no terminal, no database
        for key, said in (("\n", "Enter"), (curses.KEY_ENTER, "Enter"), ("\x1b", "Esc"), ("a", "'a'"),
                          (curses.KEY_F1, "a key")):
            tui.changed_at, tui.message = time.monotonic(), "rejected 3f2a1b2c; next: 9c1e0d2f"
            self.assertTrue(tui.guarded(key))
            self.assertEqual(tui.message, f"rejected 3f2a1b2c; next: 9c1e0d2f - {said} ignored: look, then press "
                             "it again")
