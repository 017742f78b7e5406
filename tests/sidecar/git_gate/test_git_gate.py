"""git-gate with a real gitleaks and real git: clean, blocked, and operator-approved pushes."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from bot_bottle.cli.render import describe
from bot_bottle.decisions import decide
from bot_bottle.errors import GitGateError, GitObjectsError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_GITLEAKS_ALLOW, Proposal
from bot_bottle.sidecar.git_gate.cli import build_parser
from bot_bottle.sidecar.git_gate.findings import Finding, parse_report, redact_line, report_payload
from bot_bottle.sidecar.git_gate.hook import pre_receive
from bot_bottle.sidecar.git_gate.install import install_hook, render_hook
from bot_bottle.sidecar.git_gate.limits import Limits
from bot_bottle.sidecar.git_gate.objects import render_tree
from bot_bottle.sidecar.git_gate.refs import RefUpdate, parse_hook_input, refused_ref
from bot_bottle.sidecar.transport import find_transport
from bot_bottle.text.redaction import Masker
from tests.helpers.git_remote import (
    SECRET_ALLOWED,
    SECRET_BLOCKED,
    SHA_A,
    SHA_B,
    ZERO,
    GateAttackCase,
    GateCase,
    SharedRemoteTest,
    b64_forms,
    github_token,
)
from tests.helpers.support import REPO, TempDirTest, require_tool, wait_until


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
                      "--db '/run/x y/db' --timeout 30 --gitleaks /opt/gitleaks\n", hook)
        limited = render_hook("web-1", python="/usr/bin/python3", limits=Limits(max_refs=9, max_seconds=2.5,
                                                                                max_archive_bytes=1 << 20))
        self.assertIn("pre-receive --bottle web-1 --max-refs 9 --max-seconds 2.5 --max-archive-size 1048576\n", limited)
        # Each option the hook writes is one pre-receive reads back into the same limits.
        parsed = build_parser().parse_args(["pre-receive", "--bottle", "web-1", "--max-refs", "9", "--max-seconds",
                                            "2.5", "--max-archive-size", "1M", "--max-memory", "2G"])
        self.assertEqual((parsed.max_refs, parsed.max_seconds, parsed.max_archive_bytes, parsed.max_memory_bytes),
                         (9, 2.5, 1 << 20, 2 << 30))
        for bad in (["--max-refs", "0"], ["--max-object-size", "lots"], ["--max-seconds", "-1"]):
            with self.subTest(bad=bad), contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                build_parser().parse_args(["pre-receive", "--bottle", "web-1", *bad])

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


class GitGateTest(GateCase):
    """Pushes through a bare repository whose pre-receive hook is git-gate."""

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
        # Spent on this push: archived by the hook's close, or by the relay's next write or a moment later.
        proposal = wait_until(lambda: (found := self.store.get(proposal_id)).archived_at and found, 5, 0.02,
                              "the approval archived")
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

    def test_a_db_in_a_missing_directory_is_not_created(self) -> None:
        """--db naming a directory that does not exist: every push refused at once, nothing created."""
        missing = self.tmp / "no-such-dir" / "sub" / "gate.db"
        self.hook(timeout=5, db_path=missing)
        self.commit("app.py", "print('hi')\n")
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"push refused: --db {missing}: the directory {missing.parent} does not exist", result.stderr)
        self.assertFalse((self.tmp / "no-such-dir").exists())

    def test_database_unavailable_refuses(self) -> None:
        """If the queue cannot be reached, a push that needs the operator is refused."""
        self.hook(timeout=5, db_path=self.tmp / "not-a-dir" / "x.db")
        (self.tmp / "not-a-dir").write_text("a file where the database's directory should be")
        self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("push refused", result.stderr)


class BypassTest(GateAttackCase):
    """Each way a token got past the old gate, tried with real git and gitleaks: every one refused."""

    def test_replace_ref_pushed_with_the_secret_commit(self) -> None:
        """refs/replace/<S> -> a clean commit, and main -> S, in one push: refused for the replace ref."""
        secret = self.shared.commit_with({"config.py": f"token = '{github_token(1)}'\n".encode()})
        clean = self.shared.commit_with({"config.py": b"token = None\n"})
        self.assert_refused(f"{clean}:refs/replace/{secret}", f"{secret}:refs/heads/main",
                            says=f"refs/replace/{secret} is not a branch or a tag", secret_oids=(secret,))

    def test_replace_ref_already_on_the_remote_is_not_followed(self) -> None:
        """With a replace ref planted on the remote, the scan still reads the secret commit itself."""
        secret = self.shared.commit_with({"config.py": f"token = '{github_token(2)}'\n".encode()})
        clean = self.shared.commit_with({"config.py": b"token = None\n"})
        self.assertEqual(self.shared.push(f"{clean}:refs/heads/decoy").returncode, 0)
        self.shared.git("update-ref", f"refs/replace/{secret}", clean, cwd=self.shared.remote)
        try:
            self.assert_refused(f"{secret}:refs/heads/main", says="github-pat in config.py:1", secret_oids=(secret,))
        finally:
            self.shared.git("update-ref", "-d", f"refs/replace/{secret}", cwd=self.shared.remote)
            self.shared.git("update-ref", "-d", "refs/heads/decoy", cwd=self.shared.remote)

    def test_notes_and_other_refs_are_refused(self) -> None:
        """refs/notes/, and any ref outside refs/heads/ and refs/tags/, is refused with one line saying why."""
        note = self.shared.blob(b"a clean note\n")
        notes_tree = self.shared.tree([("100644", self.shared.base, note)])
        notes = self.shared.commit_tree(notes_tree, [], "notes")
        self.assert_refused(f"{notes}:refs/notes/commits", says="refs/notes/commits is not a branch or a tag")
        self.assert_refused(f"{self.shared.base}:refs/pull/1/head", says="refs/pull/1/head is not a branch or a tag")
        self.assert_refused(f"{self.shared.base}:refs/heads/ok", f"{self.shared.base}:refs/meta/config",
                            says="refs/meta/config is not a branch or a tag")

    def test_tags_pointing_straight_at_a_blob_or_a_tree(self) -> None:
        """A lightweight or annotated tag to a blob, or a tag to a tree: the blob's content is scanned."""
        data = f"token = '{github_token(3)}'\n".encode()
        blob = self.shared.blob(data)
        self.assert_refused(f"{blob}:refs/tags/light", says="github-pat in (blob):1", secret_oids=(blob,))
        annotated = self.shared.git("mktag", data=(
            f"object {blob}\ntype blob\ntag annotated\ntagger agent <agent@bottle> 1764230400 +0000\n\nrelease\n"
        ).encode()).strip()
        self.assert_refused(f"{annotated}:refs/tags/annotated", says="github-pat in (blob):1", secret_oids=(blob,))
        nested = self.shared.git("mktag", data=(
            f"object {annotated}\ntype tag\ntag nested\ntagger agent <agent@bottle> 1764230400 +0000\n\nagain\n"
        ).encode()).strip()
        self.assert_refused(f"{nested}:refs/tags/nested", says="github-pat in (blob):1", secret_oids=(blob,))
        tree = self.shared.tree([("100644", "deep.txt", blob)])
        self.assert_refused(f"{tree}:refs/tags/tree", says="github-pat in deep.txt:1", secret_oids=(blob,))

    def test_secret_only_in_a_merge_commit(self) -> None:
        """An evil merge (two and three parents) adds a file neither parent has: refused."""
        left = self.shared.commit_with({"left.py": b"x = 1\n"})
        right = self.shared.commit_with({"right.py": b"y = 2\n"})
        third = self.shared.commit_with({"third.py": b"z = 3\n"})
        secret = f"token = '{github_token(4)}'\n".encode()
        merge = self.shared.commit_with({"left.py": b"x = 1\n", "right.py": b"y = 2\n", "merged.py": secret},
                                        "merge", parents=[left, right])
        self.assert_refused(f"{merge}:refs/heads/main", says="github-pat in merged.py:1", secret_oids=(merge,))
        octopus = self.shared.commit_with({"left.py": b"x = 1\n", "right.py": b"y = 2\n", "third.py": b"z = 3\n",
                                           "octo.py": secret}, "octopus", parents=[left, right, third])
        self.assert_refused(f"{octopus}:refs/heads/main", says="github-pat in octo.py:1", secret_oids=(octopus,))

    def assert_each_found(self, files: dict[str, bytes], token: str) -> None:
        """Every one of ``files`` (token unmarked) refuses the push; marked, each is a finding of its own.

        One push for all of them each way keeps this fast: the marked push
        shows gitleaks found every file (each is listed in the proposal), the
        unmarked one that any such finding refuses the push.
        """
        head = self.shared.commit_with(files)
        self.assert_refused(f"{head}:refs/heads/main", says="push refused: gitleaks found a secret: github-pat in ",
                            secret_oids=(head,))
        marked = {path: data.replace(token.encode(), token.encode() + b" # gitleaks:allow")
                  for path, data in files.items()}
        head = self.shared.commit_with(marked)
        self.assert_refused(f"{head}:refs/heads/main", says="no decision within 0 s", secret_oids=(head,))
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        report = json.loads(proposal.payload)
        self.assertEqual(sorted({f["file"] for f in report["findings"]}), sorted(files))
        self.assertEqual({f["rule"] for f in report["findings"]}, {"github-pat"})
        self.assertNotIn(token, proposal.payload + proposal.justification)

    def test_binary_and_archive_looking_files(self) -> None:
        """A NUL byte, or bytes that make gitleaks take the file for an archive, PDF or SQLite: scanned."""
        token = github_token(5)
        self.assert_each_found({
            "blob.bin": b"\x00\x01\x02binary\x00" + f"\ntoken = {token}\n".encode(),
            "nul-glued.bin": b"\x00" + token.encode() + b" \x00",
            "fake.tar": b"a" * 257 + b"ustar\x00" + f"\ntoken = {token}\n".encode(),
            "fake.pdf": b"%PDF-1.7\n" + f"token = {token}\n".encode(),
            "fake.sqlite": b"SQLite format 3\x00" + f"\ntoken = {token}\n".encode(),
            "fake.elf": b"\x7fELF" + b"\x00" * 60 + f"\ntoken = {token}\n".encode(),
        }, token)

    def test_archive_look_alikes_are_refused(self) -> None:
        """A zip or gzip signature on bytes no tool reads whole (a repair tool still recovers some): refused."""
        token = github_token(13)
        for name, data, says in (
            ("fake.zip", b"PK\x03\x04" + b"\x00" * 26 + f"\ntoken = {token}\n".encode(), "fake.zip: a corrupt zip"),
            ("fake.gz", b"\x1f\x8b\x08\x00" + f"\ntoken = {token}\n".encode(), "fake.gz: a corrupt or truncated gzip"),
            ("fake.iso", b"a" * 32769 + b"CD001" + f"\ntoken = {token}\n".encode(),
             "fake.iso: an ISO 9660 image, which git-gate cannot open to scan"),
        ):
            with self.subTest(name):
                head = self.shared.commit_with({name: data})
                said = self.assert_refused(f"{head}:refs/heads/main", says=says, secret_oids=(head,))
                self.assertIn("git-gate refuses what it cannot scan whole", said)

    def test_paths_gitleaks_allowlists_by_default(self) -> None:
        """node_modules/, *.png, go.sum, package-lock.json, gitleaks.toml and friends are scanned too."""
        token = github_token(6)
        # Each file's content differs: one blob at several paths is one object, scanned (and listed) once.
        self.assert_each_found({path: f"# {path}\ntoken = '{token}'\n".encode() for path in (
            "node_modules/left-pad.js", "logo.png", "go.sum", "package-lock.json", "gitleaks.toml",
            "vendor/lib.rb", "yarn.lock", "photo.jpg", "font.woff", ".gitleaks.toml")}, token)

    def test_commit_and_tag_messages_and_headers(self) -> None:
        """A token in a commit message, an annotated tag's message, or an extra commit header: refused."""
        token = github_token(7)
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob)])
        in_message = self.shared.commit_tree(tree, [self.shared.base], f"fix\n\ndeploy with {token}\n")
        self.assert_refused(f"{in_message}:refs/heads/main", says="github-pat in (commit object):8",
                            secret_oids=(in_message,))
        tag = self.shared.git("mktag", data=(
            f"object {self.shared.base}\ntype commit\ntag v1\ntagger agent <agent@bottle> 1764230400 +0000\n\n"
            f"release, token {token}\n").encode()).strip()
        self.assert_refused(f"{tag}:refs/tags/v1", says="github-pat in (tag object):6", secret_oids=(tag,))
        raw = (f"tree {tree}\nparent {self.shared.base}\nauthor a <a@b> 1764230400 +0000\n"
               f"committer a <a@b> 1764230400 +0000\nx-build-token {token}\n\nclean message\n")
        header = self.shared.git("hash-object", "-t", "commit", "-w", "--stdin", "--literally",
                                 data=raw.encode()).strip()
        self.assert_refused(f"{header}:refs/heads/main", says="github-pat in (commit object):5",
                            secret_oids=(header,))

    def test_secret_in_a_file_name(self) -> None:
        """A token as a tree entry's name is scanned (the tree's names are text too)."""
        name = f"{github_token(8)}.txt"
        head = self.shared.commit_with({f"keys/{name}": b"nothing here\n"})
        self.assert_refused(f"{head}:refs/heads/main", says="github-pat in keys/ (tree):1", secret_oids=(head,))

    def test_secret_in_a_ref_name(self) -> None:
        """A token as a branch's name: the ref names are scanned too."""
        self.assert_refused(f"{self.shared.base}:refs/heads/{github_token(9)}", says="github-pat in (ref name):1")

    def test_several_refs_one_push_secret_only_via_the_second(self) -> None:
        """A clean branch and a second ref whose only new commit holds the token: all refused, nothing created."""
        clean = self.shared.commit_with({"a.py": b"a = 1\n"})
        secret = self.shared.commit_with({"b.py": f"t = '{github_token(10)}'\n".encode()}, parents=[clean])
        self.assert_refused(f"{clean}:refs/heads/one", f"{secret}:refs/tags/two", says="github-pat in b.py:1",
                            secret_oids=(secret,))
        # The same commit behind a clean child: reachable only through history, still refused.
        child = self.shared.commit_with({"a.py": b"a = 2\n"}, parents=[secret])
        self.assert_refused(f"{clean}:refs/heads/one", f"{child}:refs/heads/two", says="github-pat in b.py:1",
                            secret_oids=(secret,))

    def test_many_objects(self) -> None:
        """3,000 new files and the token in the last one: refused (every object is scanned)."""
        lines = [b"commit refs/heads/many", b"committer a <a@b> 1764230400 +0000", b"data 4", b"many",
                 f"from {self.shared.base}".encode()]
        for index in range(3000):
            body = f"value_{index} = {index}\n".encode() if index < 2999 else f"t = '{github_token(11)}'\n".encode()
            lines += [f"M 100644 inline files/f{index:04d}.py".encode(), f"data {len(body)}".encode(), body]
        self.shared.git("fast-import", "--quiet", "--force", data=b"\n".join(lines) + b"\n")
        head = self.shared.git("rev-parse", "refs/heads/many").strip()
        self.assert_refused(f"{head}:refs/heads/main", says="github-pat in files/f2999.py:1", secret_oids=(head,))

    def test_allowed_line_in_a_skipped_path_is_filed_for_the_operator(self) -> None:
        """A '# gitleaks:allow' token in node_modules/ or a binary file: filed as a proposal, push held."""
        token = github_token(12)
        head = self.shared.commit_with({
            "node_modules/fixture.js": f"const t = '{token}'; // gitleaks:allow\n".encode(),
            "data.bin": b"\x00\x00" + f"\nkey = '{token}'  # gitleaks:allow\n".encode(),
        })
        self.assert_refused(f"{head}:refs/heads/main", says="no decision within 0 s", secret_oids=(head,))
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        report = json.loads(proposal.payload)
        self.assertEqual(sorted((f["file"], f["line"], f["rule"]) for f in report["findings"]),
                         [("data.bin", 2, "github-pat"), ("node_modules/fixture.js", 1, "github-pat")])
        self.assertIn("const t = '********'; // gitleaks:allow", [f["line_text"] for f in report["findings"]])
        self.assertNotIn(token, proposal.payload + proposal.justification)


