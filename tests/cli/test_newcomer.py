"""A newcomer's first hour: every command either does what was meant or says in one line what went wrong."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import unittest

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_BLOCK
from bot_bottle.schema import migrate
from tests.helpers.support import REPO, TempDirTest, wait_until
from tests.helpers.terminal import Terminal

EVERY_READING_VERB = (
    ("proposals", "list"), ("proposals", "show", "abcd"), ("proposals", "approve", "abcd"),
    ("proposals", "reject", "abcd", "--reason", "x"), ("audit", "list"), ("audit", "verify"),
    ("audit", "export"), ("audit", "head"), ("db", "status"), ("db", "downgrade", "--to", "1"),
    ("db", "backup"), ("db", "check"), ("supervise", "--once"),
)


class MistypedDbTest(TempDirTest):
    def test_a_missing_db_is_an_error_and_creates_nothing(self) -> None:
        """Every verb but db upgrade and demo refuses a --db that is not there, naming the command that creates it."""
        missing = self.tmp / "nonexistent" / "dir" / "x.db"
        for verb in EVERY_READING_VERB:
            with self.subTest(verb=" ".join(verb)):
                self.assert_clean_error(self.run_cli(*verb, "--db", str(missing)), 1, "no database there",
                                        "db upgrade --db")
                self.assertFalse((self.tmp / "nonexistent").exists())

    def test_db_before_the_verb(self) -> None:
        """--db may come before the verb, and is checked the same way."""
        missing = self.tmp / "x.db"
        self.assert_clean_error(self.run_cli("--db", str(missing), "proposals", "list"), 1, "no database there")
        self.assertEqual(self.run_cli("--db", str(missing), "db", "upgrade").returncode, 0)
        listed = self.run_cli("--db", str(missing), "proposals", "list")
        self.assertEqual((listed.returncode, listed.stdout.strip()), (0, "no pending proposals"))

    def test_a_tilde_the_shell_left_is_home(self) -> None:
        """BROKE before the fix: 'db upgrade --db=~/copy.db' (the shell expands no ~ after '--db=') made a
        directory named '~' in the current one, with the database in it."""
        work = self.tmp / "work"
        work.mkdir()
        env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": str(REPO)}
        for argv in (["db", "upgrade", "--db=~/copy.db"], ["--db=~/copy.db", "proposals", "list"]):
            result = subprocess.run([sys.executable, "-m", "bot_bottle", *argv], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(list(work.iterdir()), [])
        self.assertTrue((self.home / "copy.db").is_file())
        self.assertEqual(result.stdout.strip(), "no pending proposals")

    def test_a_directory_as_the_database(self) -> None:
        """A directory given as the database is one line."""
        for verb in (("proposals", "list"), ("db", "upgrade"), ("audit", "verify")):
            with self.subTest(verb=verb):
                self.assert_clean_error(self.run_cli(*verb, "--db", str(self.tmp)), 1, "is a directory")

    def test_a_device_or_a_fifo_as_the_database(self) -> None:
        """BROKE before the fix: '--db /dev/null' said "I/O error on /dev/null (disk I/O error)" and 'db upgrade'
        left /dev/null-journal in /dev; a FIFO the same. Now one line naming it, and nothing beside it."""
        fifo = self.tmp / "fifo.db"
        os.mkfifo(fifo)
        for verb in (("proposals", "list"), ("db", "status"), ("db", "upgrade"), ("demo", "--auto")):
            with self.subTest(verb=verb):
                self.assert_clean_error(self.run_cli(*verb, "--db", str(fifo)), 1, "is not a regular file")
                self.assertEqual(sorted(p.name for p in self.tmp.iterdir()), ["fifo.db", "home"])
        report = self.run_cli("doctor", "--db", str(fifo))
        self.assertEqual(report.returncode, 1)
        self.assertIn(f"{fifo} is not a regular file", report.stdout, "doctor reports it as a finding")

    def test_the_demo_creates_the_database_it_is_given(self) -> None:
        """BROKE before the fix: 'demo --db new/dir/x.db' (its help: "created if missing") ended in "the supervise
        server did not start": its sidecar, rightly, never makes a directory. The host makes it first now."""
        result = self.run_cli("demo", "--auto", "--db", str(self.tmp / "new" / "dir" / "x.db"), timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue((self.tmp / "new" / "dir" / "x.db").is_file())
        self.assertEqual((self.tmp / "new" / "dir").stat().st_mode & 0o777, 0o700)

    def test_a_directory_this_user_cannot_enter(self) -> None:
        """A --db behind a directory the user cannot enter: one line, no traceback (run as nobody)."""
        setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
        if os.geteuid() != 0 or setpriv is None or not os.path.exists(python):
            raise unittest.SkipTest("needs root, setpriv and a system python3 to run as another user")
        locked = self.tmp / "locked"
        locked.mkdir(mode=0o700)
        os.chmod(self.tmp, 0o755)
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "env", f"HOME={self.tmp}",
             f"PYTHONPATH={REPO}", python, "-m", "bot_bottle", "proposals", "list", "--db", str(locked / "x.db")],
            capture_output=True, text=True, timeout=60, cwd="/",
        )
        if "No module named" in result.stderr or "Permission denied" in result.stderr.split("\n")[0][:40]:
            raise unittest.SkipTest(f"another user cannot run the checkout here: {result.stderr.strip()[:200]}")
        self.assert_clean_error(result, 1, "permission denied")


