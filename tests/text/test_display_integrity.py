"""Nothing an agent writes can deceive the operator: every human-facing output, fed hostile text.

The forbidden characters are listed here independently of ``terminal_text``,
so these tests do not take the sanitizer's word for what is unsafe.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
import unicodedata
import unittest

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.render import describe, modification
from bot_bottle.decisions import decide
from bot_bottle.errors import ValidationError
from bot_bottle.policy.routes import make_route, parse_route, validate_final_file, widening_lines
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
)
from bot_bottle.text import terminal
from bot_bottle.text.diffs import render_diff
from tests.helpers.corpus import HOSTILE, forbidden
from tests.helpers.support import REPO, TempDirTest, file_as_a_sidecar, wait_until
from tests.helpers.terminal import Terminal


class SanitizerTest(unittest.TestCase):
    def test_every_class_becomes_visible_escapes(self) -> None:
        """Each hostile class comes out with no forbidden character, and with an escape where one was."""
        for name, text in HOSTILE.items():
            with self.subTest(name):
                shown = terminal.clean(text)
                self.assertFalse([c for c in shown if forbidden(c)], name)
                if any(forbidden(c) for c in text if c != "\n"):
                    self.assertTrue(any(s.escaped for line in terminal.lines(text) for s in line), name)

    def test_named_escapes(self) -> None:
        """Escapes say which character was there."""
        self.assertEqual(terminal.clean_line("a\x1b[2Jb"), "a\\x1b[2Jb")
        self.assertEqual(terminal.clean_line("\u202eabc"), "\\u202eabc")
        self.assertEqual(terminal.clean_line("x\U000e0041"), "x\\U000e0041")
        self.assertEqual(terminal.clean_line("a\rb"), "a\\x0db")
        self.assertEqual(terminal.clean("a\r\nb"), "a\nb")
        self.assertEqual(terminal.clean_line("a\nb"), "a\\x0ab")
        self.assertEqual(terminal.clean("\tx"), " " * 8 + "x")

    def test_widths_are_display_columns(self) -> None:
        """Wide characters take two columns, combining marks none; floods of marks are capped."""
        self.assertEqual(terminal.width(terminal.line("漢字ab")), 6)
        self.assertEqual(terminal.width(terminal.line("e\u0301")), 1)
        flood = terminal.line("Z" + "\u0301" * 500)
        self.assertLessEqual(sum(1 for s in flood if not s.escaped for c in s.text if unicodedata.combining(c)),
                             terminal.MAX_COMBINING)
        self.assertTrue(terminal.line("\u0301x")[0].escaped, "a mark with nothing to combine with")

    def test_cuts_and_wraps_are_marked(self) -> None:
        """A cut ends with the marker; a wrap never splits a wide character and marks continuations."""
        text = terminal.line("漢字" * 30)
        for columns in (5, 10, 39, 40, 80):
            cut = terminal.fit(text, columns)
            self.assertLessEqual(terminal.width(cut), columns)
            self.assertEqual(cut[-1].text, terminal.CUT_MARKER)
            rows = terminal.wrap(text, columns)
            self.assertEqual("".join(terminal.plain(r).removeprefix(terminal.CONTINUATION) for r in rows),
                             "漢字" * 30)
            for index, row in enumerate(rows):
                self.assertLessEqual(terminal.width(row), columns)
                self.assertEqual(terminal.plain(row).startswith(terminal.CONTINUATION), index > 0)
        self.assertEqual(terminal.plain(terminal.fit(terminal.line("short"), 10)), "short")
        # A line cut just after a cell that was cut already ends with one mark, not two.
        cell = terminal.fit(terminal.line("docs.python.org (any method; every path)"), 28)
        row = [*terminal.line("7592ed9c  "), *cell, *terminal.line("  docs")]
        for columns in range(30, 41):
            shown = terminal.plain(terminal.fit(row, columns))
            self.assertNotIn(terminal.CUT_MARKER * 2, shown, columns)
            self.assertTrue(shown.endswith(terminal.CUT_MARKER), shown)

    def test_in_ascii_writes_every_other_character_as_its_escape(self) -> None:
        """Where the locale holds ASCII only (LC_ALL=C), what is not ASCII is an escape, styled as one, never
        dropped; our own cut and continuation marks take their ASCII forms; widths stay true."""
        line = terminal.in_ascii([*terminal.line("caf\u00e9 \u2192 \u0440\u0430\u0443\u0440\u0430l \x1b"),
                                  terminal.Segment(terminal.CUT_MARKER)])
        self.assertEqual(terminal.plain(line), "caf\\xe9 \\u2192 \\u0440\\u0430\\u0443\\u0440\\u0430l \\x1b>")
        self.assertTrue(terminal.plain(line).isascii())
        self.assertEqual([s.text for s in line if s.escaped],
                         ["\\xe9", "\\u2192", "\\u0440", "\\u0430", "\\u0443", "\\u0440", "\\u0430", "\\x1b"])
        self.assertEqual(terminal.width(line), len(terminal.plain(line)))
        rows = terminal.wrap(terminal.in_ascii(terminal.line("\u6f22" * 30)), 20)
        self.assertTrue(all(terminal.width(row) <= 20 for row in rows))
        continued = terminal.in_ascii(rows[1])
        self.assertTrue(terminal.plain(continued).startswith(terminal.ASCII_CONTINUATION), continued)


class RoutesTest(unittest.TestCase):
    def test_route_rules(self) -> None:
        """Hosts and paths follow the server's rules; a route's document round-trips."""
        route = make_route(" PyPI.org ", ["/simple/", "/simple/", "/packages/"])
        self.assertEqual(route.paths, ("/packages/", "/simple/"))
        self.assertEqual(parse_route(route.to_document()), route)
        for bad in ('this is not json {{{', '[]', '{"host": 5}', '{"host": "a b"}', '{"paths": ["/"]}',
                    '{"host": "a.com", "paths": ["no-slash"]}', '{"host": "a.com", "extra": 1}',
                    '{"host": "a.com", "paths": "/"}', '{"host": "\u202ea.com"}'):
            with self.subTest(bad), self.assertRaises(ValidationError):
                parse_route(bad)

    def test_widening(self) -> None:
        """Wildcards over everything or a whole TLD, and a path of /, are flagged; ordinary routes are not."""
        self.assertTrue(make_route("*.com").widening())
        self.assertTrue(make_route("a.com", ["/"]).widening())
        self.assertFalse(make_route("*.pythonhosted.org", ["/packages/"]).widening())
        diff = render_diff("routes:\n  - host: a.com\n", 'routes:\n  - host: a.com\n  - host: "*"\n  - host: b.org\n'
                           "    paths: [/]\n  - host: '*.io'\n")
        flagged = [line for i, line in enumerate(diff.split("\n")) if i in widening_lines(diff)]
        self.assertEqual(flagged, ['+  - host: "*"', "+    paths: [/]", "+  - host: '*.io'"])


class DetailMeaningTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore(self.tmp / "m.db")
        self.addCleanup(self.store.close)

    def test_egress_allow_shows_its_parsed_route(self) -> None:
        """An egress-allow reads as host and paths, with a warning for a TLD wildcard."""
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, make_route("*.com", ["/"]).to_document(), "x")
        text = "\n".join(describe(proposal, None))
        self.assertIn("approving grants:\n  *.com (any method; /)\n", text)
        self.assertIn("WARNING: widens: host '*.com' is a wildcard over every name under .com, a top-level domain",
                      text)

    def test_egress_block_marks_widening_lines(self) -> None:
        """The added '*' line is marked in the gutter, under a warning that names it."""
        payload = 'routes:\n  - host: docs.python.org\n  - {"host": "*"}\n  - host: pypi.org\n'
        proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, payload, "docs",
                                     current_file="routes:\n  - host: docs.python.org\n")
        lines = describe(proposal, None)
        self.assertIn("WARNING: 1 added line(s) widen access (marked !):", lines)
        self.assertIn('! +  - {"host": "*"}', lines)
        self.assertIn("  +  - host: pypi.org", lines)


    def test_a_newline_in_a_report_field_cannot_fake_a_row(self) -> None:
        """A file name with a newline in a findings report stays on its row, the newline escaped."""
        fake = "a.txt:1\nmain      deadbeef  clean.txt:3  generic-api-key"
        report = {"pushed": [{"ref": "refs/heads/main"}], "findings": [
            {"ref": "refs/heads/main", "commit": "0" * 40, "file": fake, "line": 1, "rule": "r", "line_text": "x"}]}
        proposal = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, json.dumps(report), "fixture")
        result = self.run_cli("proposals", "show", proposal.id, "--db", str(self.tmp / "m.db"))
        self.assertIn("a.txt:1\\x0amain", result.stdout)
        self.assertFalse([line for line in result.stdout.split("\n") if line.startswith("main ")])


class HostileOutputsTest(TempDirTest):
    """The corpus in every agent-controlled field, through every human-facing CLI output."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "hostile.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.ids: list[str] = []
        for index, (name, text) in enumerate(HOSTILE.items()):
            bottle = f"web-{index}"
            routes = 'routes:\n  - host: docs.python.org\n  - {"host": "*"}' + text + "\n  - host: pypi.org\n"
            block = self.store.submit(bottle, TOOL_EGRESS_BLOCK, routes, f"{name}: {text}\nsecond {text}",
                                      current_file="routes:\n  - host: docs.python.org\n" + text)
            # No route submit() takes (it refuses them): a sidecar writes such a row into the file itself.
            allow = file_as_a_sidecar(self.db, bottle, TOOL_EGRESS_ALLOW, '{"host": "' + text + '"}', text)
            findings = {"pushed": [{"ref": "refs/heads/" + text}], "findings": [
                {"ref": "refs/heads/" + text, "commit": text, "file": text, "line": 1, "rule": text,
                 "line_text": text}]}
            leaks = self.store.submit(bottle, TOOL_GITLEAKS_ALLOW, json.dumps(findings, ensure_ascii=False), text)
            dlp = {"method": text, "host": text, "path": text, "detector": text, "value_length": 40, "snippet": text}
            token = self.store.submit(bottle, TOOL_EGRESS_TOKEN_ALLOW, json.dumps(dlp, ensure_ascii=False), text)
            self.ids += [block.id, allow.id, leaks.id, token.id]
        # Decided ones too: notes and decider show in listings, details and the audit log.
        decide(self.ids[0], STATUS_REJECTED, "no " + HOSTILE["mix"], decided_by="op" + HOSTILE["title"],
               store=self.store)

    def assert_clean(self, output: str, what: str) -> None:
        bad = sorted({f"U+{ord(c):04X}" for c in output if forbidden(c)})
        self.assertEqual(bad, [], f"{what} wrote raw characters a terminal acts on")

    def test_every_listing_and_detail_view(self) -> None:
        """list, list --all, show (every proposal), supervise --once and audit list write no raw control."""
        db = str(self.db)
        outputs = {
            "proposals list": self.run_cli("proposals", "list", "--db", db),
            "proposals list --all": self.run_cli("proposals", "list", "--all", "--db", db),
            "supervise --once": self.run_cli("supervise", "--once", "--db", db),
            "audit list": self.run_cli("audit", "list", "--db", db),
        }
        for proposal_id in self.ids[:8] + self.ids[-8:]:
            outputs[f"proposals show {proposal_id[:8]}"] = self.run_cli("proposals", "show", proposal_id, "--db", db)
        for what, result in outputs.items():
            with self.subTest(what):
                self.assertEqual(result.returncode, 0, result.stderr)
                output = result.stdout + result.stderr
                if not what.startswith("proposals show"):
                    # Piped, a table is tab separated: a tab is its separator and nothing else, so no hostile
                    # cell adds a column (or a line) to its row.
                    rows = result.stdout.splitlines()
                    self.assertEqual({row.count("\t") for row in rows}, {rows[0].count("\t")}, what)
                    output = output.replace("\t", " ")
                self.assert_clean(output, what)
        shown = outputs[f"proposals show {self.ids[0][:8]}"].stdout
        self.assertIn('! +  - {"host": "*"}\\x1b[2J\\x1b[H', shown)  # the route is there, the escape visible
        self.assertIn("WARNING: 1 added line(s) widen access", shown)

    def test_json_stays_exact(self) -> None:
        """--json is JSON: the hostile text comes back exactly, escaped by JSON itself."""
        listed = json.loads(self.run_cli("proposals", "list", "--all", "--json", "--db", str(self.db)).stdout)
        by_id = {p["id"]: p for p in listed}
        for proposal_id in self.ids[:8]:
            self.assertEqual(by_id[proposal_id]["justification"], self.store.get(proposal_id).justification)
            shown = json.loads(self.run_cli("proposals", "show", proposal_id, "--json", "--db", str(self.db)).stdout)
            self.assertEqual(shown["payload"], self.store.get(proposal_id).payload)

    def test_error_messages_quoting_input(self) -> None:
        """An error that quotes what it was given quotes it escaped."""
        bad_file = self.tmp / "final.txt"
        bad_file.write_text("routes:\n  - host: a.com" + HOSTILE["bidi"] + "\n")
        for args in (("proposals", "show", HOSTILE["clear-and-home"]),
                     ("proposals", "modify", self.ids[4], "--file", str(bad_file)),
                     ("audit", "list", "--since", HOSTILE["title"]),
                     ("proposals", "list", "--bottle", HOSTILE["title"])):
            with self.subTest(args[:2]):
                result = self.run_cli(*args, "--db", str(self.db))
                self.assertNotEqual(result.returncode, 0)
                self.assert_clean(result.stdout + result.stderr, " ".join(args[:2]))


class ModifyValidationTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "modify.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.allow = self.store.submit("web-1", TOOL_EGRESS_ALLOW, make_route("pypi.org").to_document(), "pip")
        self.block = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n  - host: a.com\n  - host: b.com\n",
                                       "b", current_file="routes:\n  - host: a.com\n")

    def modify(self, proposal_id: str, text: str, *extra: str) -> tuple[int, str]:
        final = self.tmp / "final"
        final.write_bytes(text.encode("utf-8"))
        result = self.run_cli("proposals", "modify", proposal_id, "--file", str(final), "--db", str(self.db),
                              *extra)
        return result.returncode, result.stderr

    def test_invalid_final_files_are_refused_and_nothing_recorded(self) -> None:
        """Each tool's invalid final file: one clear error, exit 2, no response, no audit entry."""
        cases = {
            self.allow.id: ["this is not json {{{", '["pypi.org"]', '{"host": "pypi.org", "port": 443}',
                            '{"host": "*"}', '{"host": "pypi.org", "paths": ["simple"]}', '{"paths": ["/"]}'],
            self.block.id: ["routes:\n  - host: a.com\x1b[2J\n", "routes:\n  - host: \u202ea.com\n",
                            "routes:\r\n  - host: a.com\r\n", "routes:\n  - host: a\u200b.com\n",
                            "routes:\n  - host: a\x08.com\n"],
        }
        for proposal_id, texts in cases.items():
            for text in texts:
                with self.subTest(text=text):
                    code, stderr = self.modify(proposal_id, text, "--yes")
                    self.assertEqual(code, 2, stderr)
                    self.assertIn("--file", stderr)
                    self.assertNotIn("Traceback", stderr)
                    self.assertFalse([c for c in stderr if forbidden(c)])
        self.assertIsNone(self.store.response(self.allow.id))
        self.assertIsNone(self.store.response(self.block.id))
        with AuditStore(self.db) as audit:
            self.assertEqual(audit.count(), 0)

    def test_the_tui_and_cli_share_the_rules(self) -> None:
        """decide() itself refuses what the CLI refuses (the TUI and any other caller go through it)."""
        with self.assertRaises(ValidationError):
            decide(self.allow.id, STATUS_MODIFIED, final_file="nope {{{", store=self.store)
        with self.assertRaises(ValidationError):
            validate_final_file(TOOL_EGRESS_BLOCK, "a\u2066b\n")
        with self.assertRaises(ValidationError):
            modification(self.allow, "nope")

    def test_a_valid_file_is_recorded_exactly(self) -> None:
        """A valid final file is recorded byte for byte."""
        text = '{"host": "pypi.org", "paths": ["/simple/"]}'
        self.assertEqual(self.modify(self.allow.id, text, "--yes"), (0, ""))
        response = self.store.response(self.allow.id)
        assert response is not None
        self.assertEqual((response.status, response.final_file), (STATUS_MODIFIED, text))


