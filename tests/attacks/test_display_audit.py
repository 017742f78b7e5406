"""Attacks by a hostile agent and a tampering sidecar on what the operator sees and on the audit proof.

Each test performs one attack with the real tools (the CLI in a subprocess,
sqlite3 on the mounted file as a sidecar would, tmux for the terminal) and
shows it fail.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sqlite3
import sys
import unicodedata

from bot_bottle.audit.chain import compute_hash
from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.decisions import decide
from bot_bottle.errors import AuditTampered, ValidationError
from bot_bottle.policy.routes import validate_final_file
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW
from bot_bottle.schema import migrate
from bot_bottle.text import terminal
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar
from tests.helpers.terminal import Terminal


class SidecarTestCase(TempDirTest):
    """A sidecar with the database file read-write, but not the host's key or anchors."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "attack.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        for index in range(2):
            proposal = self.store.submit(f"web-{index}", TOOL_EGRESS_BLOCK, f"routes: [{index}]\n", "why")
            decide(proposal.id, STATUS_APPROVED, f"ok {index}", decided_by="op@host", store=self.store)

    def raw(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(conn.close)
        for trigger in ("audit_log_no_update", "audit_log_no_delete", "audit_seal_no_delete", "audit_log_chain"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        return conn

    def forge_entry(self, raw: sqlite3.Connection, seal: str | None = None) -> None:
        """Append an entry with a correct sha256 link (and, if given, a made-up seal)."""
        last = raw.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        fields = (last[0] + 1, "2026-01-01T00:00:00.000000Z", "web-1", "operator-edit", "routes", None, "op@host",
                  "widened on purpose", "+  - host: '*'\n", "{}", last[1])
        raw.execute("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*fields, compute_hash(*fields)))
        if seal is not None:
            raw.execute("INSERT INTO audit_seal (seq, mac) VALUES (?, ?)", (last[0] + 1, seal))

    def verify(self) -> tuple[bool, str]:
        with AuditStore(self.db) as audit:
            result = audit.verify()
        return result.ok, result.problem



class SidecarSealTest(SidecarTestCase):
    def test_forged_entries_are_not_sealed_after_the_anchor_is_retired(self) -> None:
        """Deciding is refused; the operator retires the anchor; the host must still not seal the forgery."""
        self.forge_entry(self.raw())
        self.assertEqual(self.run_cli("audit", "retire-anchor", "--yes", "--db", str(self.db)).returncode, 0)
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [z]\n", "why")
        with self.assertRaises(AuditTampered):
            decide(proposal.id, STATUS_APPROVED, store=self.store)
        self.assertIsNone(self.store.response(proposal.id))
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("without the host's key", problem)

    def test_tail_rewritten_without_seals_and_no_anchor(self) -> None:
        """No anchor (retired): the sidecar drops the newest seal and rewrites that entry; it is not resealed."""
        self.assertEqual(self.run_cli("audit", "retire-anchor", "--yes", "--db", str(self.db)).returncode, 0)
        raw = self.raw()
        raw.execute("DELETE FROM audit_seal WHERE seq = 2")
        raw.execute("DELETE FROM audit_log WHERE seq = 2")
        self.forge_entry(raw)
        ok, _problem = self.verify()
        self.assertFalse(ok)
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [z]\n", "why")
        with self.assertRaises(AuditTampered):
            decide(proposal.id, STATUS_APPROVED, store=self.store)

    def test_a_made_up_seal_on_a_forged_entry_is_not_sealed_over(self) -> None:
        """An entry appended with a made-up seal: the host's next decision refuses to chain onto it."""
        self.forge_entry(self.raw(), seal="ab" * 32)
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, "routes: [z]\n", "why")
        with self.assertRaises(AuditTampered) as caught:
            decide(proposal.id, STATUS_APPROVED, store=self.store)
        self.assertIn("entry 3", str(caught.exception))
        self.assertIsNone(self.store.response(proposal.id))
        self.assertFalse(self.verify()[0])


class StoredFieldInErrorTest(SidecarTestCase):
    def test_a_decider_written_by_a_sidecar_cannot_add_a_line_to_an_error(self) -> None:
        """A response written straight into the file, decided_by holding a newline and a fake success line."""
        proposal = self.store.submit("web-5", TOOL_EGRESS_BLOCK, "routes: [q]\n", "why")
        fake = f"mallory\napproved {proposal.short_id} (web-5, egress-block) as op@host"
        raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(raw.close)
        raw.execute("INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
                    "VALUES (?, 'rejected', 'no', NULL, ?, '2026-01-01T00:00:00.000000Z')", (proposal.id, fake))
        result = self.run_cli("proposals", "approve", proposal.short_id, "--db", str(self.db))
        self.assert_clean_error(result, 1, "already rejected by mallory\\x0aapproved")


# Spellings of a widening route that a YAML or JSON reader takes as '*', '*.com' or '/' (one added line each).
WIDENING_SPELLINGS = [
    '  - host: "\\u002a"',            # JSON / YAML double-quoted escape
    '  - host: "\\u002A.com"',
    '  - host: "\\x2a"',              # YAML \x escape
    '  - "h\\u006fst": "*.com"',      # the key itself escaped
    '  - hosts:\n      - "*.com"',    # a hosts: list, the wildcard on a line of its own
    "  - host: >-\n      *.com",      # a block scalar
    '  - host: "*.co.uk"',            # a public suffix: anyone can register under it
    '  - host: "*.github.io"',
    '  - {host: a.example, paths: ["\\/"]}',
    "  - {host: a.example, paths: [/*]}",
    "  - *everything",                # a YAML alias to a value defined elsewhere
    'more: [\n++"x", {host: "*"}]',  # a line starting "++": its diff line starts "+++" like a header
]


class WideningSpellingsTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "routes.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)

    def show(self, proposal_id: str) -> list[str]:
        result = self.run_cli("proposals", "show", proposal_id, "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.split("\n")

    def test_every_spelling_is_marked(self) -> None:
        """Each spelling, added to a routes file, gets the '!' gutter mark and a warning."""
        current = "routes:\n  - host: github.com\n"
        for spelling in WIDENING_SPELLINGS:
            with self.subTest(spelling):
                proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, current + spelling + "\n", "docs",
                                             current_file=current)
                lines = self.show(proposal.short_id)
                self.assertTrue(any(line.startswith("WARNING:") for line in lines), "\n".join(lines))
                last = spelling.split("\n")[-1]
                self.assertIn("! +" + last, lines)

    def test_a_rename_that_puts_unchanged_wildcards_in_effect_is_warned(self) -> None:
        """The '*' stays as it was, far from the change: renaming its section is what widens, and it is named."""
        current = "routes:\n  - host: github.com\nblocked:\n" + "".join(f"  - host: h{i}.example\n" for i in range(6))
        current += '  - host: "*"\n'
        proposed = current.replace("blocked:", "routes-extra:")
        record_launch_routes(self.store, "web-1", current)  # what the bottle runs, as the host has it
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, proposed, "tidy the names", current_file=current)
        text = "\n".join(self.show(proposal.short_id))
        self.assertIn("WARNING: the file keeps 1 unchanged line(s) that widen access", text)
        self.assertIn('line 10: - host: "*"', text)
        self.assertNotIn('host: "*"', text.split("diff (current -> proposed):")[1].split("@@")[-1])

    def test_a_current_file_that_lies_cannot_hide_a_wildcard(self) -> None:
        """A sidecar files the widening file as its own 'current' one, where the host has no routes file of the
        bottle's on record: the whole file is new, the '*' marked and named, and why it reads so is said."""
        routes = 'routes:\n  - host: github.com\n  - host: "*"\n'
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, routes, "no change", current_file=routes)
        text = "\n".join(self.show(proposal.short_id))
        self.assertNotIn("(no change)", text)
        self.assertIn("routes file: adds github.com", text)
        self.assertIn("WARNING: drifted: no routes file is on record for this bottle", text)
        self.assertIn("widens: line 3 (new) widens access: host '*' is a wildcard over every host", text)
        self.assertIn("diff (no file -> proposed):", text)
        self.assertIn('! +  - host: "*"', text)

    def test_an_unchanged_wildcard_of_the_file_on_record_is_named(self) -> None:
        """A file the same as the one the host has on record: the diff is empty, the '*' it keeps is named."""
        routes = 'routes:\n  - host: github.com\n  - host: "*"\n'
        record_launch_routes(self.store, "web-1", routes)
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, routes + "# tidy\n", "no change",
                                     current_file=routes)
        text = "\n".join(self.show(proposal.short_id))
        self.assertNotIn("drifted", text)
        self.assertIn("routes file: names no new host", text)
        self.assertIn('line 3: - host: "*"', text)

    def test_a_route_with_a_key_given_twice_is_not_shown_as_one_reading_of_it(self) -> None:
        """'paths' twice: Python keeps the last ('/x'), a first-wins reader the first ('/'): shown as invalid."""
        route = '{"host": "a.example", "paths": ["/"], "paths": ["/x"]}\n'
        with self.assertRaises(ValidationError):  # submit() refuses it; a sidecar writes it into the file
            self.store.submit("web-1", TOOL_EGRESS_ALLOW, route, "docs")
        proposal = file_as_a_sidecar(self.db, "web-1", TOOL_EGRESS_ALLOW, route, "docs")
        lines = self.show(proposal.short_id)
        self.assertIn("WARNING: unreadable: not a valid route", "\n".join(lines))
        self.assertIn("  nothing: the route does not parse", lines)
        with self.assertRaises(ValidationError):
            validate_final_file(TOOL_EGRESS_ALLOW, route)

    def test_findings_table_columns_hold_with_escapes_and_wide_file_names(self) -> None:
        """A file name with escapes and wide characters: the RULE column still starts in one place."""
        findings = [{"ref": "refs/heads/main", "commit": "abcdef123456", "file": name, "line": 3, "rule": rule,
                     "line_text": "token = ********"}
                    for name, rule in (("漢字\x1b[2J\x08\x08.py", "aws-key"), ("plain.py", "generic-key"))]
        proposal = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, json.dumps({"findings": findings}), "fixture")
        rows = [line for line in self.show(proposal.short_id) if line.startswith("  main  ")]
        self.assertEqual(len(rows), 2)
        starts = {widest_columns(row[: row.index(rule)] + "|") for row, rule in zip(rows, ("aws-key", "generic-key"),
                                                                               strict=True)}
        self.assertEqual(len(starts), 1, rows)

    def test_egress_allow_routes_over_public_suffixes_and_star_paths_are_warned(self) -> None:
        """An egress-allow of '*.co.uk' or a path of '/*' shows a widening warning."""
        for route in ('{"host": "*.co.uk"}', '{"host": "*.vercel.app"}', '{"host": "a.example", "paths": ["/*"]}'):
            with self.subTest(route):
                proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, route + "\n", "docs")
                lines = self.show(proposal.short_id)
                self.assertTrue(any(line.startswith("WARNING: widens: ") for line in lines), "\n".join(lines))
                self.assertLess(lines.index("approving grants:"), lines.index("diff (current -> proposed):"))