class CliBasicsTest(TempDirTest):
    def test_bare_command_prints_help(self) -> None:
        """bot-bottle alone prints the help with its examples, exit 0; -V prints the version."""
        bare = self.run_cli()
        self.assertEqual(bare.returncode, 0)
        self.assertIn("examples:", bare.stdout)
        version = self.run_cli("-V")
        self.assertEqual(version.returncode, 0)
        self.assertRegex(version.stdout, r"^bot-bottle \d")

    def test_errors_name_the_option_typed(self) -> None:
        """reject --reason '' complains about --reason, not an internal field."""
        db = self.tmp / "o.db"
        with QueueStore(db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [a]\n", "why")
        self.assert_clean_error(self.run_cli("proposals", "reject", proposal.short_id, "--reason", "", "--db",
                                             str(db)), 2, "--reason")
        self.assert_clean_error(self.run_cli("audit", "list", "--since", "yesterday", "--db", str(db)), 2,
                                "--since")

    def test_usage_errors_are_one_line(self) -> None:
        """A usage error is one line that points at --help."""
        self.assert_clean_error(self.run_cli("proposals", "lst"), 2, "invalid choice", "--help")
        self.assert_clean_error(self.run_cli("db", "downgrade"), 2, "--to", "--help")

    def test_pipes_get_no_escape_sequences(self) -> None:
        """Output to a pipe has no colour or styling, whatever NO_COLOR says."""
        db = self.tmp / "p.db"
        with QueueStore(db) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [a, b]\n", "why",
                                    current_file="routes: [a]\n")
        for args in (("proposals", "show", proposal.id), ("proposals", "list", "--all"), ("audit", "list")):
            result = self.run_cli(*args, "--db", str(db))
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertNotIn("\x1b", result.stdout)


class LiveSchemaTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "live.db"
        self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)

    def change(self, *statements: str) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    def test_clean_schema(self) -> None:
        """A database as its migrations made it passes db check and doctor."""
        self.assertEqual(self.run_cli("db", "check", "--db", str(self.db)).returncode, 0)
        self.assertEqual(self.run_cli("doctor", "--db", str(self.db)).returncode, 0)

    def test_each_change_is_drift(self) -> None:
        """A dropped trigger, an added index and an edited trigger: db check and doctor exit 1 naming them."""
        cases = {
            "trigger audit_log_no_update is missing": ("DROP TRIGGER audit_log_no_update",),
            "index sneaky is not made by any migration": ("CREATE INDEX sneaky ON proposals (tool)",),
            "trigger audit_log_no_delete differs": (
                "DROP TRIGGER audit_log_no_delete",
                "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN 0 BEGIN SELECT 1; END",
            ),
        }
        for needle, statements in cases.items():
            with self.subTest(needle):
                self.db.unlink()
                self.assertEqual(self.run_cli("db", "upgrade", "--db", str(self.db)).returncode, 0)
                self.change(*statements)
                checked = self.run_cli("db", "check", "--db", str(self.db))
                self.assertEqual(checked.returncode, 1)
                self.assertIn(needle, checked.stdout)
                doctor = self.run_cli("doctor", "--db", str(self.db))
                self.assertEqual(doctor.returncode, 1)
                self.assertIn(needle, doctor.stdout)

    def test_library_call(self) -> None:
        """migrate.live_schema_drift reads only and names the difference."""
        self.change("DROP INDEX audit_log_by_ts")
        conn = sqlite3.connect(self.db)
        self.addCleanup(conn.close)
        self.assertEqual(migrate.live_schema_drift(conn), ["index audit_log_by_ts is missing"])


class VerifyProgressTest(TempDirTest):
    def test_progress_is_reported_per_batch(self) -> None:
        """verify(progress=...) reports entries done out of the total after each batch."""
        db = self.tmp / "v.db"
        with QueueStore(db) as store:
            for index in range(7):
                proposal = store.submit(f"web-{index}", TOOL_EGRESS_BLOCK, f"routes: [{index}]\n", "why")
                decide(proposal.id, STATUS_APPROVED, store=store)
        seen: list[tuple[int, int]] = []
        with AuditStore(db) as audit:
            self.assertTrue(audit.verify(batch=3, progress=lambda done, total: seen.append((done, total))).ok)
        self.assertEqual(seen, [(3, 7), (6, 7), (7, 7)])


