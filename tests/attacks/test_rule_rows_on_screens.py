"""A rule row no bot-bottle wrote stops no screen, and no revocation.

A sidecar on the mount rebuilds ``rules`` without its column types, key or
NOT NULLs, and adds rows of its own: one with no id, no effect and no notes,
one whose subject's methods are ``[null]``; and the same for ``grants`` (a
row with no bottle and no tool). Before the fix next to these
tests, measured with the operator's real command line, the TUI in tmux and
the dashboard: 'rules list' and 'rules revoke' (every rule, by any id) ended
in a Python traceback, so the operator could end no rule at all; the TUI's
grants view (v) and rules view (Tab from there) took the whole TUI down
with a traceback; the
dashboard's bottles page, where grants and rules are revoked, failed. Now
such rows are listed as deciding nothing, and the operator's rule is
revoked from each screen.
"""

from __future__ import annotations

import shlex
import sqlite3
import sys
import time
from pathlib import Path

from bot_bottle.cli.tui.app import GUARD_SEC
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.records import EFFECT_APPROVE, STATUS_APPROVED, TOOL_EGRESS_ALLOW
from bot_bottle.standing import rules_in_force
from bot_bottle.timestamps import later, utc_now
from tests.helpers.dashboard import DashboardCase
from tests.helpers.host_grants import HostGrantsCase
from tests.helpers.support import REPO, wait_until
from tests.helpers.terminal import Terminal

_COLUMNS = ("id, queue_key, tool, subject, subject_sha256, pattern, effect, notes, created_at, ends_at, created_by, "
            "proposal_id, audit_seq, revoked_at, revoked_by, revoke_reason, revoke_seq, confirmed")


def rebuild_and_forge(path: Path, real_id: str) -> None:
    """What the sidecar writes: the table rebuilt without types, and its own rows beside the operator's rule."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in (f"CREATE TABLE rules_copy ({_COLUMNS})", "INSERT INTO rules_copy SELECT * FROM rules",
                          "DROP TABLE rules", "ALTER TABLE rules_copy RENAME TO rules"):
            raw.execute(statement)
        raw.execute(f"INSERT INTO rules ({_COLUMNS}) SELECT NULL, queue_key, tool, subject, subject_sha256, "
                    "pattern, NULL, NULL, created_at, ends_at, created_by, proposal_id, 999998, NULL, NULL, NULL, "
                    "NULL, NULL FROM rules WHERE id = :real", {"real": real_id})
        raw.execute(f"INSERT INTO rules ({_COLUMNS}) SELECT (CASE WHEN id GLOB 'e*' THEN 'f' ELSE 'e' END) "
                    "|| substr(id, 2), queue_key, tool, "
                    "'{\"host\": \"evil.example\", \"methods\": [null], \"paths\": [5]}', subject_sha256, 0, "
                    "effect, notes, created_at, ends_at, created_by, proposal_id, 999999, NULL, NULL, NULL, NULL, "
                    "NULL FROM rules WHERE id = :real", {"real": real_id})
    finally:
        raw.close()


def rebuild_and_forge_grants(path: Path) -> None:
    """The same for ``grants``: a copy of the first grant with no bottle, no tool, and a number for its rule."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        names = ", ".join(row[1] for row in raw.execute("PRAGMA table_info(grants)"))
        for statement in (f"CREATE TABLE grants_copy ({names})", "INSERT INTO grants_copy SELECT * FROM grants",
                          "DROP TABLE grants", "ALTER TABLE grants_copy RENAME TO grants"):
            raw.execute(statement)
        raw.execute("INSERT INTO grants SELECT 'e' || substr(id, 2, 30) || 'e', NULL, NULL, subject, subject_sha256, "
                    "starts_at, ends_at, proposal_id, 5, decided_by, audit_seq, revoked_at, revoked_by, "
                    "revoke_reason, revoke_seq FROM grants LIMIT 1")
    finally:
        raw.close()


def add_rule(grants: GrantStore) -> str:
    now = utc_now()
    return grants.add_rule(queue_key=None, tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_APPROVE,
                           subject={"host": "docs.python.org", "methods": [], "paths": []}, notes="the docs",
                           created_by="ann", ends_at=later(now, 3600), now=now).id