def widest_columns(text: str) -> int:
    """Columns of a screen line on a terminal that draws emoji presentation (U+FE0F) and flags two wide.

    Counted here without the project's code: kitty, WezTerm, iTerm2 and
    recent VTE draw '❤️' in two cells, tmux in one.
    """
    columns = 0
    for char in text.rstrip():
        if char == "\ufe0f":
            columns += 1
        elif unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            continue
        elif unicodedata.east_asian_width(char) in "WF" or 0x1F1E6 <= ord(char) <= 0x1F1FF:
            columns += 2
        else:
            columns += 1
    return columns


class EmojiWidthTest(TempDirTest):
    """Emoji that some terminals draw two wide must not push a row past the edge, where it would wrap into a
    line of its own that the agent wrote (a fake row or diff line, without the continuation mark)."""

    def test_rows_fit_the_widest_drawing(self) -> None:
        db = self.tmp / "emoji.db"
        with QueueStore(db) as store:
            fake = "deadbeef  web-9   egress-allow  1s   approved  fine"
            justification = "\u2764\ufe0f" * 40 + "\U0001f1e9\U0001f1ea" * 5 + fake
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: []\n", justification)
        for verb in ("proposals list", f"proposals show {proposal.short_id}", "supervise --once"):
            with self.subTest(verb):
                command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} LESS=FRX "
                           f"{shlex.quote(sys.executable)} -m bot_bottle {verb} --db {shlex.quote(str(db))}; "
                           "echo END-MARK; sleep 30")
                term = Terminal(self, command, width=80, height=40)
                screen = term.wait_for("END-MARK")
                for row in screen.split("\n"):
                    self.assertLessEqual(widest_columns(row), 80, row)