class NothingStoredTest(SharedRemoteTest):
    """Findings filed for the operator keep no token: not raw, not base64, in no file of the database's folder."""


    def file_for_review(self, files: dict[str, bytes]) -> tuple[Proposal, list[dict[str, object]]]:
        """Push ``files`` (lines marked gitleaks:allow): held for the operator; reject it; the proposal's findings."""
        head = self.shared.commit_with(files)
        before = self.shared.remote_refs()
        result = self.shared.push(f"{head}:refs/heads/main")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no decision within 0 s", result.stderr)
        self.assertEqual(self.shared.remote_refs(), before)
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
            decide(proposal.id, STATUS_REJECTED, "no tokens in fixtures", store=store)
        return proposal, json.loads(proposal.payload)["findings"]

    def assert_nowhere(self, *tokens: str) -> None:
        """Neither token nor any base64 form of it is in any file of the database folder or in `audit export`."""
        files = [path for path in self.shared.dbdir.rglob("*") if path.is_file()]
        self.assertIn(self.shared.db, files)
        export = subprocess.run([sys.executable, "-m", "bot_bottle", "audit", "export", "--db", str(self.shared.db)],
                                cwd=REPO, capture_output=True, timeout=60,
                                env={**os.environ, "HOME": str(self.shared.home)})
        self.assertEqual(export.returncode, 0, export.stderr)
        self.assertIn(b"no tokens in fixtures", export.stdout)
        for token in tokens:
            for form in b64_forms(token):
                for path in files:
                    self.assertNotIn(form, path.read_bytes(), f"{form!r} is stored in {path.name}")
                self.assertNotIn(form, export.stdout, f"{form!r} is in audit export")

    def test_form_feed_and_other_line_breaks_python_counts(self) -> None:
        """A form feed, U+2028, lone CR or U+001C in an earlier line does not shift the line that is shown."""
        first, second = github_token(20), github_token(21)
        breakers = ("\f", "\u2028", "\r", "\x1c", "\x85")
        _, findings = self.file_for_review({
            f"ff{ord(breaker)}.py": (f"intro{breaker}page = 1\nfirst = '{first}'  # gitleaks:allow\n"
                                    f"second = '{second}'  # gitleaks:allow\n").encode()
            for breaker in breakers})
        for breaker in breakers:
            with self.subTest(breaker=repr(breaker)):
                shown = {f["line"]: f["line_text"] for f in findings if f["file"] == f"ff{ord(breaker)}.py"}
                self.assertEqual(shown, {2: "first = '********'  # gitleaks:allow",
                                         3: "second = '********'  # gitleaks:allow"})
        self.assert_nowhere(first, second)

    def test_secret_found_by_decoding_base64(self) -> None:
        """A base64 text gitleaks decodes to a token: the line is left out, and no form of it is stored."""
        hidden, plain = github_token(22), github_token(23)
        blob = base64.b64encode(f"token = {hidden}".encode()).decode()
        alone = f"payload = '{blob}'  # gitleaks:allow\n"
        beside = f"a = '{plain}' b = '{base64.b64encode(hidden.encode()).decode()}'  # gitleaks:allow\n"
        _, findings = self.file_for_review({"enc.py": (alone + beside).encode()})
        self.assertTrue(findings)
        for finding in findings:
            self.assertEqual((finding["file"], finding["rule"]), ("enc.py", "github-pat"))
            self.assertIn("line not shown", finding["line_text"])
        self.assertEqual({f["line"] for f in findings}, {1, 2})
        self.assert_nowhere(hidden, plain)


