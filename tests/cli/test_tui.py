"""The operator's TUI in a real terminal (tmux), its --once mode, and the demo end to end."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import sys
import threading
import time
from pathlib import Path
from unittest import mock

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.demo import Demo, demo_calls
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.cli.render import inbox_heading, inbox_row
from bot_bottle.cli.tui.app import GUARD_SEC, SuperviseTUI
from bot_bottle.cli.tui.grants_view import grant_question
from bot_bottle.decisions import decide
from bot_bottle.errors import DatabaseBusy
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import approval_of
from bot_bottle.policy.lifetimes import LIFETIMES
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
)
from bot_bottle.standing import rules_in_force
from bot_bottle.text import terminal
from bot_bottle.timestamps import parse_duration
from tests.attacks.test_foreign_schema import REFUSE_REVOCATIONS
from tests.helpers.support import REPO, TempDirTest, wait_until
from tests.helpers.terminal import Terminal


class TuiTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "tui.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.routes = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- b.com\n",
                                        "need b.com for the docs", current_file="routes:\n- a.com\n")
        self.route = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}\n', "pip install")
        self.report = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, '{"findings": [{"rule": "aws-key"}]}',
                                        "a test fixture")
        editor = self.tmp / "editor.sh"
        editor.write_text("#!/bin/sh\nsed -i 's/b\\.com/c.com/' \"$1\"\n")
        editor.chmod(0o755)
        self.exit_file = self.tmp / "exit-status"
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"EDITOR={shlex.quote(str(editor))} {shlex.quote(sys.executable)} -m bot_bottle supervise "
                   f"--db {shlex.quote(str(self.db))}; echo $? > {shlex.quote(str(self.exit_file))}; sleep 30")
        self.term = Terminal(self, command)
        self.term.wait_for("3 pending")

    def settle(self) -> None:
        """Wait out the TUI's guard: keys typed just after the row under the cursor changed are dropped."""
        time.sleep(GUARD_SEC + 0.3)

    def approve_to_the_length_question(self) -> None:
        """``a`` on the row under the cursor, no note: the TUI then asks for how long."""
        self.term.send("a")
        self.term.wait_for("note (optional)")
        self.term.send("Enter")
        self.term.wait_for("for how long?")

    def reject_the_second_to_the_rule_question(self, reason: str, of: int = 3) -> None:
        """``R`` on the second row (of ``of``) with ``reason``: the TUI then asks whether to reject the same from now
        on."""
        self.term.send("j")
        self.term.wait_for(f"2 of {of}")
        self.settle()
        self.term.send("R")
        self.term.wait_for("reason for rejecting")
        self.term.send(reason, "Enter")
        self.term.wait_for("always reject this and every ask for any of it")

    def rules(self) -> list[object]:
        with GrantStore(self.db) as grants:
            return list(grants.rules())

    def quit(self) -> None:
        self.term.send("q")
        # The shell creates the file before it writes the status into it: wait for the status.
        wait_until(lambda: self.exit_file.exists() and self.exit_file.read_text().strip(), 10,
                   what="the TUI's exit status")
        self.assertEqual(self.exit_file.read_text().strip(), "0")

    def test_an_open_routes_file_is_read_again_after_another_is_approved(self) -> None:
        """The detail view of a routes file filed against a.com's file, as another for the same bottle is
        approved: it now replaces that one, so it drifts, and is read against it (audit.routes_approved)."""
        record_launch_routes(self.store, "web-1", "routes:\n- a.com\n")  # what it is read against at first
        self.settle()
        self.term.send("Enter")
        self.term.wait_for("routes file: adds b.com")
        other = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n- z.example\n", "z too",
                                  current_file="routes:\n- a.com\n")
        decide(other.id, STATUS_APPROVED, store=self.store)
        screen = self.term.wait_for("drifted:")
        self.assertIn("routes file: adds b.com; drops z.example", screen)
        self.assertIn("diff (last approved -> proposed)", screen)

    def test_approve_modify_reject(self) -> None:
        """Approve, modify with a scripted EDITOR and reject with a reason; the database and audit agree."""
        screen = self.term.screen()
        for needle in (self.routes.short_id, "web-1", "egress-block",
                       # none of web-1's routes files is on record: every host reads as new (audit.routes_approved)
                       "[drifted] routes file: adds a.com, b.com", "agent: need b.com",
                       "* ", "a approve", "v grants"):
            self.assertIn(needle, screen)
        # The first row: open it, read the diff, go back.
        self.term.send("Enter")
        # Wait for the diff's own line: curses draws the header first, and a capture can fall between the two.
        detail = self.term.wait_for("+- b.com")
        self.assertIn("diff (no file -> proposed)", detail)
        self.term.send("Escape")
        self.term.wait_for("Enter open")
        # Modify the routes file: the editor turns b.com into c.com; the operator confirms their own diff.
        self.term.send("m")
        confirm = self.term.wait_for("y record this modification")
        for needle in ("diff (proposed -> final)", "  -- b.com", "  +- c.com", "n/Esc cancel"):
            self.assertIn(needle, confirm)
        self.term.send("y")
        self.term.wait_for("note (optional)")
        self.term.send("narrowed to c", "Enter")
        # BROKE before the fix: the question was wider than 120 columns and scrolled its head (the id) away.
        asked = self.term.wait_for("for how long? Enter: 7d")
        self.assertIn(f"{self.routes.short_id} for how long?", asked)
        self.term.send("Enter")
        self.term.wait_for("2 pending")
        self.settle()
        # Reject the route (now first), with a reason.
        self.term.send("r")
        self.term.wait_for("reason for rejecting")
        self.term.send("no pypi today", "Enter")
        self.term.wait_for("1 pending")
        self.settle()
        # The report-only proposal: no modify; approving wants a reason.
        self.term.send("m")
        self.term.wait_for("report-only")
        self.term.send("a")
        self.term.wait_for("reason for approving")
        self.term.send("Enter")
        self.term.wait_for("a reason is required")
        self.term.send("a")
        self.term.wait_for("reason for approving")
        self.term.send("fixture key, not real", "Enter")
        self.term.wait_for("for how long? Enter: 7d")
        self.term.send("Enter")
        self.term.wait_for("no pending proposals")
        self.quit()
        decided = {p: self.store.response(p) for p in (self.routes.id, self.route.id, self.report.id)}
        self.assertEqual(decided[self.routes.id].status, STATUS_MODIFIED)  # type: ignore[union-attr]
        self.assertEqual(decided[self.routes.id].final_file, "routes:\n- a.com\n- c.com\n")  # type: ignore[union-attr]
        self.assertEqual(decided[self.routes.id].notes, "narrowed to c")  # type: ignore[union-attr]
        self.assertEqual((decided[self.route.id].status, decided[self.route.id].notes),  # type: ignore[union-attr]
                         (STATUS_REJECTED, "no pypi today"))
        self.assertEqual((decided[self.report.id].status, decided[self.report.id].notes),  # type: ignore[union-attr]
                         (STATUS_APPROVED, "fixture key, not real"))
        with AuditStore(self.db) as audit:
            self.assertEqual([e.action for e in audit.entries()], ["approved", "rejected", "modified"])
            self.assertTrue(audit.verify().ok)

    def test_what_the_schema_guard_did_is_on_the_status_line_after_the_decision_that_did_it(self) -> None:
        """BROKE before (hostile review 61): a sidecar's trigger, dropped by the approval's write, was said on the
        status line and replaced by "approved ..." before it was ever drawn: the operator never learnt of it."""
        raw = sqlite3.connect(self.db, isolation_level=None)
        raw.execute("CREATE TRIGGER spy AFTER INSERT ON audit_log BEGIN SELECT 1; END")
        raw.close()
        self.approve_to_the_length_question()
        self.term.send("Enter")
        screen = self.term.wait_for("dropped what no migration made")
        self.assertIn(f"approved {self.routes.short_id}", screen)
        self.term.send("j")
        # Gone once the key is read: waited for, as a loaded machine draws the next screen late (a CI run read it
        # before the redraw, once).
        wait_until(lambda: "dropped what no migration made" not in self.term.screen(), 15,
                   what="the status line after the next key")

    def test_unchanged_edit_and_empty_reason_cancel(self) -> None:
        """An editor that changes nothing cancels modify; an empty reason cancels reject."""
        self.term.send("j")  # the egress-allow route: the scripted editor finds no b.com to change
        self.term.send("m")
        self.term.wait_for("modify cancelled: the file was empty or unchanged")
        self.term.send("r")
        self.term.wait_for("reason for rejecting")
        self.term.send("Enter")
        self.term.wait_for("reject cancelled")
        self.term.send("r")
        self.term.send("Escape")
        self.term.wait_for("reject cancelled")
        self.assertEqual(len(self.store.pending()), 3)
        self.quit()

    def test_always_reject_without_a_scope_says_it_was_once(self) -> None:
        """BROKE before the fix: R, a reason and Enter at "always reject the same: +bottle ... or +all" recorded a
        one-time rejection and said only 'rejected ...', as if it stood from now on."""
        self.term.send("R")
        self.term.wait_for("reason for rejecting")
        self.term.send("not this", "Enter")
        # BROKE before the fix: the question did not say what Enter alone does, which R led one to expect.
        self.term.wait_for("Enter alone: this one only, once")
        self.term.send("Enter")
        self.term.wait_for("once: no +bottle or +all given, so nothing is rejected from now on")
        self.settle()
        self.quit()
        with GrantStore(self.db) as grants:
            self.assertEqual(grants.rules(), [])

    def test_an_approval_remembered_names_its_rule(self) -> None:
        """BROKE before the fix: 'a', then '1h +bottle', said only "approved ID (web-2, egress-allow), remembered for
        bottle": the rule it made was named nowhere in the TUI (which lists no rules), so the operator could not
        tell for how long it approves, nor which id 'rules revoke' wants. Now the line names the rule, whose
        proposals it decides and the time left, as 'proposals approve --remember' does."""
        self.term.send("j")
        self.term.wait_for("2 of 3")
        self.settle()
        self.approve_to_the_length_question()
        self.term.send("1h +bottle", "Enter")
        wait_until(self.rules, 10, what="the rule")
        with GrantStore(self.db) as grants:
            (rule,) = grants.rules()
        self.assertEqual(rule.queue_key, "web-2")
        self.term.wait_for(f"approved {self.route.short_id} (web-2, egress-allow); rule {rule.short_id} for web-2, "
                           "1h; next:")
        self.settle()
        self.quit()

    def test_the_second_ask_says_the_rule_it_makes(self) -> None:
        """BROKE before the fix: approving *.co.uk (widens) with '+all' asked last "this approval: it reaches more
        than it reads as (widens): type yes to approve ID": the yes that made a rule approving every bottle's
        *.co.uk for a week was asked without a word of it. Now the ask says for how long and for whom; and a typo
        in the length is said before the typed yes, not after it."""
        wide = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "*.co.uk"}', "all of them")
        self.term.wait_for("4 pending")
        self.term.send("G")
        self.term.wait_for("4 of 4")
        self.settle()
        self.approve_to_the_length_question()
        self.term.send("1x +all", "Enter")
        self.term.wait_for("'1x' is neither a duration")
        self.assertNotIn("type yes", self.term.screen())
        self.settle()
        self.approve_to_the_length_question()
        self.term.send("+all", "Enter")
        asked = self.term.wait_for("this approval for 7d, and the same again for every bottle until then: it "
                                   "reaches more")  # (the prompt wraps: the rest is on its next line)
        self.assertIn(f"type yes to approve {wide.short_id}", asked)
        self.term.send("no", "Enter")
        self.term.wait_for("approve cancelled: nothing recorded")
        self.assertEqual(self.rules(), [])
        self.assertIsNone(self.store.response(wide.id))
        self.settle()
        self.quit()

    def test_a_length_without_a_rule_is_said_in_the_tuis_words(self) -> None:
        """BROKE before the fix: R, a reason, then '1h' (no +bottle) said "for: a rejection has no length: --for
        says how long a remembered rejection stands, so give --remember bottle or all with it", options the TUI
        does not have, cut at the screen's edge. Now it says it in the TUI's words, and nothing is recorded."""
        self.reject_the_second_to_the_rule_question("not this")
        self.term.send("1h", "Enter")
        self.term.wait_for("reject cancelled: 1h is how long a rule stands: give +bottle or +all with it")
        self.assertNotIn("--remember", self.term.screen())
        self.assertIsNone(self.store.response(self.route.id))
        self.settle()
        self.quit()

    def test_a_remembered_rejection_says_which_grants_it_ended(self) -> None:
        """R +all on web-2's pypi.org: web-1's grant for the same host, approved before, ends, and the line says so."""
        earlier = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}\n', "pip install")
        decide(earlier.id, STATUS_APPROVED, store=self.store)
        self.reject_the_second_to_the_rule_question("no package index")
        self.term.send("+all", "Enter")
        wait_until(self.rules, 10, what="the rule")
        with GrantStore(self.db) as grants:
            made = grants.for_proposal(earlier.id)
            assert made is not None
            (rule,) = grants.rules()
            # For every bottle, as 'proposals reject --remember all', 'rules list' and the dashboard say it (it said
            # 'for all').
            self.term.wait_for(f"rejected {self.route.short_id} (web-2, egress-allow); rule {rule.short_id} for "
                               f"every bottle, for good; ended grant {made.short_id}")
            self.assertEqual(grants.listing(), [])
        self.settle()
        self.quit()

    def test_a_new_rule_decides_the_pending_proposals_it_matches(self) -> None:
        """BROKE before the fix: R +bottle on web-2's pypi.org left web-2's pending 'pypi.org GET' on the screen, to be
        approved past the rule (the TUI's looks applied rules only to proposals filed later); so did a rule made
        elsewhere. Now the TUI's R names what its rule decided at once, and a rule made elsewhere is applied to
        every pending proposal at the next look."""
        get = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org", "methods": ["GET"]}', "pip")
        self.term.wait_for("4 pending")
        self.reject_the_second_to_the_rule_question("no package index", of=4)
        self.term.send("+bottle", "Enter")
        self.term.wait_for(f"; it rejected 1 pending: {get.short_id}")
        self.term.wait_for("2 pending")
        first, second = (self.store.submit("web-3", TOOL_EGRESS_ALLOW, json.dumps(route), "docs")
                         for route in ({"host": "docs.example.org"}, {"host": "docs.example.org", "paths": ["/a"]}))
        self.term.wait_for("4 pending")
        decide(first.id, STATUS_REJECTED, "no", store=self.store, remember="bottle")  # as the dashboard would
        self.term.wait_for("2 pending")
        response = self.store.response(second.id)
        self.assertEqual(response.status if response else None, STATUS_REJECTED)
        self.settle()
        self.quit()

    def test_revoking_in_the_grants_view_keeps_the_tui_running(self) -> None:
        """BROKE before the fix: after x and a reason (or Esc) in the grants view, the view waited for its next key
        with the prompt's tenth-of-a-second timeout, and the TUI died with a traceback (_curses.error: no input)."""
        decide(self.route.id, STATUS_APPROVED, store=self.store)
        with GrantStore(self.db) as grants:
            made = grants.for_proposal(self.route.id)
        assert made is not None
        self.open_the_grants_view()
        self.revoke_the_selected_grant(None)
        self.term.wait_for("revoke cancelled")
        time.sleep(0.5)  # longer than the prompt's timeout: the view must still be waiting for a key
        self.revoke_the_selected_grant("mirror down")
        self.term.wait_for(f"revoked {made.short_id}")
        time.sleep(0.5)
        self.assertIn("0 grant(s) in force", self.term.screen())
        self.term.send("b")
        self.term.wait_for("2 pending")
        self.quit()

    def test_revoking_a_grant_a_rule_approves_again_says_so_and_tab_revokes_the_rule(self) -> None:
        """BROKE before the fix: revoking a remembered approval's grant said only "revoked ID", and the rule
        remembered with it approved the bottle's next ask for the same at once. Tab then lists the rules, where
        ``x`` ends it."""
        decide(self.route.id, STATUS_APPROVED, store=self.store, grant_for=3600, remember="bottle")
        with GrantStore(self.db) as grants:
            made = grants.for_proposal(self.route.id)
            (rule,) = grants.rules()
        assert made is not None
        self.open_the_grants_view()
        self.assertEqual(self.term.screen().splitlines()[1].split(), ["ID", "BOTTLE", "TOOL", "LEFT", "GRANTS",
                                                                      "(BY)"])
        self.revoke_the_selected_grant("mirror down")
        self.term.wait_for(f"revoked {made.short_id}, but rule {rule.short_id} still approves the same again")
        self.term.wait_for("Tab lists the rules, where x ends it")
        # There, as 'rules revoke' would (before, the TUI showed no rule: the operator left it for a shell).
        self.term.send("Tab")
        self.term.wait_for("1 rule(s) in force")
        self.assertIn(f"{rule.short_id}  web-2", self.term.screen())
        # BROKE before the fix: the views named no column, where the list of proposals has a row of names.
        self.assertEqual(self.term.screen().splitlines()[1].split(), ["ID", "BOTTLE", "EFFECT", "LEFT", "DECIDES",
                                                                      "ON", "(NOTES)"])
        self.revoke_the_selected_grant("no more pip")
        self.term.wait_for(f"revoked rule {rule.short_id}; the grants it made stay until they end")
        # BROKE before the fix: "('grants list', 'grants revoke')", a shell's commands, where Tab and x are.
        self.term.wait_for("(Tab lists the grants, where x ends one)")
        self.term.wait_for("0 rule(s) in force")
        self.assertEqual(rules_in_force(GrantStore(self.db)), [])
        self.term.send("Tab")
        self.term.wait_for("0 grant(s) in force")
        self.term.send("b")
        self.term.wait_for("2 pending")
        self.quit()

    def test_a_routes_grant_revoked_in_the_grants_view_after_its_row_was_moved_is_off_record(self) -> None:
        """BROKE before the fix (hostile review 57): a sidecar on the mount moved the routes grant's row to another
        bottle, the operator revoked it here (x), and the revocation was recorded under that bottle: back in the
        list, the pending routes file still read 'routes file: adds c.example' against the file just revoked, and
        approving it granted evil-exfil again."""
        first, evil = "routes:\n- a.com\n", "routes:\n- a.com\n- b.com\n- evil-exfil.example.net\n"
        record_launch_routes(self.store, "web-3", first)
        approved = self.store.submit("web-3", TOOL_EGRESS_BLOCK, evil, "routine", current_file=first)
        decide(approved.id, STATUS_APPROVED, store=self.store)
        self.store.submit("web-3", TOOL_EGRESS_BLOCK, evil + "- c.example\n", "routine", current_file=evil)
        self.sidecar_rewrites_grants("UPDATE grants SET queue_key = 'web-9' WHERE proposal_id = ?", approved.id)
        self.assertIn("routes file: adds c.example", self.term.wait_for("4 pending"))
        self.open_the_grants_view()
        self.revoke_the_selected_grant("evil-exfil must go")
        self.term.wait_for("revoked")
        self.term.send("b")
        screen = self.term.wait_for("[drifted] routes file: adds a.com, b.com, evil-exfil")
        self.assertNotIn("adds c.example", screen)
        self.quit()

    def test_a_grant_whose_row_a_sidecar_hid_is_listed_marked_and_x_revokes_it(self) -> None:
        """BROKE before the fix: a sidecar on the mount marked the grant's row revoked, and the grants view said '0
        grant(s) in force', though the audit log keeps it and the sidecar can put the row back. Now it is listed,
        marked, the status line says why, and x revokes it (tests/attacks/test_hidden_grant_rows.py)."""
        decide(self.route.id, STATUS_APPROVED, store=self.store)
        with GrantStore(self.db) as grants:
            made = grants.for_proposal(self.route.id)
        assert made is not None
        self.sidecar_rewrites_grants("UPDATE grants SET revoked_at = starts_at, revoked_by = 'root@vm', "
                                     "revoke_reason = 'x', revoke_seq = 1 WHERE id = ?", made.id)
        self.open_the_grants_view()
        screen = self.term.wait_for("kept by the audit log: its row in the file is missing, revoked, ended or "
                                    "rewritten")
        self.assertIn(f"{made.short_id}  web-2", screen)
        self.assertIn("[kept by the log] pypi.org", screen)
        self.revoke_the_selected_grant("no mirror")
        self.term.wait_for(f"revoked {made.short_id}")
        self.term.wait_for("0 grant(s) in force")
        self.term.send("b")
        self.term.wait_for("2 pending")
        self.quit()

    def test_a_trigger_a_sidecar_added_is_dropped_and_said_on_the_status_line(self) -> None:
        """A trigger refusing revocations (tests/attacks/test_foreign_schema.py): x revokes the grant anyway,
        and what the write dropped is said on the status line, where a line on stderr landed over the screen."""
        decide(self.route.id, STATUS_APPROVED, store=self.store)
        raw = sqlite3.connect(self.db, isolation_level=None)
        raw.execute(REFUSE_REVOCATIONS)
        raw.close()
        self.open_the_grants_view()
        self.revoke_the_selected_grant("no mirror")
        self.term.wait_for("0 grant(s) in force")
        self.term.send("b")
        screen = self.term.wait_for('dropped what no migration made')
        self.assertNotIn("bot-bottle: warning", screen)
        self.quit()

    def test_a_narrow_grants_view_gives_the_tools_room_to_the_grant(self) -> None:
        """BROKE before the fix: at 70 columns the tool and its padding left the grant 16 columns
        ('pypi.org (any m…'), as the list of proposals' rows did, and at 80 (the common terminal) 26."""
        decide(self.route.id, STATUS_APPROVED, store=self.store)
        self.term.run("resize-window", "-t", "t", "-x", "80")
        self.open_the_grants_view()
        lines = self.term.screen().splitlines()
        self.assertEqual(lines[1].split(), ["ID", "BOTTLE", "LEFT", "GRANTS", "(BY)"])
        self.assertIn("web-2             6d23h  pypi.org (any method; every path)", lines[2])
        self.term.run("resize-window", "-t", "t", "-x", "120")
        self.term.wait_for("egress-allow")
        self.term.send("b")
        self.term.wait_for("2 pending")
        self.quit()

    def sidecar_rewrites_grants(self, sql: str, row_id: str) -> None:
        """What a sidecar on the mount does to the grants table (``sql``, its one parameter ``row_id``): its
        triggers dropped first, as the file's are its to drop."""
        raw = sqlite3.connect(self.db)
        try:
            with raw:
                for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                           "AND tbl_name = 'grants'").fetchall():
                    raw.execute(f'DROP TRIGGER "{name}"')
                raw.execute(sql, (row_id,))
        finally:
            raw.close()

    def open_the_grants_view(self) -> None:
        """``v``, once the list has settled: the one grant in force listed, and selected."""
        self.settle()
        self.term.send("v")
        self.term.wait_for("1 grant(s) in force")

    def revoke_the_selected_grant(self, reason: str | None) -> None:
        """``x`` in the grants view (or the rules view), then ``reason`` and Enter (None: Esc at the prompt)."""
        self.term.send("x")
        self.term.wait_for("reason:")
        self.term.send(*((reason, "Enter") if reason is not None else ("Escape",)))

    def test_decided_elsewhere_and_new_arrivals(self) -> None:
        """A proposal decided elsewhere while open is reported, and nothing is selected; new ones appear, marked."""
        self.term.send("Enter")
        self.term.wait_for("diff (no file -> proposed)")
        decide(self.routes.id, STATUS_APPROVED, decided_by="bob@desk", store=self.store)
        screen = self.term.wait_for("decided elsewhere: approved by bob@desk")
        self.assertIn("nothing selected", screen)
        self.settle()
        self.term.send("a")  # nothing is selected: nothing to approve
        self.term.wait_for("no proposal is selected")
        self.term.send("j")  # a keypress: everything on screen is now seen, and the row where it was is selected
        self.term.wait_for("1 of 2")
        self.assertNotIn(f"* {self.route.short_id}", self.term.screen())
        late = self.store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "late.example"}\n', "arrived later")
        self.term.wait_for(f"* {late.short_id}")
        self.quit()

    def test_a_wal_swapped_under_the_tui_is_said_so_and_decides_nothing(self) -> None:
        """A copy of the -wal renamed over it, and the -shm moved away (a sidecar on the mount can): the TUI says
        the database was replaced and records nothing into the files its connection still holds."""
        shutil.copyfile(f"{self.db}-wal", self.tmp / "copy-wal")
        os.rename(f"{self.db}-shm", self.tmp / "old-shm")
        os.rename(self.tmp / "copy-wal", f"{self.db}-wal")
        self.term.send("j")  # a key press: the TUI looks again
        screen = self.term.wait_for("-wal was replaced")
        self.assertNotIn("(retrying)", screen)
        self.settle()
        self.term.send("r")
        if "reason for rejecting" in self.term.screen():
            self.term.send("not needed", "Enter")
        self.term.wait_for("was replaced")
        self.quit()
        with QueueStore(self.db) as now:  # the files at the path, as every other process sees them
            self.assertEqual(len(now.pending()), 3)
            self.assertIsNone(now.response(self.route.id))

    def test_header_names_bottles_with_work_and_flags_stale_ones(self) -> None:
        """The title row lists each bottle with pending work and its count; a silent running sidecar is STALE."""
        self.term.wait_for("web-1 2, web-2 1")
        with self.store.db.write() as conn:
            conn.execute("UPDATE bottles SET state = 'running', last_seen = '2026-01-01T00:00:00.000000Z' "
                         "WHERE slug = 'web-2'")
        self.term.wait_for("web-2 1 STALE")
        self.quit()

    def test_small_and_resized_terminal(self) -> None:
        """Tiny and changing window sizes never crash it; it redraws what fits."""
        for width, height in ((20, 4), (3, 1), (60, 8), (120, 30)):
            self.term.run("resize-window", "-t", "t", "-x", str(width), "-y", str(height))
            time.sleep(0.4)
        self.term.send("Enter")
        self.term.run("resize-window", "-t", "t", "-x", "15", "-y", "3")
        time.sleep(0.4)
        self.term.run("resize-window", "-t", "t", "-x", "120", "-y", "30")
        self.term.wait_for("proposal ")
        self.assertFalse(self.exit_file.exists(), "still running")
        self.term.send("Escape")
        self.quit()

    def test_a_terminal_too_short_to_show_the_row_decides_nothing(self) -> None:
        """BROKE before the fix (a hostile review): 4 rows tall the list draws no row, yet 'a' and 'r' acted on
        the one under the cursor, which the operator could not see. Now they say why nothing happens."""
        self.term.send("g")
        self.term.wait_for("1 of 3")
        self.settle()
        self.term.run("resize-window", "-t", "t", "-x", "120", "-y", "4")
        time.sleep(0.4)
        for key in ("a", "r", "m"):
            self.term.send(key)
            self.term.wait_for("too small to show the proposal")
        self.assertNotIn("note (optional)", self.term.screen())
        self.term.run("resize-window", "-t", "t", "-x", "120", "-y", "30")
        self.term.wait_for("3 pending")
        self.assertEqual([self.store.response(p.id) for p in (self.routes, self.route, self.report)], [None] * 3)
        self.quit()


