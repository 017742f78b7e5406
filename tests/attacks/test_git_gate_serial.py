"""Two pushes gated side by side, each harmless alone and a token together (hostile review 49).

The gate judges a push against the refs as they are plus its own updates.
'ghp_$Format:%D$' at a commit branch 'aaa' names: one push names a branch
after the rest of a token at that commit ('ghp_aaa, <rest>': harmless), and
another, at the same moment, deletes 'aaa' (nothing of the token: harmless).
Each gate let its push through, and every tarball of the branch wrote
'ghp_<rest>'. Now one push is gated at a time, until git has written its refs.
"""

from __future__ import annotations

import subprocess

from bot_bottle.decisions import decide
from bot_bottle.records import STATUS_APPROVED
from tests.helpers.git_remote import SECRET_ALLOWED, GateAttackCase, GateCase, github_token
from tests.helpers.support import wait_until


class ConcurrentPushAttackTest(GateAttackCase):
    """Pushes started together, each judged as if alone."""

    folder_prefix = "bb-serial-"

    def test_two_pushes_together_do_not_both_pass(self) -> None:
        """A branch named after the rest of the token, and the deletion of the other branch at the commit, pushed
        at the same moment (three times): never both accepted, and no tarball of the commit writes the token."""
        for attempt in range(3):
            with self.subTest(attempt=attempt):
                token = github_token(4960 + attempt)
                head = self.shared.commit_with({".gitattributes": b"v.txt export-subst\n",
                                                "v.txt": b"t = ghp_$Format:%D$\n"}, message=f"together {attempt}")
                self.assert_accepted(f"{head}:refs/heads/both{attempt}")
                pushes = [subprocess.Popen(["git", "push", "--porcelain", str(self.shared.remote), spec],
                                           cwd=self.shared.work, env=self.shared.env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
                          for spec in (f"{head}:refs/heads/{token[4:]}", f":refs/heads/both{attempt}")]
                codes = [push.wait(timeout=180) for push in pushes]
                for push in pushes:
                    push.communicate()
                self.assertIn(1, codes, "both pushes went through")
                tar = subprocess.run(["git", "archive", "--format=tar", head], cwd=self.shared.remote,
                                     env=self.shared.env, capture_output=True, check=True).stdout
                self.assertNotIn(token.encode(), tar)


class WaitingPushTest(GateCase):
    """A push waiting for the operator lets other pushes through, and is judged again if they moved the refs."""

    def test_a_push_waiting_for_the_operator_stalls_no_other_and_is_refused_if_the_refs_moved(self) -> None:
        held = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        waiting = self.start_push(f"{held}:refs/heads/held")
        proposal = self.wait_for_proposal()
        self.git("checkout", "-q", "-b", "other", "HEAD~1")
        self.commit("notes.txt", "clean\n")
        other = self.push("HEAD:refs/heads/other")  # while the first waits: not stalled by it
        self.assertEqual(other.returncode, 0, other.stderr)
        decide(proposal, STATUS_APPROVED, "a fixture", store=self.store)
        _, err = waiting.communicate(timeout=120)
        self.assertNotEqual(waiting.returncode, 0, err)
        self.assertIn("another push moved this repository's refs meanwhile", err)
        again = self.push(f"{held}:refs/heads/held")  # the approval's grant covers it
        self.assertEqual(again.returncode, 0, again.stderr)
        wait_until(lambda: self.remote_head("held") == held, 10, what="the held branch")