class ScanMechanicsTest(TempDirTest):
    """How the hook scans, seen from a stand-in gitleaks: private copies, removed after; fail closed."""

    def setUp(self) -> None:
        super().setUp()
        require_tool(self, "git")
        self.repo = self.tmp / "repo"
        env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True, env=env)
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=self.repo, input=b"%PDF-1.7a\x00b\n",
                              capture_output=True, check=True, env=env).stdout.decode().strip()
        tree = subprocess.run(["git", "mktree"], cwd=self.repo, input=f"100644 blob {blob}\tx.pdf\n".encode(),
                              capture_output=True, check=True, env=env).stdout.decode().strip()
        self.commit = subprocess.run(["git", "commit-tree", tree, "-m", "m"], cwd=self.repo, capture_output=True,
                                     check=True, env={**env, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b",
                                                      "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"},
                                     ).stdout.decode().strip()
        self.log = self.tmp / "seen.json"
        (self.tmp / "db").mkdir()

    def fake_gitleaks(self, report: str | None = None, skip: str = "") -> str:
        """A gitleaks stand-in that records what it was given (folder mode, files, contents, arguments).

        It prints ``report``, or by default a finding for each ghp_ token it
        sees (the canary line of every copy but ``skip`` included), as gitleaks would.
        """
        script = self.tmp / "fake-gitleaks"
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, re, sys\n"
            "here = os.getcwd()\n"
            "files = {n: [oct(os.stat(n).st_mode & 0o777), open(n, 'rb').read().decode('latin-1')]\n"
            "         for n in sorted(os.listdir('.'))}\n"
            f"json.dump({{'dir': here, 'mode': oct(os.stat(here).st_mode & 0o777), 'files': files,\n"
            f"           'argv': sys.argv[1:]}}, open({str(self.log)!r}, 'w'))\n"
            "found = [{'RuleID': 'github-pat', 'File': n, 'Commit': '', 'StartLine': i + 1, 'EndLine': i + 1,\n"
            "          'Secret': m.group(0), 'Match': m.group(0)}\n"
            f"         for n, (_, text) in files.items() if n != {skip!r}\n"
            "         for i, line in enumerate(text.split('\\n')) for m in re.finditer('ghp_[A-Za-z0-9]{36}', line)]\n"
            f"print({report!r} if {report!r} is not None else json.dumps(found))\n")
        script.chmod(0o755)
        return str(script)

    def gate(self, gitleaks: str, *lines: str) -> tuple[int, str]:
        err = io.StringIO()
        code = pre_receive(list(lines), bottle="web-1", transport=find_transport(self.tmp / "db" / "x.db"),
                           repo=self.repo,
                           gitleaks=gitleaks, timeout=0, err=err)
        return code, err.getvalue()

    def test_copies_are_private_neutral_and_removed(self) -> None:
        """0700 folder, 0600 files named <n>.txt, a GIF line first, NUL as space; gone afterwards."""
        code, said = self.gate(self.fake_gitleaks(), f"{ZERO} {self.commit} refs/heads/main")
        self.assertEqual(code, 0, said)
        seen = json.loads(self.log.read_text())
        self.assertEqual(seen["mode"], "0o700")
        self.assertFalse(Path(seen["dir"]).exists(), "the copies are removed")
        # refs, commit, tree, blob, the blob again without its NUL bytes (UTF-16 text reads plainly so), and the
        # paths the commit adds, whole
        self.assertEqual(sorted(seen["files"]), ["0.txt", "1.txt", "2.txt", "3.txt", "4.txt", "5.txt"])
        self.assertEqual({mode for mode, _ in seen["files"].values()}, {"0o600"})
        contents = [text for _, text in seen["files"].values()]
        self.assertTrue(all(text.startswith("GIF89a\n") for text in contents))
        canaries = {text.rsplit("\n", 2)[-2] for text in contents}
        self.assertEqual(len(canaries), 1, "one canary for the scan, on the last line of every copy")
        canary = canaries.pop()
        self.assertRegex(canary, r"^git-gate canary ghp_[A-Za-z0-9]{36}$")
        self.assertIn(f"GIF89a\nrefs/heads/main\n{canary}\n", contents)
        self.assertIn(f"GIF89a\n%PDF-1.7a b\n{canary}\n", contents)
        self.assertIn(f"GIF89a\n%PDF-1.7ab\n{canary}\n", contents)
        self.assertIn(f"GIF89a\n100644 x.pdf\n{canary}\n", contents)
        self.assertIn("--max-decode-depth", seen["argv"])
        self.assertEqual(seen["argv"][0], "dir")

    def test_what_cannot_be_scanned_is_refused(self) -> None:
        """A finding in a file gitleaks was not given, a bad report, an object git cannot read: refused."""
        finding = {"RuleID": "r", "Commit": "", "StartLine": 2, "Secret": "s", "Match": "s"}
        for report, says in ((json.dumps([{**finding, "File": "99.txt"}]), "not a place it was given"),
                             (json.dumps([{**finding, "File": "1.txt", "StartLine": 1}]), "not a place it was given"),
                             (json.dumps([{**finding, "File": "../x"}]), "not a place it was given"),
                             ("{not json", "not JSON")):
            with self.subTest(report=report):
                code, said = self.gate(self.fake_gitleaks(report), f"{ZERO} {self.commit} refs/heads/main")
                self.assertEqual(code, 1)
                self.assertIn("push refused", said)
                self.assertIn(says, said)
                self.assertFalse(Path(json.loads(self.log.read_text())["dir"]).exists())
        code, said = self.gate(self.fake_gitleaks(), f"{ZERO} {'1' * 40} refs/heads/main")
        self.assertEqual(code, 1)
        # git would not write a ref at an object it does not have: refused before the scan (applied.py)
        self.assertIn("push refused: git would write only some of its refs", said)
        self.assertIn("nonexistent object", said)
        # A copy gitleaks skipped (its canary not reported): the push cannot be scanned completely.
        code, said = self.gate(self.fake_gitleaks(skip="3.txt"), f"{ZERO} {self.commit} refs/heads/main")
        self.assertEqual(code, 1)
        self.assertIn("gitleaks did not scan 1 of the 6 pushed objects to their end (first: x.pdf)", said)

    def test_copies_are_removed_when_the_hook_is_terminated(self) -> None:
        """SIGTERM while gitleaks runs: the hook refuses the push and removes the copies (gitleaks is stopped)."""
        slow = self.tmp / "slow-gitleaks"
        slow.write_text(f"#!/bin/sh\npwd > {self.log}\nexec sleep 60\n")
        slow.chmod(0o755)
        hook = subprocess.Popen(
            [sys.executable, "-m", "bot_bottle.git_gate", "pre-receive", "--bottle", "web-1", "--db",
             str(self.tmp / "x.db"), "--gitleaks", str(slow)], cwd=self.repo, stdin=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert hook.stdin is not None and hook.stderr is not None
        hook.stdin.write(f"{ZERO} {self.commit} refs/heads/main\n")
        hook.stdin.close()
        wait_until(lambda: self.log.exists() and self.log.read_text().strip(), 30, what="the hook's log line")
        folder = Path(self.log.read_text().strip())
        self.assertTrue(folder.is_dir())
        hook.terminate()
        self.assertEqual(hook.wait(timeout=30), 1)
        self.assertIn("push refused: stopped by signal", hook.stderr.read())
        hook.stderr.close()
        self.assertFalse(folder.exists(), "the copies are removed")

    def test_refs_outside_branches_and_tags(self) -> None:
        """Only refs/heads/ and refs/tags/ pass; the line names the ref and says why."""
        ok = [RefUpdate(ZERO, SHA_A, "refs/heads/main"), RefUpdate(SHA_A, ZERO, "refs/tags/v1")]
        self.assertIsNone(refused_ref(ok))
        for ref in ("refs/replace/" + SHA_B, "refs/notes/commits", "refs/pull/1/head", "refs/heads"):
            with self.subTest(ref=ref):
                reason = refused_ref([*ok, RefUpdate(ZERO, SHA_A, ref)])
                self.assertIsNotNone(reason)
                self.assertIn(f"{ref} is not a branch or a tag", str(reason))

    def test_masking_covers_encoded_forms(self) -> None:
        """The stored line masks the secret raw, base64 (any alignment), hex and percent-encoded."""
        for text in (f"a = {SECRET_BLOCKED}", base64.b64encode(f"x{SECRET_BLOCKED}".encode()).decode(),
                     base64.b64encode(f"xy:{SECRET_BLOCKED}".encode()).decode(), SECRET_BLOCKED.encode().hex(),
                     "".join(f"%{b:02X}" for b in SECRET_BLOCKED.encode())):
            with self.subTest(text=text):
                masked = redact_line(text, [SECRET_BLOCKED])
                self.assertIn("********", masked)
                self.assertFalse(Masker([SECRET_BLOCKED]).reveals(masked), masked)
        self.assertEqual(redact_line("k = \x1b[2J x", []), "k = \\x1b[2J x")
        self.assertEqual(render_tree(bytes.fromhex("3130303634342061") + b"\0" + b"\1" * 20, 20), b"100644 a\n")
        with self.assertRaises(GitObjectsError):
            render_tree(b"100644 a\0short", 20)