class OnceTest(TempDirTest):
    def test_once_prints_the_list(self) -> None:
        """--once prints pending proposals (or says there are none) and exits 0; --json is JSON."""
        db = str(self.tmp / "once.db")
        self.assertEqual(self.run_cli("db", "upgrade", "--db", db).returncode, 0)
        empty = self.run_cli("supervise", "--once", "--db", db)
        self.assertEqual((empty.returncode, empty.stdout.strip()), (0, "no pending proposals"))
        with QueueStore(db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a"}', "why")
        listed = self.run_cli("supervise", "--once", "--db", db)
        self.assertEqual(listed.returncode, 0)
        self.assertIn(proposal.short_id, listed.stdout)
        as_json = json.loads(self.run_cli("supervise", "--once", "--json", "--db", db).stdout)
        self.assertEqual([(p["id"], p["status"]) for p in as_json], [(proposal.id, "pending")])

    def test_without_a_terminal(self) -> None:
        """The UI itself needs a terminal and says so."""
        self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.tmp / "x.db")).returncode, 0)
        result = self.run_cli("supervise", "--db", str(self.tmp / "x.db"))
        self.assert_clean_error(result, 1, "needs a terminal")


class DemoTest(TempDirTest):
    def test_demo_auto_end_to_end(self) -> None:
        """demo --auto: server, agent over HTTP, scripted decisions, answers checked; exit 0."""
        result = self.run_cli("demo", "--auto", timeout=120)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        out = result.stdout
        self.assertRegex(out, r"supervise server: http://127\.0\.0\.1:\d+/")
        for needle in ("approved  'fine for pip'", "modified  'npm yes; example.com no'",
                       "rejected  'no paste sites from bottles'",
                       "egress proxy: POST api.github.com                       token allowed",
                       # the launch routes file on record, the four decisions, and its grant ended by the routes
                       # file modified
                       "audit log: 6 entries, chain whole",
                       "every step worked"):
            self.assertIn(needle, out)

    def test_demo_leaves_no_anchor_behind(self) -> None:
        """The throwaway demo removes its database's anchor with it; only the host's key stays."""
        self.assertEqual(self.run_cli("demo", "--auto", timeout=120).returncode, 0)
        anchors = self.home / ".bot-bottle" / "audit-anchors"
        self.assertEqual(sorted(p.name for p in anchors.iterdir()) if anchors.exists() else [], [])

    def test_demo_keeps_a_given_database(self) -> None:
        """With --db the demo's proposals and audit entries stay for inspection."""
        db = self.tmp / "kept.db"
        result = self.run_cli("demo", "--auto", "--db", str(db), timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        with AuditStore(db) as audit:
            self.assertEqual(audit.count(), 6)  # as test_demo_auto_end_to_end counts them

    def test_demo_in_a_terminal(self) -> None:
        """The interactive demo opens the TUI; deciding there reaches the agent."""
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle demo; echo DEMO-EXIT=$?; sleep 30")
        term = Terminal(self, command)
        term.wait_for("4 pending")
        self.assertIn("wait on these", term.screen())
        for _ in range(4):
            term.send("r")
            term.wait_for("reason for rejecting")
            term.send("not in this demo", "Enter")
            time.sleep(GUARD_SEC + 0.3)  # the next proposal moved under the cursor: keys just after it are dropped
        term.wait_for("0 pending")
        term.send("q")
        screen = term.wait_for("DEMO-EXIT=0", timeout=30)
        self.assertEqual(screen.count("rejected  'not in this demo'"), 3, screen)
        self.assertIn("request stays blocked", screen)


    def test_each_call_is_labelled_with_every_path_it_asks_for(self) -> None:
        """BROKE before the fix: the pypi.org call asked for /simple/ and /packages/, yet the demo called it
        'egress-allow pypi.org /simple/' in what the agent filed, what was decided and what it received."""
        for call in demo_calls():
            for path in call.arguments.get("paths", []):
                with self.subTest(call=call.label, path=path):
                    self.assertIn(path, call.label)

    def test_each_route_is_worded_as_every_screen_words_it(self) -> None:
        """BROKE before the fix: the demo said 'egress-allow pypi.org /simple/ /packages/' (and 'egress-allow
        paste.example') of what the agent filed, what was decided and what it received, where the TUI it opens,
        the lists and the dashboard say 'pypi.org (any method; /packages/ /simple/)'."""
        for call in demo_calls():
            if call.tool == TOOL_EGRESS_ALLOW:
                route = json.dumps({k: v for k, v in call.arguments.items() if k != "justification"})
                with self.subTest(call=call.label):
                    self.assertEqual(call.label, f"{call.tool} {approval_of(call.tool, route, None).summary}")


class DemoProgressTest(TempDirTest):
    def test_progress_lines_from_many_threads_are_printed_whole(self) -> None:
        """BROKE before the fix: the operator script and the egress proxy's thread printed at once, and a line ran
        into the next ('approved f5480cbe egress-token-allow api.github.comegress proxy: ...')."""
        demo = Demo(self.home / "demo.db", auto=True, wait_seconds=1)
        self.addCleanup(shutil.rmtree, demo.scratch, True)
        inside, overlapped = [0], [False]

        def slow_print(text: str) -> None:  # prints its line, then its newline, as print() does
            inside[0] += 1
            overlapped[0] = overlapped[0] or inside[0] > 1
            time.sleep(0.02)
            inside[0] -= 1

        start = threading.Barrier(6)
        threads = [threading.Thread(target=lambda n=n: (start.wait(), demo.say(f"line {n}"))) for n in range(6)]
        with mock.patch("bot_bottle.cli.demo.print_untrusted", slow_print):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
        self.assertFalse(overlapped[0])
        self.assertEqual(sorted(demo.lines), [f"line {n}" for n in range(6)])


class DemoHangupTest(TempDirTest):
    def test_closing_the_terminal_removes_the_throwaway_database(self) -> None:
        """A demo whose terminal goes away (SIGHUP) still stops its server and removes its files."""
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle demo")
        term = Terminal(self, command)
        screen = term.wait_for("4 pending")
        found = re.search(r"\s(/\S+\.db)\s", screen.split("bottle(s)", 1)[1])
        assert found is not None, screen
        database = Path(found.group(1))
        self.assertTrue(database.exists())
        term.run("kill-server")
        wait_until(lambda: not database.parent.exists(), 15, what="removing the throwaway database")


class ExpiredAtStartTest(TempDirTest):
    def test_what_expired_while_nobody_looked_is_said_at_the_start(self) -> None:
        """Before: a proposal that expired while the TUI was closed left no trace on it (its caller was told no)."""
        db = self.tmp / "tui.db"
        with QueueStore(db) as store, mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        time.sleep(1.2)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(db))}")
        term = Terminal(self, command)
        term.wait_for("0 pending")
        term.wait_for(f"expired unanswered in the last 24 h, each caller told no: {gone.short_id} "
                      "(web-1, egress-allow)")


