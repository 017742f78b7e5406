"""A process that can write the database (a sidecar on the mount transport) against the operator's screens.

Before, it could rewrite a pending proposal between ``proposals show`` and
``proposals approve`` and have the approval recorded for the rewritten text
(``audit verify`` and ``db check`` then said OK); and a ``created_at``
without fractions of a second ended ``proposals list``, ``show``,
``supervise --once`` and the TUI in a ValueError traceback, so the operator
could review nothing. Each is done here with the real CLI (and tmux, and the
dashboard's server) and shown to fail.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sqlite3
import sys
from pathlib import Path

from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
)
from tests.helpers.dashboard import DashboardCase
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar
from tests.helpers.terminal import Terminal

# created_at as a sidecar may write it: each must show as "unreadable", never as a traceback.
ODD_TIMES = {
    "no fraction": "2026-11-27T08:00:00Z",
    "a space": "2026-11-27 08:00:00",
    "empty": "",
    "words": "yesterday",
    "no such day": "2026-13-45T25:61:61.000000Z",
    "an offset": "2026-11-27T08:00:00.000000+02:00",
    "an escape": "\x1b[2J\x1b[Hsoon",
    "long": "9" * 500,
}


def write_rows(db: Path, rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Proposals written straight into the file, as a sidecar can: (bottle, tool, payload, created_at); their ids."""
    return [file_as_a_sidecar(db, bottle, tool, payload, f"filed at {created_at[:20]!r}", created_at).id
            for bottle, tool, payload, created_at in rows]


