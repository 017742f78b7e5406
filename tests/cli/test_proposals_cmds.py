"""``bot-bottle proposals`` and ``audit`` verbs, as an operator uses them from a shell."""

from __future__ import annotations

import io
import json
import os
import shlex
import sqlite3
import time
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

from bot_bottle.cli import main
from bot_bottle.cli.examples import EXAMPLES
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, TOOL_GITLEAKS_ALLOW, Proposal
from bot_bottle.standing import keep
from tests.helpers.support import TempDirTest


class TerminalOutput(io.StringIO):
    """Captured output that says it is a terminal (the CLI then prints for a person, not a program)."""

    def isatty(self) -> bool:
        return True


class CliTestCase(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.store = QueueStore()  # the host database under this test's HOME
        self.addCleanup(self.store.close)

    def cli(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def approve(self, proposal: Proposal, *more: str) -> tuple[int, str, str]:
        """``proposals approve`` as a script does it: with the digest ``proposals show`` printed."""
        digest = json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["digest"]
        return self.cli("proposals", "approve", proposal.short_id, "--digest", digest, *more)

    def routes(self, bottle: str = "web-1", payload: str = "routes:\n- a.com\n- b.com\n") -> Proposal:
        return self.store.submit(bottle, TOOL_EGRESS_BLOCK, payload, "need b.com\nfor the docs",
                                 current_file="routes:\n- a.com\n")


class ProposalsVerbsTest(CliTestCase):
    def test_list_json_and_text(self) -> None:
        """list shows every bottle's pending proposals oldest first, with the fields scripts need."""
        first = self.routes("web-1")
        second = self.routes("web-2")
        code, out, _ = self.cli("proposals", "list", "--json")
        self.assertEqual(code, 0)
        listed = json.loads(out)
        self.assertEqual([p["id"] for p in listed], [first.id, second.id])
        for key in ("id", "queue_key", "tool", "created_at", "status"):
            self.assertIn(key, listed[0])
        self.assertEqual(listed[0]["status"], "pending")
        code, out, _ = self.cli("proposals", "list")  # piped: for a program, tab-separated and whole
        self.assertEqual(out.splitlines()[1].split("\t")[0], first.short_id)
        self.assertIn("need b.com\\x0afor the docs", out, "the whole justification, its newline escaped")
        terminal = TerminalOutput()
        with redirect_stdout(terminal), redirect_stderr(io.StringIO()), \
                mock.patch.dict(os.environ, {"COLUMNS": "160"}):
            main(["proposals", "list"])
        self.assertIn("need b.com", terminal.getvalue())
        self.assertNotIn("for the docs", terminal.getvalue(), "on a terminal, only the justification's first line")
        code, out, _ = self.cli("proposals", "list", "--bottle", "web-2", "--json")
        self.assertEqual([p["id"] for p in json.loads(out)], [second.id])

    def test_a_narrow_terminal_leaves_out_the_tool_and_age_for_what_approving_grants(self) -> None:
        """BROKE before the fix: at 60 columns 'proposals list' cut what approving grants to 5 ('docs.…'), and
        'supervise --once', 'bottles show' and 'grants list' theirs as short, where the TUI's list leaves out
        TOOL and AGE below 100 columns. The command line's lists now leave out the same; piped, all is there."""
        route = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        self.assertEqual(self.approve(route, "--notes", "ok")[0], 0)
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "the index")

        def shown(columns: int, *argv: str) -> str:
            terminal = TerminalOutput()
            with redirect_stdout(terminal), redirect_stderr(io.StringIO()), \
                    mock.patch.dict(os.environ, {"COLUMNS": str(columns), "LINES": "100"}):
                main(list(argv))
            return terminal.getvalue()
        self.cli("rules", "add", "--bottle", "web-1", "--host", "paste.example", "--reject")
        for argv in (["proposals", "list"], ["supervise", "--once"], ["bottles", "show", "web-1"],
                     ["grants", "list"], ["rules", "list"]):
            with self.subTest(argv=argv):
                narrow = shown(60, *argv)
                self.assertNotIn("TOOL", narrow)
                self.assertNotIn("egress-allow", narrow)
                self.assertIn({"grants": "docs.python.org (any method; every",
                               "rules": "paste.example (any meth"}.get(argv[0], "pypi.org (any method; every path)"),
                              narrow)
                if argv[0] in ("grants", "rules"):  # how long it lets through, before what (it was cut off)
                    self.assertIn("6d23h  docs" if argv[0] == "grants" else "for good  paste", narrow)
                self.assertIn("TOOL", shown(100, *argv))
                self.assertIn("TOOL", self.cli(*argv)[1], "piped: every column")

    def test_a_crlf_file_is_refused_saying_how_to_save_it(self) -> None:
        """BROKE before the fix: a final file an editor saved with CRLF line ends was refused as holding 'U+000D
        (CARRIAGE RETURN)', a hidden character, without a word on the line ends or what to do."""
        modify = self.routes(payload="routes: [a]\n")
        final = self.tmp / "final.yaml"
        final.write_bytes(b"routes:\r\n- narrow\r\n")
        digest = json.loads(self.cli("proposals", "show", modify.id, "--json")[1])["digest"]
        code, _, err = self.cli("proposals", "modify", modify.short_id, "--file", str(final), "--digest", digest)
        self.assertEqual(code, 2, err)
        self.assertIn("U+000D (CARRIAGE RETURN)", err)
        self.assertIn("(a CRLF or CR line end: save the file with LF line ends)", err)

    def test_decide_from_the_shell(self) -> None:
        """approve, modify and reject by id prefix; list --all shows each decision."""
        approve, modify, reject = (self.routes(payload=f"routes: [{n}]\n") for n in "abc")
        self.assertEqual(self.approve(approve, "--notes", "ok")[0], 0)
        final = self.tmp / "final.yaml"
        final.write_text("routes: [narrow]\n")
        self.assertEqual(self.cli("proposals", "modify", modify.id[:10], "--file", str(final))[0], 0)
        code, out, _ = self.cli("proposals", "reject", reject.short_id, "--reason", "not this week")
        self.assertEqual(code, 0)
        self.assertIn("rejected", out)
        self.assertEqual(json.loads(self.cli("proposals", "list", "--json")[1]), [])
        listed = json.loads(self.cli("proposals", "list", "--all", "--json")[1])
        self.assertEqual([p["status"] for p in listed], ["approved", "modified", "rejected"])
        self.assertEqual(listed[1]["response"]["final_file"], "routes: [narrow]\n")

    def test_approving_or_modifying_a_routes_file_names_the_one_it_replaces(self) -> None:
        """BROKE before the fix: approving (or modifying) a routes file for a bottle whose routes file was approved
        before ended that approval's grant, and 'proposals approve'/'modify' said only the new grant: the file it
        replaced, and the hosts only that one named, went unsaid. Each names the grant it ended and its proposal,
        in text and --json (replaced); with no routes file in force, nothing."""
        def live(proposal: Proposal) -> str:
            return next(grant["id"] for grant in json.loads(self.cli("grants", "list", "--json")[1])
                        if grant["proposal_id"] == proposal.id)

        def said(proposal: Proposal, grant: str) -> str:
            return (f"\nit replaces the routes file approved on proposal {proposal.short_id}: grant {grant[:8]} ended "
                    "('grants list --all')\n")

        first = self.routes(payload="routes:\n- a.com\n")
        code, out, err = self.approve(first, "--json")
        self.assertEqual((code, err, json.loads(out)[0]["replaced"]), (0, "", []), "none in force: nothing ended")
        second = self.routes(payload="routes:\n- a.com\n- b.com\n")
        ended = live(first)
        code, out, err = self.approve(second)
        self.assertEqual((code, err), (0, ""))
        self.assertIn(said(first, ended), out)
        third = self.routes(payload="routes:\n- c.com\n")
        ended = live(second)
        code, out, err = self.approve(third, "--json")
        self.assertEqual((code, err, json.loads(out)[0]["replaced"]),
                         (0, "", [{"grant": ended, "proposal": second.id}]))
        final = self.tmp / "final.yaml"
        final.write_text("routes:\n- d.com\n")
        fourth = self.routes(payload="routes:\n- d.com\n- e.com\n")
        ended = live(third)
        code, out, err = self.cli("proposals", "modify", fourth.short_id, "--file", str(final))
        self.assertEqual((code, err), (0, ""))
        self.assertIn(said(third, ended), out)
        fifth = self.routes(payload="routes:\n- f.com\n- g.com\n")
        ended = live(fourth)
        final.write_text("routes:\n- f.com\n")
        code, out, err = self.cli("proposals", "modify", fifth.short_id, "--file", str(final), "--json")
        self.assertEqual((code, err, json.loads(out)[0]["replaced"]),
                         (0, "", [{"grant": ended, "proposal": fourth.id}]))
        self.assertEqual(json.loads(self.cli("grants", "list", "--json")[1])[0]["proposal_id"], fifth.id, "one left")
        other = self.routes(bottle="web-2", payload="routes:\n- a.com\n")
        code, out, err = self.cli("proposals", "modify", other.short_id, "--file", str(final))
        self.assertEqual((code, err), (0, ""))
        self.assertNotIn("replaces", out, "another bottle's routes file is not replaced")

    def test_show(self) -> None:
        """show prints the justification and the diff; --json the whole record."""
        proposal = self.routes()
        code, out, _ = self.cli("proposals", "show", proposal.short_id)
        self.assertEqual(code, 0)
        self.assertIn("for the docs", out)
        self.assertIn("+- b.com", out)
        digest = json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["digest"]
        self.assertIn(f"to approve exactly this: bot-bottle proposals approve {proposal.short_id} --digest {digest}",
                      out)
        # BROKE before the fix: with --db, the line to paste left it out, so it named the host database instead.
        copy = self.tmp / "a copy.db"
        with QueueStore(copy) as store:
            other = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "why")
        out = self.cli("--db", str(copy), "proposals", "show", other.short_id)[1]
        line = out.splitlines()[-1].removeprefix("to approve exactly this: ")
        self.assertEqual(line.split()[:3], ["bot-bottle", "--db", f"'{copy.parent}/a"])
        self.assertEqual(self.cli(*shlex.split(line)[1:])[0], 0, "the line approves it, in that database")
        self.assertEqual(json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["id"], proposal.id)

    def test_an_expired_proposal_not_yet_closed_is_shown_without_a_false_alarm(self) -> None:
        """BROKE before the fix: past its end and before any host process closed it, 'show' said "status expired"
        and "WARNING: the audit log does not prove this decision ... it may have been written into the database by
        a sidecar": the expiry it reads from the proposal's own end was held to an entry nobody had to write yet."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        time.sleep(1.2)
        code, out, err = self.cli("proposals", "show", proposal.short_id)
        self.assertEqual((code, err), (0, ""))
        self.assertIn("status    expired by bot-bottle (pending-ttl)", out)
        self.assertNotIn("does not prove", out)
        self.assertIsNone(json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["unproven"])
        keep(self.store)  # once the host closed it, its recorded expiry is held to its entry, and proven
        self.assertIsNone(json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["unproven"])

    def test_an_expired_proposal_is_refused_for_its_expiry_before_its_digest(self) -> None:
        """BROKE before the fix: approving an expired proposal with a digest that no longer matched said only that
        it "is not the one whose digest you gave ... Show it again"; shown again and approved, it was refused as
        expired. Now the expiry is said first, whether a host process closed it yet or not, and nothing is
        recorded."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        time.sleep(1.2)
        for closed in (False, True):
            if closed:
                keep(self.store)
            with self.subTest(closed=closed):
                code, _, err = self.cli("proposals", "approve", proposal.short_id, "--digest", "0" * 64)
                self.assertEqual(code, 1, err)
                self.assertIn(f"proposal {proposal.short_id} expired at {proposal.expires_at}", err)
                self.assertNotIn("digest", err)
        self.assertEqual(self.store.response(proposal.id).status, "expired")

    def test_the_list_says_how_long_each_may_wait_and_what_expired_unanswered(self) -> None:
        """Before: 'proposals list' showed no proposal's end, and one that expired while nobody looked left the
        list without a word (its caller was told no)."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        waiting = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        time.sleep(1.2)
        code, out, err = self.cli("proposals", "list")
        self.assertEqual((code, err), (0, ""))
        header, row, said = out.splitlines()
        self.assertEqual(header.split("\t")[4], "LEFT")
        self.assertEqual(row.split("\t")[0], waiting.short_id)
        self.assertRegex(row.split("\t")[4], r"^23h5\dm$")
        self.assertIn(f"expired unanswered in the last 24 h, each caller told no: {gone.short_id} "
                      "(web-2, egress-allow) ('proposals list --all')", said)
        self.assertNotIn("expired unanswered", self.cli("proposals", "list", "--bottle", "web-1")[1])
        listed = json.loads(self.cli("proposals", "list", "--json")[1])  # JSON: the list alone
        self.assertEqual([item["id"] for item in listed], [waiting.id])
        every = self.cli("proposals", "list", "--all")[1]
        self.assertNotIn("expired unanswered", every)  # listed there, with their status
        self.assertRegex(every, rf"{gone.short_id}\tweb-2\tegress-allow\t\S+\t-\texpired")

    def test_a_log_that_cannot_be_read_still_lets_the_list_show(self) -> None:
        """BROKE before the fix: with the audit log vandalized (a sidecar can write the file), reading what expired
        lately failed 'proposals list' whole, where the list must show whatever the log holds."""
        waiting = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        raw = sqlite3.connect(self.store.db.path, isolation_level=None)
        try:
            raw.execute("DROP TABLE audit_log")
        finally:
            raw.close()
        code, out, _ = self.cli("proposals", "list")
        self.assertEqual(code, 0)
        self.assertIn(waiting.short_id, out)
        self.assertIn("what expired lately could not be read: ", out)

    def test_supervise_once_says_how_long_each_may_wait_and_what_expired_unanswered(self) -> None:
        """BROKE before the fix: 'supervise --once', the UI's list for a shell, had no LEFT column and never
        named what expired unanswered, which 'proposals list', the UI at its start and the dashboard all say."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        waiting = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        time.sleep(1.2)
        code, out, err = self.cli("supervise", "--once")
        self.assertEqual((code, err), (0, ""))
        header, row, said = out.splitlines()
        self.assertEqual(header.split("\t")[4], "LEFT")
        self.assertEqual(row.split("\t")[0], waiting.short_id)
        self.assertRegex(row.split("\t")[4], r"^23h5\dm$")
        self.assertIn(f"expired unanswered in the last 24 h, each caller told no: {gone.short_id} (web-2", said)
        self.assertEqual([item["id"] for item in json.loads(self.cli("supervise", "--once", "--json")[1])],
                         [waiting.id])  # JSON: the list alone

    def test_the_help_s_cut_example_picks_the_ids_and_what_each_grants(self) -> None:
        """BROKE before the fix: the LEFT column moved GRANTS from the sixth field to the seventh, and the help's
        'proposals list | cut -f1,6' printed each id with the word 'pending'."""
        (command,) = [line for line, _ in EXAMPLES["proposals list"] if "cut -f" in line]
        fields = [int(n) - 1 for n in command.rsplit("cut -f", 1)[1].split(",")]
        self.routes("web-1")
        header = self.cli("proposals", "list")[1].splitlines()[0].split("\t")
        self.assertEqual([header[n] for n in fields], ["ID", "GRANTS"])

    def test_a_bottle_the_host_does_not_know_is_said_so_in_an_empty_list(self) -> None:
        """BROKE before the fix: 'grants list --bottle web1' (for web-1) said "no grants in force", and 'proposals
        list --bottle web1' "no pending proposals match", read as web-1 having none; 'rules add' warned already."""
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        for verb in (("grants", "list"), ("proposals", "list"), ("proposals", "list", "--json")):
            code, _, err = self.cli(*verb, "--bottle", "web1")
            self.assertEqual(code, 0, verb)
            self.assertIn("warning: no bottle web1 is known to this host (a typo? 'bottles list' names them)", err)
            self.assertEqual(self.cli(*verb, "--bottle", "web-1")[2], "", verb)  # known: not a word
        self.assertEqual(self.cli("grants", "list", "--bottle", "web-2")[2].count("web-2"), 1)

    def test_bottles_list_and_show_close_what_expired_before_counting_it_pending(self) -> None:
        """BROKE before the fix: 'bottles list' and 'bottles show' counted, and listed as pending, a proposal past
        its end (no host process had closed it yet), where 'proposals list' closes it first and shows none."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        time.sleep(1.2)
        (listed,) = json.loads(self.cli("bottles", "list", "--json")[1])
        self.assertEqual(listed["pending"], 0, listed)
        code, out, err = self.cli("bottles", "show", "web-1")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("pending    0", out)
        self.assertEqual(self.store.pending(), [])

    def test_bottles_show_says_how_long_each_may_wait_and_what_expired_unanswered(self) -> None:
        """BROKE before the fix: 'bottles show', which lists the bottle's pending proposals, said neither how long
        each may still wait nor what of the bottle's expired unanswered, as 'proposals list --bottle' does."""
        with mock.patch("bot_bottle.queue_store.pending_ttl_in", return_value=1):
            gone = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "the docs")
        waiting = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip install")
        time.sleep(1.2)
        code, out, err = self.cli("bottles", "show", "web-1")
        self.assertEqual((code, err), (0, ""))
        header, row, said = out.split("\n\n")[1].splitlines()
        self.assertEqual(header.split("\t")[3], "LEFT")
        self.assertEqual(row.split("\t")[0], waiting.short_id)
        self.assertRegex(row.split("\t")[3], r"^23h5\dm$")
        self.assertIn(f"expired unanswered in the last 24 h, each caller told no: {gone.short_id} (web-1", said)
        self.assertNotIn("expired unanswered", self.cli("bottles", "show", "web-1", "--json")[1])

    def test_revoking_a_grant_a_rule_made_says_the_rule_approves_again(self) -> None:
        """BROKE before the fix: 'grants revoke' of a grant an approving rule made said only "revoked ID", and the
        bottle's next ask was approved at once by that rule, still in force: the revocation undone unsaid."""
        self.assertEqual(self.cli("rules", "add", "--bottle", "web-1", "--host", "pypi.org", "--for", "1d")[0], 0)
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")  # (the same: one proposal)
        self.cli("proposals", "list")  # the rule decides it: a grant, made by the rule
        (grant,) = json.loads(self.cli("grants", "list", "--json")[1])
        rule = grant["rule_id"]
        code, out, _ = self.cli("grants", "revoke", grant["id"][:8], "--reason", "enough")
        self.assertEqual(code, 0)
        self.assertIn(f"rule {rule[:8]}, which made it, still approves the same again for web-1 until", out)
        self.assertIn(f"'rules revoke {rule[:8]}' ends the rule", out)
        self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")  # asked again: approved again
        self.cli("proposals", "list")
        (grant,) = json.loads(self.cli("grants", "list", "--json")[1])
        self.assertEqual(grant["rule_id"], rule)
        code, out, _ = self.cli("rules", "revoke", rule[:8], "--reason", "done")
        self.assertEqual(code, 0)
        self.assertIn("the grants it made stay until they end", out)
        # BROKE before the fix: a rejecting rule's revocation said the same, of grants it never made.
        self.cli("rules", "add", "--bottle", "web-1", "--host", "paste.example", "--reject")
        (rejecting,) = [each for each in json.loads(self.cli("rules", "list", "--json")[1])
                        if each["effect"] == "reject"]
        out = self.cli("rules", "revoke", rejecting["id"][:8], "--reason", "done")[1]
        self.assertNotIn("the grants it made", out)
        self.assertIn("what it rejected is asked of you again at the next ask", out)
        code, out, _ = self.cli("grants", "revoke", grant["id"][:8], "--reason", "enough", "--json")
        self.assertIsNone(json.loads(out)["rule_in_force"], "the rule is revoked: nothing approves it again")
        # An approval --remember'ed: its own grant's revocation names the rule remembered with it.
        proposal = self.store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', "docs")
        self.assertEqual(self.approve(proposal, "--for", "1h", "--remember", "bottle")[0], 0)
        (grant,) = json.loads(self.cli("grants", "list", "--json")[1])
        code, out, _ = self.cli("grants", "revoke", grant["id"][:8], "--reason", "enough")
        self.assertRegex(out, r"rule [0-9a-f]{8}, remembered with it, still approves the same again for web-2")

    def test_one_digit_names_nothing(self) -> None:
        """BROKE before the fix: 'rules revoke 3' ended whichever rule's id happened to start with 3 (a standing
        rejection too); an id now needs 4 digits or more, and a shorter one changes nothing."""
        self.assertEqual(self.cli("rules", "add", "--bottle", "web-1", "--host", "paste.example", "--reject")[0], 0)
        (rule,) = json.loads(self.cli("rules", "list", "--json")[1])
        proposal = self.store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        for argv in (["rules", "revoke", rule["id"][:1], "--reason", "done"],
                     ["rules", "revoke", rule["id"][:3], "--reason", "done"],
                     ["grants", "revoke", "a", "--reason", "done"],
                     ["proposals", "reject", proposal.id[:2], "--reason", "no"]):
            with self.subTest(argv=argv):
                code, out, err = self.cli(*argv)
                self.assertEqual((code, out), (2, ""))
                self.assertIn("is too short to name a", err)
                self.assertIn("give at least 4 of its digits (lists show 8)", err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
        (still,) = json.loads(self.cli("rules", "list", "--json")[1])
        self.assertIsNone(still["revoked_at"])
        self.assertEqual(json.loads(self.cli("proposals", "show", proposal.id, "--json")[1])["status"], "pending")
        code, out, _ = self.cli("rules", "revoke", rule["id"][:4], "--reason", "done")
        self.assertEqual(code, 0, out)

    def test_an_id_not_found_names_the_database_looked_in(self) -> None:
        """BROKE before the fix: a command run without the --db the operator was using said only "no proposal id
        starts with 'f0f5'" of a proposal they had just listed: it looked in the host database, and said not."""
        other = self.tmp / "other.db"
        with QueueStore(other) as store:
            filed = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "pypi.org"}', "pip")
        host = str(self.store.db.path)
        for argv, said in ((["proposals", "show", filed.short_id], f"no proposal id starts with '{filed.short_id}'"),
                           (["proposals", "reject", filed.short_id, "--reason", "no"], "no proposal id starts with"),
                           (["grants", "revoke", "abcdef12", "--reason", "done"], "no grant id starts with"),
                           (["bottles", "show", "web-1"], "no bottle web-1")):
            with self.subTest(argv=argv):
                code, _, err = self.cli(*argv)
                self.assertEqual(code, 1)
                self.assertIn(said, err)
                self.assertTrue(err.rstrip().endswith(f"; looked in {host}"), err)
        code, _, err = self.cli("--db", str(other), "proposals", "show", "ffffffff")
        self.assertTrue(err.rstrip().endswith(f"; looked in {other}"), err)

    def test_errors_are_one_line(self) -> None:
        """Rule violations and unknown ids: one line on stderr, the right exit code, no traceback."""
        proposal = self.routes()
        report = self.store.submit("web-1", TOOL_GITLEAKS_ALLOW, '{"findings": []}', "fixture")
        cases = [
            (("proposals", "reject", proposal.short_id, "--reason", " "), 2, "reason"),
            (("proposals", "approve", report.short_id), 2, "needs a reason"),
            (("proposals", "approve", proposal.short_id), 2, "--digest: approving without a terminal needs --digest"),
            (("proposals", "approve", proposal.short_id, "--digest", "0" * 64), 1, "is not the one whose digest"),
            (("proposals", "modify", report.short_id, "--file", __file__), 2, "report-only"),
            (("proposals", "show", "ffffffffff"), 1, "no proposal"),
            (("proposals", "approve", "xyz"), 2, "ID: 'xyz' is not a proposal id"),
            (("proposals", "reject", "xyz", "--reason", "no"), 2, "ID: 'xyz' is not a proposal id"),
            # BROKE before the fix: recorded a plain rejection, the 2d dropped without a word.
            (("proposals", "reject", proposal.short_id, "--reason", "no", "--for", "2d"), 2,
             "--for: a rejection has no length"),
            (("grants", "revoke", "xyz", "--reason", "done"), 2, "ID: 'xyz' is not a grant id"),
            (("rules", "revoke", "xyz", "--reason", "done"), 2, "ID: 'xyz' is not a rule id"),
            (("proposals", "list", "--bottle", "../etc"), 2, "--bottle: '../etc' is not a bottle slug"),
            # BROKE before the fix: these named the field as the code calls it (queue_key, IDS, bottle, paths).
            (("proposals", "approve", proposal.short_id, proposal.short_id, "--digest", "0" * 64, "--digest",
              "0" * 64), 2, "ID: the same proposal is named twice"),
            (("bottles", "show", "a b"), 2, "SLUG: 'a b' is not a bottle slug"),
            (("relay", "revoke", "a b"), 2, "SLUG: 'a b' is not a bottle slug"),
            # BROKE before the fix: a date was taken as the time from now to it ('25d2h'), for every proposal after.
            (("config", "set", "pending-ttl", "2026-12-31T00:00Z"), 2, "pending-ttl: '2026-12-31T00:00Z' is not a "
             "length of time"),
            # BROKE before the fix: "is neither a duration (90m, 8h, 7d, 2w, 1d12h) nor a time".
            (("rules", "add", "--bottle", "web-1", "--host", "a.com", "--for", "99999999d"), 2,
             "--for: '99999999d' is longer than anything here may last"),
            (("rules", "add", "--bottle", "web-1", "--host", "a.com", "--path", "x", "--for", "1d"), 2,
             "--path: 'x' is not a path prefix"),
            (("rules", "add", "--bottle", "web-1", "--host", "a.com", "--method", "get", "--for", "1d"), 2,
             "--method: 'get' is not one of"),
            (("proposals", "modify", proposal.short_id, "--file", str(self.tmp / "missing")), 1, "cannot read"),
        ]
        for argv, want, needle in cases:
            with self.subTest(argv=argv):
                code, _, err = self.cli(*argv)
                self.assertEqual(code, want, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
                self.assertIn(needle, err)
        self.approve(proposal)
        # BROKE before the fix: a grant revoked twice was a usage error (2), "ID: grant ... was revoked already".
        grant = json.loads(self.cli("grants", "list", "--json")[1])[0]["id"]
        self.assertEqual(self.cli("grants", "revoke", grant[:8], "--reason", "done")[0], 0)
        code, _, err = self.cli("grants", "revoke", grant[:8], "--reason", "again")
        self.assertEqual(code, 1, err)
        self.assertTrue(err.startswith(f"bot-bottle: error: grant {grant[:8]} was revoked already"), err)
        code, _, err = self.cli("proposals", "reject", proposal.short_id, "--reason", "late")
        self.assertEqual(code, 1)
        self.assertIn("already approved", err)

    def test_exit_codes_in_a_real_process(self) -> None:
        """Through the real entry point: 0, 1 and 2, and no traceback."""
        proposal = self.routes()
        digest = json.loads(self.run_cli("proposals", "show", proposal.short_id, "--json").stdout)["digest"]
        self.assertEqual(self.run_cli("proposals", "approve", proposal.short_id, "--digest", digest).returncode, 0)
        self.assert_clean_error(self.run_cli("proposals", "approve", proposal.short_id), 1, "already approved")
        self.assertEqual(self.run_cli("proposals", "approve").returncode, 2)


class AuditVerbsTest(CliTestCase):
    def test_list_verify_export(self) -> None:
        """After decisions, audit list, verify and export agree."""
        for n in "ab":  # a bottle each: a second routes file for one bottle ends the first's grant (an entry)
            proposal = self.routes(f"web-{n}", payload=f"routes: [{n}]\n")
            self.approve(proposal)
        other = self.routes("web-2")
        self.cli("proposals", "reject", other.short_id, "--reason", "no")
        code, out, _ = self.cli("audit", "list", "--json")
        self.assertEqual(code, 0)
        self.assertEqual([e["seq"] for e in json.loads(out)], [3, 2, 1])
        self.assertEqual(len(json.loads(self.cli("audit", "list", "--bottle", "web-2", "--json")[1])), 1)
        self.assertEqual(len(json.loads(self.cli("audit", "list", "--limit", "1", "--json")[1])), 1)
        self.assertEqual(json.loads(self.cli("audit", "list", "--since", "2999-01-01", "--json")[1]), [])
        code, out, _ = self.cli("audit", "verify")
        self.assertEqual(code, 0)
        self.assertTrue(out.startswith("audit log whole: 3 entries, 3 sealed"), out)
        code, out, _ = self.cli("audit", "export")
        lines = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([e["seq"] for e in lines], [1, 2, 3])
        self.assertEqual(lines[1]["prev_hash"], lines[0]["hash"])
        code, out, _ = self.cli("audit", "list")
        self.assertIn("rejected", out)

    def test_verify_names_the_bad_entry(self) -> None:
        """A tampered entry makes verify exit 1 naming it."""
        for n in "abc":
            self.approve(self.routes(payload=n))
        with self.store.db.read() as conn:
            conn.execute("DROP TRIGGER audit_log_no_update")
            conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        code, _, err = self.cli("audit", "verify")
        self.assertEqual(code, 1)
        self.assertIn("entry 2", err)
        code, out, _ = self.cli("audit", "verify", "--json")
        self.assertEqual(json.loads(out)["bad_seq"], 2)