class TerminalTest(TempDirTest):
    """What a person sees in a real terminal (tmux): unknown terminals, colour, the pager, the TUI's keys."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "t.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        long_file = "".join(f"  - host: h{n}.example\n" for n in range(120))
        self.long = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n" + long_file, "many hosts",
                                      current_file="routes:\n")
        self.other = self.store.submit("web-2", TOOL_EGRESS_BLOCK, "routes: [b]\n", "second")
        self.third = self.store.submit("web-3", TOOL_EGRESS_BLOCK, "routes: [c]\n", "third")

    def shell(self, command: str, *, env: str = "", height: int = 30) -> Terminal:
        script = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} {env} "
                  f"{shlex.quote(sys.executable)} -m bot_bottle {command} --db {shlex.quote(str(self.db))}; "
                  "echo EXIT=$?; sleep 30")
        return Terminal(self, script, width=100, height=height)

    def test_unknown_terminal_type(self) -> None:
        """TERM with no terminfo entry: one line saying what to do, exit 1, the terminal left sane."""
        term = self.shell("supervise", env="TERM=xterm-ghostty-unknown")
        screen = term.wait_for("EXIT=")
        self.assertIn("EXIT=1", screen)
        self.assertIn("no terminfo entry", screen)
        self.assertNotIn("Traceback", screen)

    def test_colour_and_no_color(self) -> None:
        """On a terminal the diff's added lines are green; NO_COLOR turns colour off (escapes stay marked)."""
        term = self.shell(f"proposals show {self.other.id}")
        term.wait_for("EXIT=0")
        coloured = term.run("capture-pane", "-p", "-e", "-t", "t")
        self.assertIn("\x1b[32m", coloured)
        plain = self.shell(f"proposals show {self.other.id}", env="NO_COLOR=1")
        plain.wait_for("EXIT=0")
        self.assertNotIn("\x1b[32m", plain.run("capture-pane", "-p", "-e", "-t", "t"))

    def test_long_output_goes_through_the_pager(self) -> None:
        """proposals show of a long diff on a terminal runs $PAGER; a short one does not."""
        marker = self.tmp / "paged"
        pager = self.tmp / "pager.sh"
        pager.write_text(f"#!/bin/sh\ncat > {shlex.quote(str(marker))}\n")
        pager.chmod(0o755)
        term = self.shell(f"proposals show {self.long.id}", env=f"PAGER={shlex.quote(str(pager))}")
        term.wait_for("EXIT=0")
        self.assertIn("h119.example", marker.read_text())
        marker.unlink()
        short = self.shell(f"proposals show {self.other.id}", env=f"PAGER={shlex.quote(str(pager))}")
        short.wait_for("EXIT=0")
        self.assertFalse(marker.exists())

    def test_tui_navigation_and_search(self) -> None:
        """g/G and Home/End jump, the position line follows, / finds a line in the detail view and n the next."""
        term = self.shell("supervise", height=20)
        term.wait_for("3 pending")
        term.send("G")
        term.wait_for("3 of 3")
        term.send("g")
        term.wait_for("1 of 3")
        term.send("End")
        term.wait_for("3 of 3")
        term.send("Home", "Enter")
        term.wait_for("lines 1-")
        term.send("/")
        term.wait_for("search (Enter finds")
        term.send("h100.example", "Enter")
        screen = term.wait_for("'h100.example': line")
        self.assertIn("h100.example", screen)
        term.send("G")
        term.wait_for(f"of {screen.split(' of ')[-1].split()[0]}")
        term.send("q")
        term.wait_for("EXIT=0")

    def test_demo_tells_the_truth_when_left_undecided(self) -> None:
        """Quitting the demo's TUI with proposals undecided: it says so and exits 1."""
        script = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                  f"{shlex.quote(sys.executable)} -m bot_bottle demo --wait-seconds 1; echo EXIT=$?; sleep 30")
        term = Terminal(self, script)
        term.wait_for("4 pending")
        term.send("q")
        screen = term.wait_for("EXIT=", timeout=60)
        self.assertIn("EXIT=1", screen)
        self.assertIn("left undecided", screen)
        self.assertNotIn("every step worked", screen)
        time.sleep(0.1)


class ArrivalTest(TempDirTest):
    def test_new_proposal_runs_the_notify_command_and_shows_at_once(self) -> None:
        """--notify runs the command for proposals that arrive while the UI is open (not for those already there)."""
        db = self.tmp / "n.db"
        store = QueueStore(db)
        self.addCleanup(store.close)
        store.submit("web-1", TOOL_EGRESS_BLOCK, "routes: [old]\n", "already waiting")
        marker = self.tmp / "notified"
        notify = self.tmp / "notify.sh"
        notify.write_text('#!/bin/sh\necho "$BOT_BOTTLE_NEW_PROPOSALS $BOT_BOTTLE_NEW_BOTTLES" >> '
                          f"{shlex.quote(str(marker))}\n")
        notify.chmod(0o755)
        script = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                  f"{shlex.quote(sys.executable)} -m bot_bottle supervise --bell --notify {shlex.quote(str(notify))} "
                  f"--db {shlex.quote(str(db))}; sleep 30")
        term = Terminal(self, script)
        term.wait_for("1 pending")
        time.sleep(0.5)
        self.assertFalse(marker.exists(), "nothing new yet")
        late = store.submit("web-7", TOOL_EGRESS_BLOCK, "routes: [new]\n", "arrived later")
        term.wait_for(late.short_id, timeout=5)
        wait_until(marker.exists, 10, what="the notify command")
        self.assertEqual(marker.read_text().strip(), "1 web-7")
        term.send("q")