class LongGrantsListTest(TempDirTest):
    def test_the_grants_view_scrolls_to_the_one_under_the_cursor_and_revokes_it(self) -> None:
        """BROKE before the fix: the view drew the grants that fit and no more; the cursor went on below the screen,
        so a grant past the last row could be revoked only unseen, or not from the TUI at all."""
        db = self.tmp / "tui.db"
        with QueueStore(db) as store:
            for number in range(15):
                proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, f'{{"host": "h{number:02}.example"}}', "docs")
                decide(proposal.id, STATUS_APPROVED, store=store, grant_for=3600 + 60 * number)  # h14 ends last
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(db))}")
        term = Terminal(self, command, height=10)
        term.wait_for("0 pending")
        term.send("v")
        term.wait_for("15 grant(s) in force")
        self.assertNotIn("h14.example", term.screen())
        term.send(*["j"] * 14)
        term.wait_for("h14.example")
        self.assertNotIn("h00.example", term.screen())
        term.send("x")
        term.wait_for("revoke")
        self.assertIn("h14.example", term.screen().splitlines()[-2])  # the question names it
        term.send("done with it", "Enter")
        term.wait_for("14 grant(s) in force")
        with GrantStore(db) as grants:
            self.assertEqual(sorted(g.subject_value["host"] for g in grants.listing()),
                             [f"h{number:02}.example" for number in range(14)])