class DecidedProposalRewrittenTest(SidecarTestCase):
    """After the decision, the sidecar rewrites what was decided on: the proposal row itself."""

    def test_every_field_that_was_decided_on(self) -> None:
        """Payload and current file (hashes redone), justification, bottle, filing time: verify names the proposal."""
        self.assertEqual(self.verify(), (True, ""))
        proposal_id = str(self.store.listing(None, include_decided=True)[0][0].id)
        columns = "payload, payload_sha256, current_file, current_file_hash, justification, queue_key, created_at"
        raw = self.raw()
        raw.execute("DROP TRIGGER IF EXISTS proposals_immutable")
        original = raw.execute(f"SELECT {columns} FROM proposals WHERE id = ?", (proposal_id,)).fetchone()
        widened = 'routes:\n  - host: "*"\n'
        for changes in ({"payload": widened, "payload_sha256": hashlib.sha256(widened.encode()).hexdigest()},
                        {"current_file": "routes: [all]\n",
                         "current_file_hash": hashlib.sha256(b"routes: [all]\n").hexdigest()},
                        {"justification": "the operator asked for this"}, {"queue_key": "web-7"},
                        {"created_at": "2020-01-01T00:00:00.000000Z"}):
            with self.subTest(next(iter(changes))):
                raw.execute(f"UPDATE proposals SET {', '.join(f'{c} = :{c}' for c in changes)} WHERE id = :id",
                            {**changes, "id": proposal_id})
                ok, problem = self.verify()
                self.assertFalse(ok)
                self.assertIn(proposal_id, problem)
                raw.execute(f"UPDATE proposals SET ({columns}) = ({', '.join('?' * 7)}) WHERE id = ?",
                            (*original, proposal_id))
                self.assertEqual(self.verify(), (True, ""))


