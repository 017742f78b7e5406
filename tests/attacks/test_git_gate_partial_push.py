"""A push the gate judged whole, which git wrote only in part (hostile review 50).

The gate judges a push by the refs as they will be with all its updates in.
git writes a push's updates one by one (unless the pusher asks for --atomic),
and one failing after pre-receive leaves the others in. At a commit holding
'ghp_$Format:%D$', a push creating branch 'aaa' and a branch named after the
rest of a token was judged 'ghp_aaa, <rest>' (harmless); the pusher made the
'aaa' update fail (a folder 'aaa/' there, an annotated tag on a branch, an old
value git does not hold), only '<rest>' was written, and every tarball of the
commit wrote the token whole. Now a push git would not write whole is refused.
"""

from __future__ import annotations

import subprocess

from tests.helpers.git_remote import GateAttackCase, github_token


def _pkt(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


class PartialPushAttackTest(GateAttackCase):
    """Pushes whose one update git refuses after the gate accepted them all."""

    folder_prefix = "bb-partial-"

    def token_commit(self, n: int) -> tuple[str, str]:
        token = github_token(n)
        head = self.shared.commit_with({".gitattributes": b"v.txt export-subst\n",
                                        "v.txt": b"t = ghp_$Format:%D$\n"}, message=f"partial {n}")
        return token, head

    def assert_no_token_served(self, token: str, head: str, rest_pushed: bool) -> None:
        refs = self.shared.remote_refs()
        self.assertEqual(token[4:] in refs, rest_pushed, refs)
        tar = subprocess.run(["git", "archive", "--format=tar", head], cwd=self.shared.remote,
                             env=self.shared.env, capture_output=True).stdout
        self.assertNotIn(token.encode(), tar)

    def test_a_branch_over_an_existing_folder(self) -> None:
        """'aaa' cannot be created beside 'aaa/x': the push is refused, '<rest>' is not written alone."""
        token, head = self.token_commit(5010)
        self.assert_accepted(f"{self.shared.base}:refs/heads/aaa/x")
        line = self.assert_refused(f"{head}:refs/heads/aaa", f"{head}:refs/heads/{token[4:]}",
                                   says="git would write only some of its refs")
        self.assertIn("refs/heads/aaa/x", line)
        self.assert_no_token_served(token, head, rest_pushed=False)

    def test_an_annotated_tag_on_a_branch(self) -> None:
        """git writes no tag object on a branch (its commit is decorated 'bbb' in the gate's judgement)."""
        token, head = self.token_commit(5011)
        self.shared.git("tag", "-f", "-a", "-m", "tag", "annotated-5011", head)
        tag = self.shared.git("rev-parse", "refs/tags/annotated-5011").strip()
        self.assert_refused(f"{tag}:refs/heads/bbb", f"{head}:refs/heads/{token[4:]}",
                            says="trying to write non-commit object")
        self.assert_no_token_served(token, head, rest_pushed=False)

    def test_a_file_and_a_folder_in_one_push(self) -> None:
        """'ccc' made and 'ccc/x' deleted in one push, in either order: refused (which of them git writes is
        its order's to decide), named so the pusher can push them one at a time."""
        for n, first, second in ((5012, "ccc", ":refs/heads/ccc/x"), (5014, ":refs/heads/eee/x", "eee")):
            with self.subTest(order=n):
                token, head = self.token_commit(n)
                folder = (first if first.startswith(":") else second)[1:]
                self.assert_accepted(f"{self.shared.base}:{folder}")
                specs = [spec if spec.startswith(":") else f"{head}:refs/heads/{spec}" for spec in (first, second)]
                self.assert_refused(*specs, f"{head}:refs/heads/{token[4:]}",
                                    says="are a file and a folder of each other: push them one at a time")
                self.assert_no_token_served(token, head, rest_pushed=False)

    def test_a_stale_old_value(self) -> None:
        """A raw push moving 'ddd' from an old value it does not hold (a race's stale advertisement, or a
        pusher's lie) beside '<rest>': refused whole."""
        token, head = self.token_commit(5013)
        self.assert_accepted(f"{self.shared.base}:refs/heads/ddd")
        wrong = "1" * 40
        commands = [(wrong, head, "refs/heads/ddd"), ("0" * 40, head, f"refs/heads/{token[4:]}")]
        result = self.raw_push(commands, head)
        self.assertIn(b"git would write only some of its refs", result.stderr)
        self.assertIn(b"ng refs/heads/", result.stdout)
        self.assert_no_token_served(token, head, rest_pushed=False)
        self.assertIn(f"{self.shared.base} refs/heads/ddd", self.shared.remote_refs())

    def raw_push(self, commands: list[tuple[str, str, str]], tip: str) -> subprocess.CompletedProcess[bytes]:
        """Speak receive-pack's protocol by hand: the old values are the pusher's to write."""
        pack = subprocess.run(["git", "pack-objects", "--stdout", "--revs"], cwd=self.shared.work,
                              env=self.shared.env, input=f"{tip}\n".encode(), capture_output=True,
                              check=True).stdout
        process = subprocess.Popen(["git", "receive-pack", str(self.shared.remote)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.shared.env)
        assert process.stdin is not None and process.stdout is not None
        while True:  # the advertisement, to its flush
            size = int(process.stdout.read(4), 16)
            if size == 0:
                break
            process.stdout.read(size - 4)
        request = b"".join(_pkt(f"{old} {new} {ref}".encode() + (b"\0report-status" if i == 0 else b"") + b"\n")
                           for i, (old, new, ref) in enumerate(commands))
        out, err = process.communicate(request + b"0000" + pack, timeout=180)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)