class RefreshTest(TempDirTest):
    def test_an_unavailable_database_is_reported_not_fatal(self) -> None:
        """A refresh that meets a locked database says so on screen and recovers on the next one."""
        with QueueStore(self.tmp / "r.db") as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a"}', "why")
            tui = SuperviseTUI(screen=None, store=store)
            with mock.patch.object(store, "changes_marker", side_effect=DatabaseBusy("r.db stayed locked")):
                tui.refresh()
            self.assertIn("database unavailable: r.db stayed locked (retrying)", tui.message)
            tui.refresh()
            self.assertEqual(tui.message, "")
            self.assertEqual([p.id for p in tui.items], [proposal.id])


class NarrowTuiTest(TempDirTest):
    def test_at_80_columns_the_keys_to_decide_and_quit_stay_in_sight(self) -> None:
        """BROKE before the fix: at 80 columns the key line was cut at 'r/R reject (R: a…': 'v grants' and 'q'
        never showed, in the list or in a proposal's detail."""
        db = self.tmp / "narrow.db"
        with QueueStore(db) as store:
            store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}\n', "pip install")
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                        f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(db))}; sleep 30",
                        width=80, height=24)
        listing = term.wait_for("1 pending")
        for needle in ("Enter open", "a approve", "r/R reject", "v grants", "q quit"):
            self.assertIn(needle, listing.splitlines()[-1])
        term.send("Enter")
        detail = term.wait_for("J all")
        for needle in ("a approve", "m modify", "r reject", "Esc/b back", "q quit"):
            self.assertIn(needle, detail.splitlines()[-1])
        term.send("q")