def deciding(grants: GrantStore) -> set[str]:
    return {str(item.rule.id) for item in rules_in_force(grants) if item.decides}


class CommandLineTest(HostGrantsCase):
    def test_rules_list_and_revoke_go_on(self) -> None:
        real = add_rule(self.grants)
        rebuild_and_forge(self.db, real)
        listed = self.run_cli("rules", "list")
        self.assertEqual(listed.returncode, 0, "BROKE before the fix: " + listed.stderr[-300:])
        self.assertIn("evil.example", listed.stdout)
        done = self.run_cli("rules", "revoke", real, "--reason", "done with it")
        self.assertEqual(done.returncode, 0, "BROKE before the fix: " + done.stderr[-300:])
        self.assertEqual(deciding(self.grants), set())

    def test_bottles_show_and_grants_list_go_on(self) -> None:
        """'bottles show' lists the rules deciding for the bottle and its grants: rows no bot-bottle wrote in
        either table are shown, not a traceback."""
        self.approve("web-1", {"host": "pypi.org"})
        rebuild_and_forge(self.db, add_rule(self.grants))
        rebuild_and_forge_grants(self.db)
        for argv in (("bottles", "show", "web-1"), ("grants", "list"), ("bottles", "show", "web-1", "--json"),
                     ("grants", "list", "--json")):
            done = self.run_cli(*argv)
            self.assertEqual(done.returncode, 0, f"{argv}: {done.stderr[-300:]}")
        self.assertIn("evil.example", self.run_cli("bottles", "show", "web-1").stdout)


class DashboardTest(DashboardCase):
    def test_the_bottles_page_lists_the_rules_and_revokes_the_operators(self) -> None:
        grants = GrantStore(database=self.store.db)
        real = add_rule(grants)
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        decide(proposal.id, STATUS_APPROVED, store=self.store)
        rebuild_and_forge(self.path, real)
        rebuild_and_forge_grants(self.path)
        status, _, body = self.call("GET", "/bottles")
        self.assertEqual(status, 200, "BROKE before the fix: " + body[-300:])
        section = body[body.index('data-part="rules"'):]
        self.assertIn("evil.example", section)
        self.assertIn(f"/rule/{real}/revoke", section)


class TuiTest(HostGrantsCase):
    def test_the_rules_view_lists_them_and_x_revokes_the_operators(self) -> None:
        real = add_rule(self.grants)
        self.approve("web-1", {"host": "pypi.org"})  # a grant, for the grants view v opens
        rebuild_and_forge(self.db, real)
        rebuild_and_forge_grants(self.db)
        exit_file = self.tmp / "exit-status"
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                              f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}"
                              f"; echo $? > {shlex.quote(str(exit_file))}; sleep 30")
        term.wait_for("0 pending")
        time.sleep(GUARD_SEC + 0.3)
        term.send("v")
        try:
            term.wait_for("2 grant(s) in force")
        except AssertionError:
            raise AssertionError("BROKE before the fix: the TUI ended at v:\n" + term.screen()) from None
        term.send("Tab")
        try:
            term.wait_for("rule(s) in force")
        except AssertionError:
            raise AssertionError("BROKE before the fix: the TUI ended at Tab:\n" + term.screen()) from None
        self.assertIn("evil.example", term.screen())
        rows = [line for line in term.screen().splitlines() if "(every bottle)" in line]
        for _ in range([row.startswith(real[:8]) for row in rows].index(True)):  # the operator's rule, selected
            term.send("j")
            time.sleep(0.2)
        term.send("x")
        term.wait_for(f"revoke rule {real[:8]} ((every bottle): approve docs.python.org")
        term.send("done with it", "Enter")
        term.wait_for(f"revoked rule {real[:8]}")
        self.assertEqual(deciding(self.grants), set())
        term.send("q")
        wait_until(lambda: exit_file.exists() and exit_file.read_text().strip(), 10, what="the TUI's exit status")
        self.assertEqual(exit_file.read_text().strip(), "0")
