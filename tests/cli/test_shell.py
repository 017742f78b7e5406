"""bot-bottle in pipelines and scripts, as processes: closed pipes, piped tables, --json, exit statuses, the edges
a newcomer meets (an older Python, a typo, a backup given as --db, the demo's footprint)."""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bot_bottle.audit_store import AuditStore
from bot_bottle.decisions import decide
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK, Proposal
from tests.helpers.relay_fixture import free_port, relay_env
from tests.helpers.support import REPO, TempDirTest, in_ci, wait_until
from tests.helpers.terminal import Terminal

LONG = "the docs mirror, because " + "every word of this matters to the script " * 60 + "THE END"


class ShellCase(TempDirTest):
    """A database with audit entries enough to fill a pipe, and ``sh`` to run bot-bottle in pipelines."""

    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "shell.db"
        with QueueStore(self.db) as store:
            for number in range(120):
                proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, f"routes: [r{number}]\n", f"batch {number}")
                decide(proposal.id, STATUS_APPROVED, "ok", store=store)
            self.long = store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', LONG)

    def sh(self, script: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``script`` under ``bash -o pipefail``, with ``bb`` running this checkout's CLI on this test's database.

        ``bb`` is a shell function, not text put in the script's place: a proposal's short id ending in "bb"
        (``proposals show 45ca11bb | true``) had the command spliced into the id, one run in 256."""
        bb = f"{shlex.quote(sys.executable)} -m bot_bottle --db {shlex.quote(str(self.db))}"
        return subprocess.run(["bash", "-o", "pipefail", "-c", f'bb() {{ {bb} "$@"; }}\n{script}'], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout, env=relay_env(self.home))

    def bb(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot_bottle", "--db", str(self.db), *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60, env=relay_env(self.home))


class PipeTest(ShellCase):
    def test_a_reader_that_goes_away_ends_the_pipeline_quietly(self) -> None:
        """BROKE before the fix: '| true' and '| head -3' printed 'error: the system: Broken pipe' and exited
        1, so a script under pipefail failed. Now each case exits 0 with nothing on stderr, every time."""
        for script in ("bb audit list --limit 500 | true", "bb audit list --limit 500 | head -3",
                       "bb audit export | head -1", "bb proposals list --all | head -2",
                       "bb audit list --json --limit 500 | head -c 10", "bb proposals show " +
                       self.long.short_id + " | true"):
            for _ in range(3):
                with self.subTest(script):
                    result = self.sh(script)
                    self.assertEqual((result.returncode, result.stderr), (0, ""), script)

    def test_a_piped_table_is_whole_and_tab_separated(self) -> None:
        """BROKE before the fix: piped tables were cut at 80 columns with '...', so 'proposals list | cat' lost
        the justification a script wanted. Piped, a table is tab-separated and nothing in it is cut."""
        result = self.sh("bb proposals list | cat")
        self.assertEqual(result.returncode, 0, result.stderr)
        header, row = result.stdout.splitlines()
        self.assertEqual(header.split("\t"), ["ID", "BOTTLE", "TOOL", "AGE", "LEFT", "STATUS", "GRANTS",
                                              "AGENT SAYS"])
        self.assertEqual(row.split("\t")[6:], ["docs.python.org (any method; every path)", LONG])
        cut = self.sh("bb proposals list | cut -f2 | tail -1")
        self.assertEqual(cut.stdout.strip(), "web-2")


class JsonTest(ShellCase):
    def test_each_decision_verb_prints_what_it_did_as_json(self) -> None:
        """approve (two at once), modify and reject with --json: a list naming each decision, parsed."""
        with QueueStore(self.db) as store:
            first, second, third, fourth = (store.submit("web-3", TOOL_EGRESS_ALLOW, f'{{"host": "h{n}.example"}}',
                                                         "j") for n in range(4))
        digests = [json.loads(self.bb("proposals", "show", p.short_id, "--json").stdout)["digest"]
                   for p in (first, second)]
        approved = self.bb("proposals", "approve", first.short_id, second.short_id, "--digest", digests[0],
                           "--digest", digests[1], "--notes", "both fine", "--json")
        self.assertEqual(approved.returncode, 0, approved.stderr)
        decisions = json.loads(approved.stdout)
        self.assertEqual([(d["id"], d["status"], d["bottle"]) for d in decisions],
                         [(first.id, "approved", "web-3"), (second.id, "approved", "web-3")])
        self.assertTrue(all(d["grant"]["ends_at"] for d in decisions))
        final = self.tmp / "final.json"
        final.write_text('{"host": "h2.example", "paths": ["/docs/"]}')
        modified = self.bb("proposals", "modify", third.short_id, "--file", str(final), "--json")
        self.assertEqual(modified.returncode, 0, modified.stderr)
        self.assertEqual(json.loads(modified.stdout)[0]["status"], "modified")
        rejected = self.bb("proposals", "reject", fourth.short_id, "--reason", "no", "--json")
        self.assertEqual(json.loads(rejected.stdout)[0]["status"], "rejected")

    def test_a_stale_digest_among_several_records_nothing(self) -> None:
        """Two ids, the second digest wrong: refused before anything is recorded, for either."""
        with QueueStore(self.db) as store:
            first, second = (store.submit("web-3", TOOL_EGRESS_ALLOW, f'{{"host": "s{n}.example"}}', "j")
                             for n in range(2))
        digest = json.loads(self.bb("proposals", "show", first.short_id, "--json").stdout)["digest"]
        result = self.bb("proposals", "approve", first.short_id, second.short_id, "--digest", digest,
                         "--digest", "0" * 64)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        with QueueStore(self.db) as store:
            self.assertIsNone(store.response(first.id))
            self.assertIsNone(store.response(second.id))

    def test_one_decided_meanwhile_among_several_records_none(self) -> None:
        """Two ids, the second decided by someone else after it was shown: refused whole, the first still pending."""
        with QueueStore(self.db) as store:
            first, second = (store.submit("web-3", TOOL_EGRESS_ALLOW, f'{{"host": "m{n}.example"}}', "j")
                             for n in range(2))
        digests = [json.loads(self.bb("proposals", "show", p.short_id, "--json").stdout)["digest"]
                   for p in (first, second)]
        with QueueStore(self.db) as store:
            decide(second.id, "rejected", "not this one", decided_by="bob@desk", store=store)
        result = self.bb("proposals", "approve", first.short_id, second.short_id, "--digest", digests[0],
                         "--digest", digests[1])
        self.assertEqual(result.returncode, 1, result.stdout)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn(f"proposal {second.short_id} was already rejected by bob@desk", result.stderr)
        self.assertEqual(result.stdout, "")
        with QueueStore(self.db) as store:
            self.assertIsNone(store.response(first.id))
        with AuditStore(self.db) as audit:
            self.assertNotIn(first.id, [entry.proposal_id for entry in audit.entries()])

    def test_backup_and_the_relay_report_as_json(self) -> None:
        """db backup, relay start, relay revoke and relay stop with --json: each parsed."""
        backup = json.loads(self.bb("db", "backup", "--json").stdout)
        self.assertTrue(Path(backup["backup"]).is_file())
        port = str(free_port())
        started = self.bb("relay", "start", "--port", port, "--json")
        self.assertEqual(started.returncode, 0, started.stderr)
        self.assertTrue(json.loads(started.stdout)["url"].endswith(f":{port}/"))
        from bot_bottle.relay.credentials import RelayCredentials
        with RelayCredentials(self.db) as credentials:
            credentials.mint("web-1")
        self.assertEqual(json.loads(self.bb("relay", "revoke", "web-1", "--json").stdout),
                         {"bottle": "web-1", "revoked": True})
        stopped = self.bb("relay", "stop", "--json")
        self.assertEqual(json.loads(stopped.stdout)["running"], False)

    def test_the_dashboard_says_its_url_as_json(self) -> None:
        process = subprocess.Popen([sys.executable, "-m", "bot_bottle", "--db", str(self.db), "dashboard", "--json"],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env=relay_env(self.home))
        self.addCleanup(process.kill)
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        self.assertTrue(line["url"].startswith("http://127.0.0.1:"))
        self.assertEqual(line["pid"], process.pid)
        process.terminate()
        self.assertEqual(process.wait(20), 0, "SIGTERM stops it cleanly")


class NewcomerEdgesTest(ShellCase):
    def test_an_older_python_is_told_in_one_line(self) -> None:
        """BROKE before the fix: Python 3.10 ended in "ImportError: cannot import name 'UTC'"."""
        # pyenv's versions first: its shim for a version not selected exits 127 without running anything.
        pyenv = Path(os.environ.get("PYENV_ROOT", os.path.expanduser("~root/.pyenv")))
        found = sorted(glob.glob(str(pyenv / "versions/3.10.*/bin/python")))
        found += [path for path in [shutil.which("python3.10")] if path and "/shims/" not in path]
        interpreters = [path for path in found if path and os.access(path, os.X_OK)]
        if not interpreters:
            if in_ci():
                self.fail("no Python 3.10 to run (pyenv's 3.10 is expected on CI)")
            self.skipTest("no Python 3.10 here (pyenv install 3.10 to run this)")
        for verb in (["--version"], ["proposals", "list"], ["demo", "--auto"]):
            result = subprocess.run([interpreters[0], "-m", "bot_bottle", *verb], cwd=REPO, capture_output=True,
                                    text=True, timeout=60, env=relay_env(self.home))
            self.assertEqual(result.returncode, 1)
            self.assertEqual(result.stdout, "")
            (line,) = result.stderr.splitlines()
            self.assertRegex(line, r"^bot-bottle needs Python 3\.11 or newer \(this is 3\.10\.\d+\)")

    def test_a_backup_is_never_opened_in_place(self) -> None:
        """BROKE before the fix: 'db backup's own file (...manual-<time>.bak) opened in place with --db."""
        backup = json.loads(self.bb("db", "backup", "--json").stdout)["backup"]
        before = Path(backup).read_bytes()
        for argv in (["proposals", "list"], ["audit", "verify"], ["db", "upgrade"], ["db", "downgrade", "--to", "1"]):
            with self.subTest(argv):
                result = subprocess.run([sys.executable, "-m", "bot_bottle", "--db", backup, *argv], cwd=REPO,
                                        capture_output=True, text=True, timeout=60, env=relay_env(self.home))
                self.assertEqual(result.returncode, 1)
                self.assertIn("is a backup", result.stderr)
                self.assertEqual(len(result.stderr.splitlines()), 1)
        status = subprocess.run([sys.executable, "-m", "bot_bottle", "--db", backup, "db", "status"], cwd=REPO,
                                capture_output=True, text=True, timeout=60, env=relay_env(self.home))
        self.assertEqual(status.returncode, 0, "read, without changing it")
        self.assertEqual(Path(backup).read_bytes(), before)

    def test_the_throwaway_demo_leaves_home_untouched(self) -> None:
        """BROKE before the fix: 'demo --auto' with a fresh HOME left ~/.bot-bottle/audit.key and audit-anchors/."""
        fresh = self.tmp / "fresh-home"
        fresh.mkdir()
        result = subprocess.run([sys.executable, "-m", "bot_bottle", "demo", "--auto"], cwd=REPO,
                                capture_output=True, text=True, timeout=120, env=relay_env(fresh))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(list(fresh.iterdir()), [])

    def test_a_locale_that_is_not_utf8_gets_escapes_not_a_traceback(self) -> None:
        """BROKE before the fix: in a Latin-1 (or ASCII) locale, an agent's arrow in its justification ended
        'proposals list' with "UnicodeEncodeError: 'latin-1' codec can't encode character '\\u2192'"."""
        words = "caf\u00e9 \u2192 the docs \U0001f600"
        with QueueStore(self.db) as store:
            filed = store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "docs.python.org"}', words)
        for encoding in ("latin-1", "ascii"):
            env = {**relay_env(self.home), "PYTHONIOENCODING": encoding}
            for argv in (["proposals", "list", "--bottle", "web-3"], ["proposals", "show", filed.short_id],
                         ["proposals", "list", "--bottle", "web-3", "--json"]):
                with self.subTest(encoding=encoding, argv=argv):
                    result = subprocess.run([sys.executable, "-m", "bot_bottle", "--db", str(self.db), *argv],
                                            cwd=REPO, capture_output=True, timeout=60, env=env)
                    self.assertEqual(result.returncode, 0, result.stderr.decode(encoding, "replace"))
                    self.assertEqual(result.stderr, b"")
                    out = result.stdout.decode(encoding)
                    if "--json" in argv:
                        self.assertEqual(json.loads(out)[0]["justification"], words, "exact, as escapes")
                    else:
                        self.assertIn("\\u2192 the docs \\U0001f600", out)

    def test_a_typo_gets_the_nearest_and_the_verbs_own_help(self) -> None:
        """A mistyped verb, subverb or option: one line naming the nearest, pointing at the right --help."""
        for argv, nearest, helped in ((["propsals", "list"], "proposals", "bot-bottle --help"),
                                      (["proposals", "lst"], "list", "bot-bottle proposals --help"),
                                      (["proposals", "list", "--jsno"], "--json", "bot-bottle proposals list --help")):
            with self.subTest(argv):
                result = self.bb(*argv)
                self.assertEqual(result.returncode, 2)
                (line,) = result.stderr.splitlines()
                self.assertIn(f"did you mean '{nearest}'?", line)
                self.assertIn(f"(see '{helped}')", line)
        shown = self.bb("proposals", "show", "zz")
        self.assertIn("error: ID: 'zz'", shown.stderr, "a positional argument is not called --id")
        # BROKE before the fix: a mistyped required option was said to be missing ('the following arguments are
        # required: --reason'), the typo itself never named, nor the option meant.
        for argv, typo, nearest in ((["grants", "revoke", "abcd1234", "--reson", "x"], "--reson", "--reason"),
                                    (["proposals", "reject", "abcd1234", "--raeson=x"], "--raeson=x", "--reason"),
                                    (["rules", "add", "--botle", "web-1", "--host", "a.com"], "--botle web-1",
                                     "--bottle")):
            with self.subTest(argv):
                result = self.bb(*argv)
                self.assertEqual(result.returncode, 2)
                (line,) = result.stderr.splitlines()
                self.assertIn(f"unrecognized arguments: {typo}; did you mean '{nearest}'?", line)
        missing = self.bb("grants", "revoke", "abcd1234")
        self.assertIn("the following arguments are required: --reason", missing.stderr, "nothing mistyped")
        verbless = self.bb("proposals", "--jsno")
        self.assertIn("required: VERB (one of: list, show, approve, modify, reject)", verbless.stderr)
        abbreviated = self.bb("grants", "revoke", "abcd1234", "--rea", "x")
        self.assertNotIn("unrecognized", abbreviated.stderr, "an abbreviation argparse takes is no typo")


class PromptTest(ShellCase):
    def approve_in_a_terminal(self, proposal: Proposal | None = None, prompt: str = "[y/N]",
                              options: str = "") -> Terminal:
        return self.in_a_terminal(f"proposals approve {(proposal or self.long).short_id} {options}", prompt)

    def in_a_terminal(self, command: str, prompt: str) -> Terminal:
        """``bot-bottle COMMAND`` in a terminal, waiting at ``prompt``; its exit status lands in ``self.status``."""
        status = self.tmp / "status"
        bb = f"{shlex.quote(sys.executable)} -m bot_bottle --db {shlex.quote(str(self.db))}"
        term = Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} PAGER=cat "
                        f"{bb} {command}; echo $? > {shlex.quote(str(status))}; sleep 30")
        term.wait_for(prompt)
        self.status = status
        return term

    def test_what_widens_is_approved_only_by_a_typed_yes(self) -> None:
        """BROKE before the fix: a wildcard over every .com name was approved by a reflex 'y', where the TUI and
        the dashboard ask once more. Now the prompt names why and only the whole word yes records it. (*.co.uk:
        *.com now also covers lacolhost.com, a loopback name, and its prompt names all three badges.)"""
        with QueueStore(self.db) as store:
            wide = store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "*.co.uk"}', "all of them")
        self.assert_only_a_typed_yes_records(wide, "it reaches more than it reads as (widens)")

    def test_what_reaches_inside_is_approved_only_by_a_typed_yes(self) -> None:
        """BROKE before the fix: the metadata service's address was approved by a reflex 'y', shown as a plain
        grant. Now the prompt names where it reaches and only the whole word yes records it."""
        with QueueStore(self.db) as store:
            inside = store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "169.254.169.254"}', "the cache")
        self.assert_only_a_typed_yes_records(inside, "it reaches inside (internal)", "metadata service")

    def answer_a_typed_yes(self, command: str, prompt: str, shown: tuple[str, ...], answer: str) -> None:
        """``bot-bottle COMMAND`` on a terminal, its screen showing each of ``shown`` at ``prompt``, answered with
        ``answer``: 'yes' goes on (exit 0), anything else cancels (exit 3)."""
        term = self.in_a_terminal(command, prompt)
        screen = term.screen()
        for needle in shown:
            self.assertIn(needle, screen)
        term.send(answer, "Enter")
        wait_until(self.status.exists, 10, what="the command's end")
        time.sleep(0.2)
        self.assertEqual(self.status.read_text().strip(), "0" if answer == "yes" else "3")
        self.status.unlink()

    def assert_only_a_typed_yes_records(self, proposal: Proposal, *shown: str) -> None:
        """'proposals approve' on a terminal asks for a typed yes, its screen showing each of ``shown``: 'y'
        cancels (exit 3, nothing recorded), 'yes' approves (exit 0)."""
        for answer in ("y", "yes"):
            with self.subTest(answer):
                self.answer_a_typed_yes(f"proposals approve {proposal.short_id}", "type yes to record it", shown,
                                        answer)
                with QueueStore(self.db) as store:
                    response = store.response(proposal.id)
                self.assertEqual(response.status if response else None, None if answer == "y" else STATUS_APPROVED)

    def test_an_approving_rule_over_what_is_asked_twice_is_added_only_by_a_typed_yes(self) -> None:
        """BROKE before the fix: 'rules add' of an approving rule for 10.0.0.5 (a private network) recorded it at
        once and approved the pending [internal] proposal for it, unseen, warning only afterwards. Now it shows
        why and what it would approve at once, and only the whole word yes adds it."""
        with QueueStore(self.db) as store:
            inside = store.submit("web-2", TOOL_EGRESS_ALLOW, '{"host": "10.0.0.5"}', "the cache")
        for answer in ("y", "yes"):
            with self.subTest(answer):
                self.answer_a_typed_yes("rules add --bottle web-2 --host 10.0.0.5 --for 1h", "type yes to record",
                                        ("reaches inside", inside.short_id, "[internal]",
                                         "it reaches inside (internal)"), answer)
                with GrantStore(self.db) as grants:
                    self.assertEqual(len(grants.rules()), 0 if answer == "y" else 1)
                with QueueStore(self.db) as store:
                    response = store.response(inside.id)
                self.assertEqual(response.status if response else None, None if answer == "y" else STATUS_APPROVED)

    def test_no_at_the_prompt_is_cancelled_and_ctrl_c_is_interrupted(self) -> None:
        """'n' records nothing and exits 3 (cancelled); Ctrl-C exits 130; 'y' records it, named back."""
        for keys, code in ((["n", "Enter"], "3"), (["C-c"], "130")):
            with self.subTest(keys):
                term = self.approve_in_a_terminal()
                term.send(*keys)
                wait_until(self.status.exists, 10, what="the command's end")
                time.sleep(0.2)
                self.assertEqual(self.status.read_text().strip(), code)
                self.status.unlink()
                with QueueStore(self.db) as store:
                    self.assertIsNone(store.response(self.long.id))
        term = self.approve_in_a_terminal()
        screen = term.wait_for(f"approve {self.long.short_id} (web-2, egress-allow) for 7d?")
        self.assertIn("[y/N]", screen)
        term.send("y", "Enter")
        wait_until(self.status.exists, 10, what="the command's end")
        time.sleep(0.2)
        self.assertEqual(self.status.read_text().strip(), "0")
        with QueueStore(self.db) as store:
            response = store.response(self.long.id)
        self.assertEqual(response.status if response else None, STATUS_APPROVED)


    def test_no_to_the_second_of_two_records_neither(self) -> None:
        """BROKE before the fix: 'approve A B', 'y' to A and 'n' to B, recorded A and exited 3, the status that
        says nothing was recorded (and Ctrl-C there recorded neither). Now a "no" cancels the command, all or
        none as the commit is: neither is recorded, and the answer names the one agreed before it."""
        with QueueStore(self.db) as store:
            first = store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "a.example.org"}', "one")
            second = store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "b.example.org"}', "two")
        term = self.in_a_terminal(f"proposals approve {first.short_id} {second.short_id}",
                                  f"approve {first.short_id} (web-3, egress-allow) for 7d? [y/N]")
        term.send("y", "Enter")
        term.wait_for(f"approve {second.short_id} (web-3, egress-allow) for 7d? [y/N]")
        term.send("n", "Enter")
        wait_until(self.status.exists, 10, what="the command's end")
        time.sleep(0.2)
        self.assertEqual(self.status.read_text().strip(), "3")
        term.wait_for(f"nor {first.short_id} agreed before it (all or none)")
        with QueueStore(self.db) as store:
            self.assertEqual((store.response(first.id), store.response(second.id)), (None, None))
        with GrantStore(self.db) as grants:
            self.assertEqual(grants.for_proposal(first.id), None)

    def test_the_question_and_the_answer_name_the_length_and_the_rule_remembered(self) -> None:
        """BROKE before the fix: 'approve ID --for 1h --remember bottle' asked only "approve ID (web-2,
        egress-allow)? [y/N]" and printed only the grant: the standing rule it made, approving web-2's same
        asks for the hour, was named nowhere. Now the question says for how long and that the same is approved
        again, and the answer names the rule (--json: "rule")."""
        term = self.approve_in_a_terminal(prompt="until then (--remember bottle)?",
                                          options="--for 1h --remember bottle")
        term.wait_for(f"approve {self.long.short_id} (web-2, egress-allow) for 1h, and the same again for web-2 until")
        term.send("y", "Enter")
        wait_until(self.status.exists, 10, what="the command's end")
        time.sleep(0.2)
        self.assertEqual(self.status.read_text().strip(), "0")
        with GrantStore(self.db) as grants:
            (rule,) = grants.rules()
        said = term.wait_for(f"rule {rule.short_id}: approves the same again for web-2, until {rule.ends_at} (1h)")
        self.assertIn(f"'rules revoke {rule.short_id}' ends", said)
        with QueueStore(self.db) as store:
            other = store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "pastebin.com"}', "a paste")
        done = self.run_cli("proposals", "reject", other.short_id, "--reason", "no", "--remember", "all", "--for",
                            "3d", "--json", "--db", str(self.db))
        self.assertEqual(done.returncode, 0, done.stderr)
        (decided,) = json.loads(done.stdout)
        self.assertEqual({key: decided["rule"][key] for key in ("bottle", "effect", "left")},
                         {"bottle": None, "effect": "reject", "left": "3d"})
        with QueueStore(self.db) as store:  # a decision without --remember makes no rule, and names none
            plain = store.submit("web-3", TOOL_EGRESS_ALLOW, '{"host": "example.org"}', "x")
        done = self.run_cli("proposals", "reject", plain.short_id, "--reason", "no", "--db", str(self.db))
        self.assertEqual(done.stdout.strip().splitlines(), [done.stdout.strip()])
        self.assertNotIn("rule ", done.stdout)


class TuiShellTest(ShellCase):
    def supervise(self, *options: str) -> Terminal:
        bb = f"{shlex.quote(sys.executable)} -m bot_bottle --db {shlex.quote(str(self.db))}"
        return Terminal(self, f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                        f"NO_COLOR=1 {bb} supervise {' '.join(options)}; sleep 30")

    def test_notify_runs_through_the_shell_and_a_failure_is_said(self) -> None:
        """BROKE before the fix: --notify 'env | grep ... >> log' silently did nothing (not run by a shell)."""
        log = self.tmp / "notified"
        term = self.supervise("--notify", shlex.quote(f"env | grep BOT_BOTTLE_NEW_ | sort >> {shlex.quote(str(log))}"))
        term.wait_for("pending")
        with QueueStore(self.db) as store:
            store.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "late.example"}', "arrived later")
        wait_until(log.exists, 15, what="the notify pipeline's output")
        wait_until(lambda: "BOT_BOTTLE_NEW_PROPOSALS=1" in log.read_text(), 5, what="its whole output")
        self.assertEqual(log.read_text().splitlines(), ["BOT_BOTTLE_NEW_BOTTLES=web-9", "BOT_BOTTLE_NEW_PROPOSALS=1"])
        term.send("q")
        failing = self.supervise("--notify", shlex.quote("no-such-notifier --now"))
        failing.wait_for("pending")
        with QueueStore(self.db) as store:
            store.submit("web-9", TOOL_EGRESS_ALLOW, '{"host": "later.example"}', "and another")
        failing.wait_for("the notify command exited 127")

    def test_no_color_keeps_the_terminals_own_colours(self) -> None:
        """BROKE before the fix: NO_COLOR=1 painted the TUI white on black. Now no colour is set at all."""
        term = self.supervise()
        term.wait_for("pending")
        painted = term.run("capture-pane", "-p", "-e", "-t", "t")
        self.assertNotRegex(painted, r"\x1b\[[0-9;]*(3[0-7]|4[0-7]|9[0-7]|10[0-7])m", "no colour of ours")
        self.assertFalse(in_ci() and shutil.which("tmux") is None)