class StatusLineTest(TempDirTest):
    def test_the_position_never_hides_the_end_of_a_message(self) -> None:
        """BROKE before the fix: the position ('1 of 2') was drawn over the status line's right end, so a long
        message lost its end: "'a' ignored: look1 of 3…", "next: 3f2a1b2c (web-1, egress-al1 of 2". Now a message
        that needs the room has it, and the position waits for a shorter one."""
        db = self.tmp / "status.db"
        with QueueStore(db) as store:
            filed = [store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps({"host": f"h{n}.example"}), "docs")
                     for n in range(3)]
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                        f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(db))}; sleep 30",
                        width=80, height=24)
        term.wait_for("3 pending")
        time.sleep(GUARD_SEC + 0.3)
        term.send("a")
        term.wait_for("note (optional)")
        term.send("Enter")
        term.wait_for("for how long?")
        term.send("Enter")
        screen = term.wait_for("2 pending")
        self.assertIn(f"next: {filed[1].short_id} (web-1, egress-allow)", screen.splitlines()[-2])
        term.send("q")


class NarrowRowTest(TempDirTest):
    def test_what_approving_grants_has_the_room_before_the_agents_words(self) -> None:
        """BROKE before the fix: at 100 columns the row read 'files.example.com  GET  /simp…' beside 20 columns
        of the agent's words; the grants column was 3/5 of the room however narrow. Now the grant is whole, and
        where it does not fit (50 columns) the agent's words give up all their room to it."""
        with QueueStore(self.tmp / "n.db") as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(
                {"host": "files.example.com", "methods": ["GET"], "paths": ["/simple/"]}), "I need the index")
            short = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "and this")

        def row(width: int, shown: Proposal = proposal) -> str:
            approval = approval_of(shown.tool, shown.payload, shown.current_file)
            return "".join(segment.text for segment in inbox_row(shown, approval, width))
        self.assertIn("files.example.com (GET; /simple/)  agent: I need", row(100))
        self.assertNotIn("agent:", row(50))
        self.assertIn("files.example.com (GET; …", row(50))
        self.assertEqual(row(160).index("agent:"), row(160, short).index("agent:"), "a wide screen's words line up")

    def test_a_narrow_screen_gives_the_tool_and_ages_room_to_the_grants(self) -> None:
        """BROKE before the fix: at 60 columns the grants had 8 columns ('files.e…') beside the tool and age, and
        at 40 none; the heading named columns no row could show."""
        with QueueStore(self.tmp / "n.db") as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(
                {"host": "files.example.com", "methods": ["GET"], "paths": ["/simple/"]}), "I need the index")
        approval = approval_of(proposal.tool, proposal.payload, proposal.current_file)

        def text(line: terminal.Line) -> str:
            return "".join(segment.text for segment in line)
        self.assertIn("web-1        files.example.com (GET; /simple/)", text(inbox_row(proposal, approval, 60)))
        self.assertNotIn("egress-allow", text(inbox_row(proposal, approval, 60)))
        self.assertIn("web-1        files.example.com", text(inbox_row(proposal, approval, 44)))
        self.assertEqual(text(inbox_heading(60)), "  ID        BOTTLE       GRANTS (what approving grants)")
        self.assertIn("egress-allow", text(inbox_row(proposal, approval, 100)))
        self.assertIn("TOOL", text(inbox_heading(100)))

    def test_at_80_columns_a_route_is_whole(self) -> None:
        """BROKE before the fix: at 80 columns, the common terminal, the tool and age left what approving grants
        28 columns ('docs.python.org (any method…', its scope cut), fewer than at 79 without them. They are
        shown from 100 columns, where the route still has 48."""
        with QueueStore(self.tmp / "n.db") as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        approval = approval_of(proposal.tool, proposal.payload, proposal.current_file)
        for width in (80, 99, 100):
            with self.subTest(width=width):
                shown = "".join(segment.text for segment in inbox_row(proposal, approval, width))
                self.assertIn("docs.python.org (any method; every path)", shown)
        self.assertNotIn("TOOL", "".join(segment.text for segment in inbox_heading(80)))


class GrantQuestionTest(TempDirTest):
    def test_the_examples_are_answers_the_tool_takes(self) -> None:
        """BROKE before the fix: a token's approval (at most 7d) asked 'at most 7d; 8h, 30d or a time', and 30d
        was then refused. Every duration the question names is one its tool's grant may last."""
        with QueueStore(self.tmp / "q.db") as store:
            for tool, payload in ((TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}'), (TOOL_EGRESS_BLOCK, "routes: []\n"),
                                  (TOOL_GITLEAKS_ALLOW, '{"findings": []}'),
                                  (TOOL_EGRESS_TOKEN_ALLOW, json.dumps({"host": "api.github.com", "method": "POST"}))):
                question = grant_question(store.submit("web-1", tool, payload, "x"), approving=True)
                # What follows the proposal's short id: an id of digits ending in d (4851345d) is no duration.
                named = re.findall(r"\b\d+[mhdw]\b", question.split("for how long?", 1)[1])
                with self.subTest(tool=tool, named=named):
                    self.assertGreaterEqual(len(named), 3, question)
                    for spelled in named:
                        self.assertLessEqual(parse_duration("for", spelled), LIFETIMES[tool].maximum, question)