class TerminalStateTest(TempDirTest):
    """In a real terminal (tmux): the screen shows the true content and the terminal is unchanged after."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "term.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        attack = (HOSTILE["title"] + HOSTILE["clipboard"] + HOSTILE["hyperlink"] + HOSTILE["clear-and-home"]
                  + "routes:\n  - host: docs.python.org\n  - host: pypi.org\n" + HOSTILE["hidden-text"]
                  + HOSTILE["cut-off-colour"])
        routes = 'routes:\n  - {"host": "*"}' + attack + "\n"
        self.proposal = self.store.submit("web-1", TOOL_EGRESS_BLOCK, routes, "docs" + HOSTILE["cut-off-colour"])
        self.raw = self.tmp / "raw.txt"
        self.raw.write_text(routes)

    def run_in_terminal(self, command: str) -> tuple[str, Terminal]:
        ready = self.tmp / "options-set"
        ready.unlink(missing_ok=True)
        # The command waits until tmux takes OSC 52 and title changes, so the control test can see them work.
        script = (f"while [ ! -e {shlex.quote(str(ready))} ]; do sleep 0.05; done; cd {shlex.quote(str(REPO))} && "
                  f"{command}; printf 'AFTER-MARK\\n'; sleep 30")
        term = Terminal(self, script, width=160, height=40)
        term.run("set-option", "-g", "set-clipboard", "on")
        term.run("set-option", "-g", "allow-rename", "on")
        ready.touch()
        term.wait_for("AFTER-MARK")
        time.sleep(0.2)
        return term.screen(), term

    def state(self, term: Terminal) -> tuple[str, str, str]:
        title = term.run("display-message", "-p", "-t", "t", "#{pane_title}").strip()
        buffers = term.run("list-buffers", check=False).strip()
        after = [line for line in term.run("capture-pane", "-p", "-e", "-t", "t").split("\n") if "AFTER-MARK" in line]
        return title, buffers, after[-1] if after else ""

    def test_raw_bytes_would_deceive(self) -> None:
        """Control: the same bytes printed raw do set the title, the clipboard and the colour here."""
        _screen, term = self.run_in_terminal(f"cat {shlex.quote(str(self.raw))}")
        title, buffers, after = self.state(term)
        self.assertEqual(title, "pwned title")
        self.assertTrue(buffers, "OSC 52 reached tmux's clipboard")
        self.assertIn("\x1b[32m", after)

    def test_proposals_show_and_list_cannot(self) -> None:
        """proposals show and list in a terminal: '*' visible, escapes shown, title/clipboard/colour untouched."""
        env = f"env HOME={shlex.quote(str(self.home))} {shlex.quote(sys.executable)} -m bot_bottle"
        for verb in (f"proposals show {self.proposal.short_id}", "proposals list", "supervise --once",
                     "audit list"):
            with self.subTest(verb):
                screen, term = self.run_in_terminal(f"{env} {verb} --db {shlex.quote(str(self.db))}")
                title, buffers, after = self.state(term)
                self.assertNotEqual(title, "pwned title")
                self.assertEqual(buffers, "")
                self.assertNotIn("\x1b[32m", after)
                if verb.startswith("proposals show"):
                    self.assertIn('! +  - {"host": "*"}\\x1b]0;pwned title\\x07', screen.replace("↪ ", ""))
                    self.assertIn("WARNING: 1 added line(s) widen access", screen)


class TuiHostileTest(TempDirTest):
    """The curses TUI with hostile and wide text, at several widths."""

    def start(self, width: int, locale: str = "") -> Terminal:
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} {locale} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; "
                   "sleep 30")
        term = Terminal(self, command, width=width, height=30)
        term.wait_for(self.marks.short_id)  # the last row: the whole list is drawn
        return term

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "tui.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        overwrite = '{"host": "*"}' + "\b" * 13 + '{"host": "pypi.org"}'
        self.spoof = self.store.submit("web-1", TOOL_EGRESS_BLOCK, f"routes:\n  - {overwrite}\n",
                                       "docs" + "\b" * 40 + "other-bottle   1s  harmless")
        self.wide = self.store.submit("web-2", TOOL_EGRESS_ALLOW, make_route("a.example").to_document(),
                                      "漢字" * 150)
        self.marks = self.store.submit("web-3", TOOL_EGRESS_ALLOW, make_route("b.example").to_document(),
                                       ("e\u0301\u0302\u0303\u0304\u0305" * 10) + "Z" * 300)

    def test_backspaces_cannot_rewrite_the_screen(self) -> None:
        """Backspaces show as escapes: the '*' route stays visible and the list row keeps its own bottle."""
        term = self.start(120)
        screen = term.screen()
        row = next(line for line in screen.split("\n") if self.spoof.short_id in line)
        self.assertIn("web-1", row)
        self.assertIn("\\x08", row)
        term.send("Enter")
        detail = term.wait_for("diff (")
        self.assertIn('{"host": "*"}\\x08', detail)
        self.assertIn("WARNING: 1 added line(s) widen access", detail)
        term.send("q")

    def test_rows_never_overflow_at_any_width(self) -> None:
        """At 40, 80 and 200 columns each list row stays on its row and long text ends with the cut marker."""
        for width in (40, 80, 200):
            with self.subTest(width=width):
                term = self.start(width)
                rows = term.screen().split("\n")
                ids = [self.spoof.short_id, self.wide.short_id, self.marks.short_id]
                self.assertTrue(rows[1].startswith("  ID        BOTTLE"), rows[1])  # the columns' names
                for line_number, proposal_id in enumerate(ids, start=2):
                    self.assertIn(proposal_id, rows[line_number])
                    self.assertLessEqual(_columns(rows[line_number]), width)
                if width < 200:
                    self.assertTrue(rows[3].rstrip().endswith(terminal.CUT_MARKER), rows[3])
                    self.assertNotIn("LEFT", rows[1])  # what approving grants keeps the room
                else:  # how long each may still wait, under its name
                    self.assertIn("AGE    LEFT  GRANTS", rows[1])
                    self.assertRegex(rows[2], r"  \d+s  23h5\dm  ")
                # The detail view: wrapped, continuations marked, nothing past the edge.
                term.send("j", "Enter")
                detail = term.wait_for("approving grants:").split("\n")
                self.assertTrue(all(_columns(line) <= width for line in detail))
                term.send("G")  # the agent's words come last
                detail = term.wait_for("the agent's justification").split("\n")
                self.assertTrue(all(_columns(line) <= width for line in detail))
                wrapped = [line for line in detail if line.startswith(terminal.CONTINUATION)]
                self.assertTrue(wrapped, "the long justification wraps with continuation marks")
                term.send("q")

    def test_in_an_ascii_locale_the_agents_words_are_drawn_as_escapes(self) -> None:
        """BROKE before the fix: under LC_ALL=C curses drew each character outside ASCII as nothing: 'need caf\u00e9
        \u2192 docs' read 'need caf   docs', the wide proposal's row and its words were blank, and the key line
        began '   /jk'. Now each is its escape, as the CLI writes it there, and the arrows are words."""
        term = self.start(200, locale="LC_ALL=C")
        rows = term.screen().split("\n")
        self.assertTrue(all(line.isascii() for line in rows), rows)
        wide_row = next(line for line in rows if self.wide.short_id in line)
        self.assertIn("agent: \\u6f22\\u5b57\\u6f22", wide_row)
        self.assertTrue(wide_row.rstrip().endswith(terminal.ASCII_CUT_MARKER), wide_row)
        self.assertIn("Up/Down/j/k move", rows[-2] + rows[-1])
        term.send("j", "Enter")
        term.wait_for("approving grants:")
        term.send("G")
        detail = term.wait_for("the agent's justification").split("\n")
        self.assertTrue(all(line.isascii() and len(line.rstrip()) <= 200 for line in detail), detail)
        words = [line for line in detail if "\\u6f22\\u5b57" in line]
        self.assertGreater(len(words), 1, "the justification is drawn, wrapped")
        self.assertTrue(any(line.startswith(terminal.ASCII_CONTINUATION) for line in words), words)
        term.send("q")


def _columns(line: str) -> int:
    """Display columns of a captured screen line, counted without the project's code."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in line.rstrip())


class CliConfirmTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "confirm.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.block = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n  - host: a.com\n  - host: b.com\n",
                                       "b", current_file="routes:\n  - host: a.com\n")
        self.final = self.tmp / "final.yaml"
        self.final.write_text("routes:\n  - host: a.com\n  - host: c.com\n")

    def run_modify(self, answer: str) -> str:
        marker = self.tmp / "exit"
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle proposals modify {self.block.short_id} "
                   f"--file {shlex.quote(str(self.final))} --db {shlex.quote(str(self.db))}; "
                   f"echo $? > {shlex.quote(str(marker))}; sleep 30")
        term = Terminal(self, command, width=120, height=30)
        screen = term.wait_for(f"record this modification of {self.block.short_id}")
        term.send(answer, "Enter")
        wait_until(marker.exists, 15, what="the modify command's exit")
        return screen

    def test_no_records_nothing(self) -> None:
        """The operator sees their own diff and how to cancel; anything but yes records nothing."""
        screen = self.run_modify("n")
        for needle in ("diff (proposed -> final):", "  -  - host: b.com", "  +  - host: c.com", "[y/N]"):
            self.assertIn(needle, screen)
        self.assertIsNone(self.store.response(self.block.id))

    def test_yes_records_what_was_shown(self) -> None:
        """yes records exactly the file whose diff was shown."""
        screen = self.run_modify("yes")
        response = self.store.response(self.block.id)
        assert response is not None
        self.assertEqual(response.final_file, self.final.read_text())
        shown = render_diff(self.block.payload, self.final.read_text(), before_name="proposed", after_name="final")
        for line in shown.rstrip("\n").split("\n"):
            self.assertIn("  " + line, screen)


if __name__ == "__main__":
    unittest.main()


class TuiModifyTest(TempDirTest):
    def test_an_invalid_edit_cannot_be_recorded(self) -> None:
        """In the TUI an edit its tool cannot take shows why, offers only edit again or cancel; nothing recorded."""
        db = self.tmp / "tm.db"
        with QueueStore(db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, make_route("pypi.org").to_document(), "pip")
        editor = self.tmp / "editor.sh"
        editor.write_text("#!/bin/sh\nprintf 'this is not json {{{' > \"$1\"\n")
        editor.chmod(0o755)
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"EDITOR={shlex.quote(str(editor))} {shlex.quote(sys.executable)} -m bot_bottle supervise "
                   f"--db {shlex.quote(str(db))}; sleep 30")
        term = Terminal(self, command)
        term.wait_for("1 pending")
        term.send("m")
        screen = term.wait_for("cannot record this file")
        self.assertIn("e edit again  n/Esc cancel", screen)
        self.assertNotIn("y record", screen)
        term.send("y")  # not offered: ignored
        time.sleep(0.3)
        term.send("Escape")
        term.wait_for("modify cancelled: nothing recorded")
        term.send("q")
        with QueueStore(db) as store:
            self.assertIsNone(store.response(proposal.id))
