"""git-gate against an agent that wants a token out: each way found in review, done with real git and gitleaks.

Every test here is an attack that got past the gate (or misled the operator)
before the fix next to it; they share one gated remote, since a refused push
changes nothing on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
import unittest
from pathlib import Path

from bot_bottle.queue_store import QueueStore
from tests.support import require_tool
from tests.test_git_gate import SharedRemote, github_token

# An AWS access key id (gitleaks' aws-access-token rule): 20 characters, so it
# fits a SHA-1 object id exactly. Built at run time so this file carries none.
AWS_KEY_ID = "AKIA" + "Z7QWERTYUIOP6XYZ"


class GateAttackTest(unittest.TestCase):
    """Pushes that smuggle a token in a place git shows but the gate did not read as git shows it.

    Each test pushes to a branch of its own, so one attack that got through
    does not turn the next test's push into a non-fast-forward.
    """

    shared: SharedRemote

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._tmp = tempfile.TemporaryDirectory(prefix="bb-attack-")
        cls.addClassCleanup(cls._tmp.cleanup)
        probe = unittest.TestCase()
        gitleaks = require_tool(probe, "gitleaks")
        require_tool(probe, "git")
        cls.shared = SharedRemote(Path(cls._tmp.name), gitleaks, timeout=0)

    def assert_refused(self, refspec: str, says: str) -> str:
        """The push fails with a git-gate line containing ``says``; the remote's refs stay as they were."""
        before = self.shared.remote_refs()
        result = self.shared.push(refspec)
        gate = [line for line in result.stderr.splitlines() if "git-gate:" in line]
        self.assertNotEqual(result.returncode, 0, result.stderr)
        self.assertTrue(gate, result.stderr)
        self.assertIn("push refused", gate[-1])
        self.assertIn(says, gate[-1])
        self.assertEqual(self.shared.remote_refs(), before)
        return gate[-1]

    def filed_findings(self, head: str, branch: str) -> list[dict[str, object]]:
        """Push ``head`` (its tokens marked gitleaks:allow): held for the operator; the proposal's findings."""
        self.assert_refused(f"{head}:refs/heads/{branch}", says="no decision within 0 s")
        with QueueStore(self.shared.db) as store:
            (proposal,) = [p for p in store.pending("web-1") if head in p.payload]
        findings: list[dict[str, object]] = json.loads(proposal.payload)["findings"]
        return findings

    def test_key_id_as_a_submodule_commit_id(self) -> None:
        """A gitlink's id is never checked: 20 bytes an AWS key id fits, shown as hex by ls-tree. Refused."""
        key_hex = binascii.hexlify(AWS_KEY_ID.encode()).decode()
        entries = (f"160000 commit {key_hex}\tvendor-lib".encode() + b"\0"
                   + f"100644 blob {self.shared.clean_blob}\tREADME.md".encode() + b"\0")
        tree = self.shared.git("mktree", "-z", "--missing", data=entries).strip()
        head = self.shared.commit_tree(tree, [self.shared.base], "add a submodule")
        self.assert_refused(f"{head}:refs/heads/gitlink", says="aws-access-token in (tree):2")
        # A mode git reads as a gitlink too, though not the canonical one: the id is scanned all the same.
        raw = (b"100644 README.md\0" + bytes.fromhex(self.shared.clean_blob)
               + b"0160000 vendor\0" + AWS_KEY_ID.encode())
        odd = self.shared.git("hash-object", "-t", "tree", "-w", "--stdin", "--literally", data=raw).strip()
        head = self.shared.commit_tree(odd, [self.shared.base], "add a submodule")
        self.assert_refused(f"{head}:refs/heads/gitlink", says="aws-access-token in (tree):2")

    def test_message_in_an_encoding_git_log_decodes(self) -> None:
        """A commit declaring ``encoding UTF-7``: the raw message holds no token, git log shows one. Refused."""
        token = github_token(300)
        utf7 = b"+" + base64.b64encode(token.encode("utf-16-be")).rstrip(b"=") + b"-"
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob)])
        for where, raw in (
            ("message", f"tree {tree}\nparent {self.shared.base}\nauthor a <a@b> 1764230400 -0100\n"
                        "committer a <a@b> 1764230400 -0100\nencoding UTF-7\n\ndeploy with ".encode() + utf7 + b"\n"),
            ("author", f"tree {tree}\nparent {self.shared.base}\nauthor ".encode() + utf7
                       + b" <a@b> 1764230400 -0100\ncommitter a <a@b> 1764230400 -0100\nencoding utf-7\n\nclean\n"),
        ):
            with self.subTest(where=where):
                self.assertNotIn(token.encode(), raw)
                oid = self.shared.git("hash-object", "-t", "commit", "-w", "--stdin", "--literally", data=raw).strip()
                self.assertIn(token, self.shared.git("log", "-1", oid), "git log shows the token")
                self.assert_refused(f"{oid}:refs/heads/encoded",
                                    says="github-pat in (commit object, as git log shows it")

    def test_file_name_with_a_newline_is_shown_whole(self) -> None:
        """'fixture.txt<newline>PROD_CREDENTIALS.env' is not reported as 'fixture.txt' (git rev-list cuts it)."""
        token = github_token(301)
        blob = self.shared.blob(f"t = '{token}'  # gitleaks:allow\n".encode())
        folder = self.shared.tree([("100644", "fixture.txt\nPROD_CREDENTIALS.env", blob)])
        tree = self.shared.tree([("100644", "README.md", self.shared.clean_blob), ("040000", "conf\nprod", folder)])
        head = self.shared.commit_tree(tree, [self.shared.base], "fixtures")
        (finding,) = self.filed_findings(head, "newline")
        self.assertEqual(finding["file"], "conf\\nprod/fixture.txt\\nPROD_CREDENTIALS.env")


if __name__ == "__main__":
    unittest.main()
