"""git-gate with a real gitleaks and real git: clean, blocked, and operator-approved pushes."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from bot_bottle.audit_store import AuditStore
from bot_bottle.cli.render import describe
from bot_bottle.git_gate import (
    Finding,
    GitGateError,
    RefUpdate,
    install_hook,
    parse_hook_input,
    parse_report,
    redact_line,
    render_hook,
    report_payload,
)
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_GITLEAKS_ALLOW, Proposal
from bot_bottle.supervise import decide
from tests.support import REPO, TempDirTest, require_tool

# Test secrets in gitleaks' aws-access-token shape. Built at run time so this
# file itself carries no finding.
SECRET_ALLOWED = "AKIA" + "Z7QWERTYUIOP3XYZ"
SECRET_BLOCKED = "AKIA" + "Z7QWERTYUIOP4XYZ"
SHA_A = "a" * 40
SHA_B = "b" * 40
ZERO = "0" * 40


class UnitTest(unittest.TestCase):
    def test_hook_input(self) -> None:
        """git's 'old new ref' lines parse; anything else is an error."""
        updates = parse_hook_input([f"{SHA_A} {SHA_B} refs/heads/main\n", "\n", f"{ZERO} {SHA_B} refs/heads/x\n"])
        self.assertEqual(updates[0], RefUpdate(SHA_A, SHA_B, "refs/heads/main"))
        self.assertTrue(updates[1].created)
        self.assertTrue(RefUpdate(SHA_A, ZERO, "refs/heads/x").deleted)
        for bad in ("junk", f"{SHA_A} {SHA_B}", f"{SHA_A} nothex refs/heads/m", f"{SHA_A} {SHA_B} main"):
            with self.subTest(bad=bad), self.assertRaises(GitGateError):
                parse_hook_input([bad])

    def test_report_parsing(self) -> None:
        """A gitleaks report is a list of findings with the fields we use; anything else is refused."""
        good = [{"RuleID": "r", "File": "f", "Commit": SHA_A, "StartLine": 3, "Secret": "s"}]
        self.assertEqual(parse_report(json.dumps(good)), good)
        self.assertEqual(parse_report(""), [])
        for bad in ("{", "{}", "[1]", json.dumps([{"RuleID": "r"}]), json.dumps([{**good[0], "StartLine": "3"}])):
            with self.subTest(bad=bad), self.assertRaises(GitGateError):
                parse_report(bad)

    def test_redaction(self) -> None:
        """Every copy of the secret is masked, and long lines are cut."""
        self.assertEqual(redact_line(f'  a = "{SECRET_ALLOWED}"; b = {SECRET_ALLOWED}  ', [SECRET_ALLOWED, ""]),
                         'a = "********"; b = ********')
        self.assertLessEqual(len(redact_line("x" * 1000, ["y"])), 200)

    def test_payload_is_stable(self) -> None:
        """The same findings in another order give the same payload (so a retried push dedupes)."""
        one = Finding("refs/heads/m", SHA_A, "a.py", 1, "rule", "k = ********")
        two = Finding("refs/heads/m", SHA_B, "b.py", 2, "rule", "j = ********")
        update = [RefUpdate(SHA_A, SHA_B, "refs/heads/m")]
        self.assertEqual(report_payload(update, [one, two]), report_payload(update, [two, one]))

    def test_rendered_hook(self) -> None:
        """The hook runs this gate for its bottle, with the given options, quoted for sh."""
        hook = render_hook("web-1", python="/usr/bin/python3", db_path="/run/x y/db", timeout=30,
                           gitleaks="/opt/gitleaks", pythonpath="/src")
        self.assertTrue(hook.startswith("#!/bin/sh\n"))
        self.assertIn("exec env PYTHONPATH=/src /usr/bin/python3 -m bot_bottle.git_gate pre-receive --bottle web-1 "
                      "--db '/run/x y/db' --timeout 30 --gitleaks /opt/gitleaks", hook)

    def test_hook_goes_where_git_runs_it(self) -> None:
        """A bare repository gets hooks/pre-receive; a work tree .git/hooks, even with a hooks/ folder of its own."""
        with tempfile.TemporaryDirectory() as folder:
            bare = Path(folder) / "bare.git"
            bare.mkdir()
            self.assertEqual(install_hook(bare, "web-1"), bare / "hooks" / "pre-receive")
            tree = Path(folder) / "tree"
            (tree / ".git").mkdir(parents=True)
            (tree / "hooks").mkdir()
            hook = install_hook(tree, "web-1")
            self.assertEqual(hook, tree / ".git" / "hooks" / "pre-receive")
            self.assertEqual(list((tree / "hooks").iterdir()), [])
            self.assertTrue(os.access(hook, os.X_OK))

    def test_report_renders_as_a_table(self) -> None:
        """proposals show / the TUI render a gitleaks-allow proposal as a findings table."""
        finding = Finding("refs/heads/main", SHA_A, "s.py", 7, "aws-access-token", 'k = "********"')
        proposal = Proposal("c" * 32, "web", TOOL_GITLEAKS_ALLOW,
                            report_payload([RefUpdate(SHA_B, SHA_A, "refs/heads/main")], [finding]),
                            "j", None, None, "2026-11-27T00:00:00.000000Z")
        text = "\n".join(describe(proposal, None))
        self.assertIn("COMMIT    FILE:LINE  RULE", text)
        self.assertIn("main  aaaaaaaa  s.py:7     aws-access-token", text)
        self.assertIn('k = "********"', text)