class RewrittenWhileOnScreenTest(SidecarTestCase):
    """The operator reads a harmless proposal; the sidecar rewrites it before the key press that decides."""

    def test_the_tui_records_nothing_it_did_not_show(self) -> None:
        current = "routes:\n  - host: github.com\n"
        proposal = self.store.submit("web-3", TOOL_EGRESS_BLOCK, current + "  - host: docs.python.org\n", "docs",
                                     current_file=current)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; sleep 30")
        term = Terminal(self, command, width=120, height=30)
        term.wait_for("1 pending")
        term.send("Enter")
        term.wait_for("docs.python.org")
        raw = self.raw()
        raw.execute("DROP TRIGGER IF EXISTS proposals_immutable")
        widened = current + '  - host: "*"\n'
        raw.execute("UPDATE proposals SET payload = ?, payload_sha256 = ? WHERE id = ?",
                    (widened, hashlib.sha256(widened.encode()).hexdigest(), proposal.id))
        term.send("a")
        term.wait_for("note (optional)")
        term.send("looks fine", "Enter")
        term.wait_for("for how long?")
        term.send("Enter")
        screen = term.wait_for("not what was shown")
        self.assertIn(proposal.short_id, screen)
        self.assertIsNone(self.store.response(proposal.id))

    def test_a_library_decision_holds_what_it_read(self) -> None:
        """decide(shown=...) refuses a proposal that differs from the one shown, inside its transaction."""
        proposal = self.store.submit("web-3", TOOL_EGRESS_BLOCK, "routes: [a]\n", "docs")
        raw = self.raw()
        raw.execute("DROP TRIGGER IF EXISTS proposals_immutable")
        raw.execute("UPDATE proposals SET justification = 'other' WHERE id = ?", (proposal.id,))
        with self.assertRaises(AuditTampered):
            decide(proposal.id, STATUS_APPROVED, store=self.store, shown=proposal)
        self.assertIsNone(self.store.response(proposal.id))