class RewrittenBetweenShowAndApproveTest(TempDirTest):
    """The operator reads ``proposals show``; the sidecar rewrites the row; the approval names what was shown."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "host.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def rewrite(self, proposal_id: str, payload: str) -> None:
        raw = sqlite3.connect(self.db, isolation_level=None)
        raw.execute("DROP TRIGGER IF EXISTS proposals_immutable")
        raw.execute("UPDATE proposals SET payload = ?, payload_sha256 = ? WHERE id = ?",
                    (payload, hashlib.sha256(payload.encode()).hexdigest(), proposal_id))
        raw.close()

    def test_a_script_passing_the_digest_show_printed(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        shown = self.run_cli("proposals", "show", proposal.short_id, "--db", str(self.db))
        digest = shown.stdout.split("--digest ")[1].split()[0]
        self.assertEqual(json.loads(self.run_cli("proposals", "show", proposal.id, "--json", "--db",
                                                 str(self.db)).stdout)["digest"], digest)
        self.assertEqual(digest, shown_digest(proposal), "the dashboard's forms carry the same digest")
        self.rewrite(proposal.id, '{"host": "*"}')
        result = self.run_cli("proposals", "approve", proposal.short_id, "--digest", digest, "--db", str(self.db))
        self.assert_clean_error(result, 1, f"proposal {proposal.short_id} is not the one whose digest you gave")
        self.assertIsNone(self.store.response(proposal.id))
        # Without the digest a script approves nothing at all; with the rewritten row's own, it approves that one.
        self.assert_clean_error(self.run_cli("proposals", "approve", proposal.short_id, "--db", str(self.db)), 2,
                                "--digest")
        self.assertIsNone(self.store.response(proposal.id))

    def test_approve_on_a_terminal_shows_the_grant_and_asks(self) -> None:
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        honest = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "packages")
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle proposals approve {{}} "
                   f"--db {shlex.quote(str(self.db))}; echo EXIT=$?; sleep 30")
        term = Terminal(self, command.format(proposal.short_id), width=120, height=40)
        screen = term.wait_for(f"approve {proposal.short_id} (web-1, egress-allow) for 7d?")
        self.assertIn("approving grants:\n  docs.python.org (any method; every path)", screen)
        self.rewrite(proposal.id, '{"host": "*"}')
        term.send("yes", "Enter")
        screen = term.wait_for("EXIT=")
        self.assertIn("not what was shown", screen)
        self.assertIn("EXIT=1", screen)
        self.assertIsNone(self.store.response(proposal.id))
        term = Terminal(self, command.format(honest.short_id), width=120, height=40)
        term.wait_for(f"approve {honest.short_id} (web-2, egress-allow) for 7d?")
        term.send("no", "Enter")
        cancelled = term.wait_for("EXIT=")
        self.assertIn(f"approval of {honest.short_id} cancelled", cancelled)
        self.assertIn("EXIT=3", cancelled)
        self.assertIsNone(self.store.response(honest.id))
        term = Terminal(self, command.format(honest.short_id), width=120, height=40)
        term.wait_for(f"approve {honest.short_id} (web-2, egress-allow) for 7d?")
        term.send("yes", "Enter")
        self.assertIn("EXIT=0", term.wait_for("EXIT="))
        response = self.store.response(honest.id)
        self.assertEqual(response.status if response else None, "approved")


class OddRowsTest(TempDirTest):
    """Rows no bot-bottle writes (times, payloads, audit details): every screen shows them, as unreadable."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "host.db"
        QueueStore(self.db).close()
        self.ids = write_rows(self.db, [(f"odd-{n}", TOOL_EGRESS_BLOCK, "routes: [x]\n", created_at)
                                             for n, created_at in enumerate(ODD_TIMES.values())])

    def cli_ok(self, *args: str) -> str:
        result = self.run_cli(*args, "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        return result.stdout

    def test_list_show_once_and_bottles(self) -> None:
        for listing in (self.cli_ok("proposals", "list"), self.cli_ok("proposals", "list", "--all"),
                        self.cli_ok("supervise", "--once")):
            for proposal_id in self.ids:
                self.assertIn(proposal_id[:8], listing)
            self.assertIn("unreadable", listing)
        for proposal_id, (name, created_at) in zip(self.ids, ODD_TIMES.items(), strict=True):
            with self.subTest(name):
                shown = self.cli_ok("proposals", "show", proposal_id[:8])
                self.assertIn("(unreadable)", shown)
                self.assertNotIn("\x1b", shown)
                self.assertEqual(json.loads(self.cli_ok("proposals", "show", proposal_id, "--json"))["created_at"],
                                 created_at)
        self.assertIn("unreadable", self.cli_ok("bottles", "list"))  # the oldest pending proposal's age
        self.cli_ok("proposals", "list", "--json")

    def test_grants_with_odd_times(self) -> None:
        """A grant row a sidecar wrote, its end no time at all: grants list, bottles show and --json still answer."""
        with sqlite3.connect(self.db, isolation_level=None) as raw:
            for n, ends_at in enumerate(("zzz-not-a-time", "2026-13-45T25:61:61.000000Z")):
                raw.execute("INSERT INTO grants (id, queue_key, tool, subject, subject_sha256, starts_at, ends_at, "
                            "proposal_id, rule_id, decided_by, audit_seq) VALUES (?, 'odd-0', 'egress-allow', "
                            "'{\"host\": \"a.example\"}', ?, '2026-01-01', ?, ?, NULL, 'op@host', ?)",
                            (f"{n:032x}", "0" * 64, ends_at, self.ids[n], 900 + n))
        raw.close()
        self.assertIn("unreadable", self.cli_ok("grants", "list"))
        self.cli_ok("grants", "list", "--json")
        self.cli_ok("bottles", "show", "odd-0")

    def test_the_tui_in_a_terminal(self) -> None:
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; "
                   "echo EXIT=$?; sleep 30")
        term = Terminal(self, command, width=150, height=40)
        screen = term.wait_for(f"{len(self.ids)} pending")
        self.assertIn("unreadable", screen)
        for index in range(len(self.ids)):
            with self.subTest(index):
                term.send("Enter")
                screen = term.wait_for("the agent's justification (its own words")
                self.assertIn("filed", screen)
                self.assertIn("(unreadable)", screen)
                term.send("Escape")
                term.wait_for(" pending from ")
                term.send("Down")
        term.send("q")
        self.assertIn("EXIT=0", term.wait_for("EXIT="))

    def test_odd_payloads_and_audit_details(self) -> None:
        """Reports that are not JSON, or JSON of another shape, and an audit entry whose details are no object."""
        nested = "[" * 100_000 + "]" * 100_000
        ids = write_rows(self.db, [("pay-1", TOOL_GITLEAKS_ALLOW, "not json {", "2026-11-27T08:00:00Z"),
                                        ("pay-2", TOOL_EGRESS_TOKEN_ALLOW, '["a", 1]', "2026-11-27T08:00:00Z"),
                                        ("pay-3", TOOL_EGRESS_ALLOW, nested, "2026-11-27T08:00:00Z"),
                                        ("pay-4", TOOL_GITLEAKS_ALLOW, '{"findings": [1]}', "x")])
        for proposal_id in ids:
            self.assertIn(proposal_id, json.loads(self.cli_ok("proposals", "show", proposal_id, "--json"))["id"])
            self.cli_ok("proposals", "show", proposal_id)
        self.assertIn("unreadable report", self.cli_ok("proposals", "show", ids[0]))
        self.assertIn("unreadable report", self.cli_ok("proposals", "show", ids[3]))
        with QueueStore(self.db) as store:
            decided = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [y]\n", "why")
        digest = json.loads(self.cli_ok("proposals", "show", decided.id, "--json"))["digest"]
        self.cli_ok("proposals", "approve", decided.short_id, "--digest", digest)
        with sqlite3.connect(self.db, isolation_level=None) as raw:
            raw.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
            # JSON (the schema checks that much), but not the object bot-bottle writes
            raw.execute("UPDATE audit_log SET details = '[1, 2]' WHERE proposal_id = ?", (decided.id,))
        raw.close()
        self.assertIn("audit entry 1 is unreadable", self.cli_ok("proposals", "show", decided.short_id))
        self.assertIn("unreadable", self.cli_ok("audit", "list", "--json"))
        self.cli_ok("audit", "list")
        result = self.run_cli("audit", "verify", "--db", str(self.db))
        self.assert_clean_error(result, 1, "entry 1")


class OddRowsDashboardTest(DashboardCase):
    def test_every_page_is_served(self) -> None:
        ids = write_rows(self.path, [(f"odd-{n}", TOOL_EGRESS_BLOCK, "routes: [x]\n", created_at)
                                          for n, created_at in enumerate(ODD_TIMES.values())]
                         + [("pay-1", TOOL_GITLEAKS_ALLOW, "not json {", "")])
        status, _, body = self.call("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn("unreadable", body)
        for proposal_id in ids:
            status, _, body = self.call("GET", f"/proposal/{proposal_id}")
            self.assertEqual(status, 200, body[:300])
            self.assertIn("unreadable", body)
        self.assertEqual(self.call("GET", "/audit")[0], 200)