class GitGateTest(TempDirTest):
    """Pushes through a bare repository whose pre-receive hook is git-gate."""

    def setUp(self) -> None:
        super().setUp()
        self.gitleaks = require_tool(self, "gitleaks")
        require_tool(self, "git")
        self.db = self.tmp / "gate.db"
        self.store = QueueStore(self.db)
        self.addCleanup(self.store.close)
        self.remote = self.tmp / "remote.git"
        self.git("init", "-q", "--bare", str(self.remote), cwd=self.tmp)
        self.hook(timeout=30)
        self.work = self.tmp / "work"
        self.git("clone", "-q", str(self.remote), str(self.work), cwd=self.tmp)
        for key, value in (("user.email", "agent@bottle"), ("user.name", "agent"), ("commit.gpgsign", "false")):
            self.git("config", key, value)
        self.commit("README.md", "hello\n")
        self.assertEqual(self.push().returncode, 0)

    def hook(self, **options: object) -> None:
        settings: dict[str, object] = {"db_path": self.db, "gitleaks": self.gitleaks, "pythonpath": str(REPO)}
        install_hook(self.remote, "web-1", **{**settings, **options})

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd or self.work, capture_output=True, text=True, timeout=60,
                                env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"})
        if result.returncode != 0:
            raise AssertionError(f"git {args[0]} failed: {result.stderr}")
        return result.stdout

    def commit(self, name: str, text: str) -> str:
        (self.work / name).write_text(text)
        self.git("add", name)
        self.git("commit", "-q", "-m", f"add {name}")
        return self.git("rev-parse", "HEAD").strip()

    def start_push(self, *refspec: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["git", "push", "origin", *(refspec or ("HEAD:main",))], cwd=self.work,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"})

    def push(self, *refspec: str) -> subprocess.CompletedProcess[str]:
        process = self.start_push(*refspec)
        out, err = process.communicate(timeout=120)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)

    def remote_head(self, branch: str = "main") -> str:
        return self.git("rev-parse", branch, cwd=self.remote).strip()

    def proposals(self) -> list[str]:
        return [p.id for p, _ in self.store.listing("web-1", include_decided=True)]

    def wait_for_proposal(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = self.store.pending("web-1")
            if pending:
                return pending[0].id
            time.sleep(0.05)
        raise AssertionError("git-gate never filed a proposal")

    def decide_later(self, status: str, notes: str) -> threading.Thread:
        thread = threading.Thread(target=lambda: decide(self.wait_for_proposal(), status, notes, store=self.store))
        thread.start()
        self.addCleanup(thread.join)
        return thread

    def assert_no_secret_stored(self) -> None:
        raw = self.db.read_bytes()
        for secret in (SECRET_ALLOWED, SECRET_BLOCKED):
            self.assertNotIn(secret.encode(), raw)
        with AuditStore(self.db) as audit:
            exported = "\n".join(json.dumps(e.to_dict()) for e in audit.export())
        for secret in (SECRET_ALLOWED, SECRET_BLOCKED):
            self.assertNotIn(secret, exported)

    def test_clean_push_passes(self) -> None:
        """A push without secrets is accepted and files nothing."""
        head = self.commit("app.py", "print('hi')\n")
        result = self.push()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("push accepted", result.stderr)
        self.assertEqual(self.remote_head(), head)
        self.assertEqual(self.proposals(), [])

    def test_secret_is_refused_without_a_proposal(self) -> None:
        """An unsuppressed finding refuses the push outright."""
        self.commit("config.py", f'key = "{SECRET_BLOCKED}"\n')
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("gitleaks found a secret: aws-access-token in config.py:1", result.stderr)
        self.assertEqual(self.proposals(), [])
        self.assert_no_secret_stored()

    def test_allowed_secret_waits_then_passes_on_approval(self) -> None:
        """A '# gitleaks:allow' secret waits for the operator and passes when approved."""
        head = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        self.decide_later(STATUS_APPROVED, "a test fixture, not a real key")
        result = self.push()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("waiting up to 30 s", result.stderr)
        self.assertIn("the operator approved", result.stderr)
        self.assertEqual(self.remote_head(), head)
        (proposal_id,) = self.proposals()
        proposal = self.store.get(proposal_id)
        self.assertIsNotNone(proposal.archived_at, "the approval is spent on this push")
        report = json.loads(proposal.payload)
        self.assertEqual([(f["file"], f["line"], f["rule"]) for f in report["findings"]],
                         [("fixture.py", 1, "aws-access-token")])
        self.assertEqual(report["findings"][0]["line_text"], 'key = "********"  # gitleaks:allow')
        self.assert_no_secret_stored()

    def test_rejection_refuses_and_a_retry_files_nothing_new(self) -> None:
        """A rejected push fails with the reason; pushing again fails at once, on the same proposal."""
        self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        before = self.remote_head()
        self.decide_later(STATUS_REJECTED, "use a fake key in fixtures")
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("rejected it: use a fake key in fixtures", result.stderr)
        again = self.push()
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("rejected it", again.stderr)
        self.assertEqual(len(self.proposals()), 1)
        self.assertEqual(self.remote_head(), before)
        self.assert_no_secret_stored()

    def test_timeout_refuses_and_a_late_approval_lets_the_retry_through(self) -> None:
        """No decision in time refuses the push; approved later, the same push passes on retry."""
        self.hook(timeout=1)
        head = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no decision within 1 s", result.stderr)
        (proposal_id,) = self.proposals()
        decide(proposal_id, STATUS_APPROVED, "ok after all", store=self.store)
        retry = self.push()
        self.assertEqual(retry.returncode, 0, retry.stderr)
        self.assertEqual(self.remote_head(), head)
        self.assertEqual(self.proposals(), [proposal_id])

    def test_new_branch_scans_only_new_commits_and_deletes_scan_nothing(self) -> None:
        """A new branch over commits the repository has is scanned for its new commits only."""
        self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        self.decide_later(STATUS_APPROVED, "fixture")
        self.assertEqual(self.push().returncode, 0)
        self.git("checkout", "-q", "-b", "feature")
        self.commit("feature.py", "x = 1\n")
        result = self.push("HEAD:feature")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("found no secrets", result.stderr)
        self.assertEqual(len(self.proposals()), 1, "the already-approved commit was not scanned again")
        deleted = self.push("--delete", "feature")
        self.assertEqual(deleted.returncode, 0, deleted.stderr)

    def test_gitleaks_missing_or_failing_refuses(self) -> None:
        """Without a working gitleaks the gate fails closed."""
        self.hook(timeout=5, gitleaks=str(self.tmp / "no-such-gitleaks"))
        self.commit("app.py", "print(1)\n")
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("gitleaks is not installed", result.stderr)
        failing = self.tmp / "failing-gitleaks"
        failing.write_text("#!/bin/sh\necho 'config broken' >&2\nexit 3\n")
        failing.chmod(0o755)
        self.hook(timeout=5, gitleaks=str(failing))
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("gitleaks failed (exit 3): config broken", result.stderr)

    def test_database_unavailable_refuses(self) -> None:
        """If the queue cannot be reached, a push that needs the operator is refused."""
        self.hook(timeout=5, db_path=self.tmp / "not-a-dir" / "x.db")
        (self.tmp / "not-a-dir").write_text("a file where the database's directory should be")
        self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("push refused", result.stderr)