class DenialOfServiceTest(SidecarTestCase):
    """A sidecar appends entries the host did not seal, so every decision is refused: the documented way out."""

    def decide_new(self) -> None:
        proposal = self.store.submit("web-9", TOOL_EGRESS_BLOCK, f"routes: [{self.id()[-5:]}]\n", "why")
        decide(proposal.id, STATUS_APPROVED, store=self.store)

    def test_set_aside_moves_the_forgeries_out_and_decisions_resume(self) -> None:
        raw = self.raw()
        self.forge_entry(raw, seal="cd" * 32)
        self.forge_entry(raw)
        with self.assertRaises(AuditTampered) as caught:
            self.decide_new()
        self.assertIn("audit set-aside", str(caught.exception))
        export = self.tmp / "forged.jsonl"
        self.assert_clean_error(self.run_cli("audit", "set-aside", "--export", str(export), "--db", str(self.db)),
                                2, "--yes")
        # A trigger of the sidecar's own, its name holding a quote: the host's write drops it first (schema.guard).
        raw.execute('CREATE TRIGGER "x""; --" BEFORE DELETE ON audit_log BEGIN SELECT 1; END')
        triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        before = raw.execute(triggers).fetchall()
        result = self.run_cli("audit", "set-aside", "--export", str(export), "--yes", "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("2 audit entries past entry 2", result.stdout)
        lines = export.read_text().splitlines()
        self.assertEqual([json.loads(line)["seq"] for line in lines], [3, 4])
        self.assertEqual(export.stat().st_mode & 0o777, 0o600)
        self.decide_new()
        self.assertEqual(self.verify(), (True, ""))
        # The triggers it dropped to delete were put back, and those the sidecar dropped made again: the file has
        # the migrations' triggers, and no other.
        known = migrate.discover()
        made = sorted((name,) for kind, name in migrate.expected_schema(known, len(known)) if kind == "trigger")
        self.assertEqual(raw.execute(triggers).fetchall(), made)
        self.assertIn(('x"; --',), before)
        self.assertNotEqual(before, made)
        again = self.run_cli("audit", "set-aside", "--export", str(self.tmp / "again.jsonl"), "--yes",
                             "--db", str(self.db))
        self.assertIn("nothing to set aside", again.stdout)
        self.assertFalse((self.tmp / "again.jsonl").exists())

    def test_set_aside_never_removes_what_the_anchor_proves(self) -> None:
        """A changed entry at or before the anchor stays (restore a backup); the file is not even written."""
        raw = self.raw()
        raw.execute("UPDATE audit_log SET notes = 'changed' WHERE seq = 1")
        export = self.tmp / "forged.jsonl"
        result = self.run_cli("audit", "set-aside", "--export", str(export), "--yes", "--db", str(self.db))
        self.assert_clean_error(result, 1, "anchor")
        self.assertFalse(export.exists())
        with AuditStore(self.db) as audit:
            self.assertEqual(audit.count(), 2)

    def test_an_anchored_newest_entry_changed_does_not_stop_decisions(self) -> None:
        """Editing the host's newest (anchored) entry is reported by verify; it cannot stop every decision."""
        self.raw().execute("UPDATE audit_log SET notes = 'changed' WHERE seq = 2")
        self.decide_new()
        ok, problem = self.verify()
        self.assertFalse(ok)
        self.assertIn("entry 2", problem)


class SchemaNamesTest(SidecarTestCase):
    """The sidecar adds schema objects whose names hold escapes and a newline; db check and doctor name them."""

    def test_db_check_doctor_and_status_show_them_escaped(self) -> None:
        raw = self.raw()
        raw.execute('CREATE TABLE "t\x1b]0;pwned\x07\nok     integrity: fine" (x)')
        raw.execute('CREATE INDEX "i\x1b[2J" ON proposals (tool)')
        raw.execute("UPDATE schema_history SET name = ? WHERE version = 2", ("n\x1b]52;c;cm0K\x07",))
        for verb in (("db", "check"), ("doctor",), ("db", "status")):
            with self.subTest(verb):
                result = self.run_cli(*verb, "--db", str(self.db))
                self.assertEqual(result.returncode, 1)
                output = result.stdout + result.stderr
                self.assertFalse(any(ord(c) < 0x20 and c != "\n" for c in output), output)
                self.assertNotIn("\nok     integrity: fine", output)


class BackupPruningTest(SidecarTestCase):
    def test_a_backup_with_an_entrys_original_text_is_not_pruned(self) -> None:
        """The sidecar edits an entry's notes in place (hash column untouched); the backup with the original
        text survives every later migration's pruning."""
        self.store.close()
        result = self.run_cli("db", "downgrade", "--to", "3", "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)
        # A careful sidecar puts the trigger back, so the schema looks as the migrations made it.
        raw = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(raw.close)
        trigger = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log_no_update'").fetchone()[0]
        raw.execute("DROP TRIGGER audit_log_no_update")
        raw.execute("UPDATE audit_log SET notes = 'nothing to see' WHERE seq = 1")
        raw.execute(trigger)
        for _ in range(migrate.BACKUPS_KEPT + 1):
            self.assertEqual(self.run_cli("db", "downgrade", "--to", "3", "--db", str(self.db)).returncode, 0)
            self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)
        originals = []
        for backup in self.tmp.glob("attack.db.v*.bak"):
            conn = sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)
            try:
                originals += conn.execute("SELECT notes FROM audit_log WHERE seq = 1 AND notes = 'ok 0'").fetchall()
            finally:
                conn.close()
        self.assertTrue(originals, "every copy of entry 1's original text was pruned")


class ForgedDecisionShownTest(SidecarTestCase):
    """The sidecar writes an 'approval by the operator' straight into responses (and an entry to match)."""

    def show(self, proposal_id: str) -> str:
        result = self.run_cli("proposals", "show", proposal_id, "--db", str(self.db))
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def test_a_forged_approval_is_shown_as_unproven(self) -> None:
        proposal = self.store.submit("web-4", TOOL_EGRESS_BLOCK, 'routes:\n  - host: "*"\n', "please")
        raw = self.raw()
        raw.execute("INSERT INTO responses (proposal_id, status, notes, final_file, decided_by, decided_at) "
                    "VALUES (?, 'approved', 'ok', NULL, 'op@host', '2026-01-01T00:00:00.000000Z')", (proposal.id,))
        text = self.show(proposal.short_id)
        self.assertIn("status    approved by op@host", text)
        self.assertIn("WARNING: the audit log does not prove this decision: the audit log has no entry", text)
        # ... and with an entry whose sha256 is right and whose seal is made up.
        last = raw.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        details = json.dumps({"decided_at": "2026-01-01T00:00:00.000000Z"})
        fields = (last[0] + 1, "2026-01-01T00:00:00.000000Z", "web-4", "approved", "egress-block", proposal.id,
                  "op@host", "ok", "", details, last[1])
        raw.execute("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (*fields, compute_hash(*fields)))
        raw.execute("INSERT INTO audit_seal (seq, mac) VALUES (?, ?)", (last[0] + 1, "ef" * 32))
        self.assertIn("seal was not made with this host's key", self.show(proposal.short_id))

    def test_a_real_decision_is_not_flagged(self) -> None:
        proposal_id = self.store.listing(None, include_decided=True)[0][0].short_id
        text = self.show(proposal_id)
        self.assertIn("status    approved by op@host", text)
        self.assertNotIn("does not prove", text)


class VariationSelectorTest(TempDirTest):
    def test_a_selector_that_draws_nothing_is_shown(self) -> None:
        """'pypi.org' + U+FE00 looks like 'pypi.org' raw; shown, it carries a visible escape. Emoji keep theirs."""
        self.assertEqual(terminal.clean_line("pypi.org\ufe00"), "pypi.org\\ufe00")
        self.assertEqual(terminal.clean_line("a\U000e0100"), "a\\U000e0100")
        self.assertEqual(terminal.clean_line("\u2764\ufe0f"), "\u2764\ufe0f")
        self.assertEqual(terminal.clean_line("\u845b\U000e0100"), "\u845b\U000e0100")
        self.assertEqual(terminal.clean_line("\u2764\ufe0f\ufe0f"), "\u2764\ufe0f\\ufe0f")
        with self.assertRaises(ValidationError):
            validate_final_file(TOOL_EGRESS_BLOCK, "routes:\n  - host: pypi.org\ufe00\n")


class JsonOutputTest(SidecarTestCase):
    """--json and audit export on a terminal: JSON leaves DEL, C1 controls and bidi characters raw by itself."""

    def test_json_escapes_what_json_leaves_raw_and_stays_exact(self) -> None:
        hostile = "docs\u009b2J\u009d0;title\u009c\u202eevil\x7f\u2066\U000e0041"
        proposal = self.store.submit("web-6", TOOL_EGRESS_BLOCK, "routes: [j]\n", hostile)
        decide(proposal.id, STATUS_APPROVED, hostile, decided_by="op@host", store=self.store)
        for args in (("proposals", "show", proposal.short_id, "--json"), ("proposals", "list", "--all", "--json"),
                     ("audit", "list", "--json"), ("audit", "export")):
            with self.subTest(args):
                result = self.run_cli(*args, "--db", str(self.db))
                self.assertEqual(result.returncode, 0, result.stderr)
                raw = [c for c in result.stdout if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F
                                                                   or unicodedata.category(c) == "Cf")]
                self.assertEqual(raw, [])
                # Exact: the parsed values hold the text as it was filed.
                documents = ([json.loads(line) for line in result.stdout.splitlines()] if args[1] == "export"
                             else [json.loads(result.stdout)])
                self.assertIn(hostile, json.dumps(documents, ensure_ascii=False))
