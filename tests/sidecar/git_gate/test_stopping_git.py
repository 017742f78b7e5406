"""A git call that runs out of time is stopped so that git removes its lock files, with real git.

``check_applies`` prepares git's own ref transaction under the push's
deadline. Killed with ``SIGKILL`` there, ``update-ref`` left
``refs/heads/NAME.lock`` behind, and every later push of that ref was
refused ("remove the file manually to continue"): the CI run of stop 41
failed on it (``test_git_gate_bounds.test_time``: a push refused at
``--max-seconds 0.001``, then the same push refused for the lock).
"""

from __future__ import annotations

import os
import subprocess
import time
from unittest import mock

from bot_bottle.errors import ScanLimitExceeded
from bot_bottle.sidecar.git_gate import objects
from bot_bottle.sidecar.git_gate.attributes import attributed_files
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits
from bot_bottle.sidecar.git_gate.objects import git_command, read_objects, run_git
from bot_bottle.sidecar.git_gate.substitutions import _archive
from tests.helpers.support import TempDirTest

ZERO = "0" * 40


class StoppingGitTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.repo = self.tmp / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(self.repo)], check=True)
        env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
               "GIT_COMMITTER_EMAIL": "a@b"}
        tree = self.git("mktree", data=b"", env=env)
        self.commit = self.git("commit-tree", tree, "-m", "one", env=env)

    def git(self, *args: str, data: bytes = b"", env: dict[str, str] | None = None) -> str:
        return subprocess.run(["git", "-C", str(self.repo), *args], input=data, capture_output=True, check=True,
                              env=env).stdout.decode().strip()

    def held_transaction(self, ref: str, seconds: float) -> None:
        """``update-ref --stdin`` prepared on ``ref`` and left waiting for more input until ``seconds`` run out."""
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, write_end)
        os.write(write_end, f"start\nupdate {ref} {self.commit} {ZERO}\nprepare\n".encode())
        with os.fdopen(read_end, "rb") as stdin, self.assertRaises(ScanLimitExceeded):
            run_git(git_command(self.repo, "update-ref", "--stdin"), Deadline(seconds), stdin=stdin)

    def test_a_prepared_ref_transaction_leaves_no_lock(self) -> None:
        self.held_transaction("refs/heads/time", 0.5)
        self.assertEqual(sorted(p.name for p in (self.repo / "refs" / "heads").iterdir()), [])
        # The ref can be written at once, as the next push would.
        self.git("update-ref", "refs/heads/time", self.commit, ZERO)
        self.assertEqual(self.git("rev-parse", "refs/heads/time"), self.commit)

    def test_one_that_ignores_the_request_is_killed_after_the_grace(self) -> None:
        started = time.monotonic()
        with mock.patch.object(objects, "_STOP_GRACE_SECONDS", 0.5), self.assertRaises(ScanLimitExceeded):
            run_git(["sh", "-c", "trap '' TERM; exec sleep 30"], Deadline(0.2))
        self.assertLess(time.monotonic() - started, 20)  # killed, not waited out

    def test_a_child_that_holds_its_pipes_does_not_hold_the_gate(self) -> None:
        """Killed after the grace, it is waited for, not its output: a child of its own keeps the pipes open."""
        started = time.monotonic()
        with mock.patch.object(objects, "_STOP_GRACE_SECONDS", 0.5), self.assertRaises(ScanLimitExceeded):
            run_git(["sh", "-c", "trap '' TERM; sleep 20 & exec sleep 20"], Deadline(0.2))
        self.assertLess(time.monotonic() - started, 15)  # killed, not waited out

    def stalling(self, subcommand: str) -> str:
        """A PATH whose ``git`` is the real one, except that ``git SUBCOMMAND`` writes nothing for 60 s: a git
        computing without output (``git archive`` filling in ``$Format:%(describe)$`` over a long history)."""
        folder = self.tmp / f"stalling-{subcommand}"
        folder.mkdir()
        script = folder / "git"
        script.write_text(f'#!/bin/sh\nfor word in "$@"; do [ "$word" = {subcommand} ] && exec sleep 60; done\n'
                          'exec /usr/bin/git "$@"\n')
        script.chmod(0o755)
        return f"{folder}:{os.environ.get('PATH', '/usr/bin:/bin')}"

    def test_a_streamed_read_is_stopped_at_the_deadline(self) -> None:
        """BROKE before the fix: git archive's and cat-file's output was read with the deadline checked between
        chunks, so a git that wrote nothing held the push for as long as it ran (here 60 s each)."""
        archive_path, cat_file_path = self.stalling("archive"), self.stalling("cat-file")
        calls = {
            "archive": (os.environ.get("PATH", ""), lambda: _archive(
                {**os.environ, "PATH": archive_path, "GIT_DIR": str(self.repo)}, self.commit, ["v.txt"], 1 << 20,
                Deadline(0.5))),
            "cat-file": (cat_file_path, lambda: list(read_objects(self.repo, [self.commit], Limits(), Deadline(0.5)))),
            "attributes": (cat_file_path,
                           lambda: list(attributed_files(self.repo, [self.commit], Limits(), Deadline(0.5)))),
        }
        for name, (path, call) in calls.items():
            with self.subTest(name):
                started = time.monotonic()
                with mock.patch.dict(os.environ, {"PATH": path}), \
                        self.assertRaisesRegex(ScanLimitExceeded, "did not finish within 0.5 s"):
                    call()
                self.assertLess(time.monotonic() - started, 20)  # stopped at its deadline, not waited out

    def test_within_its_time_the_output_and_status_are_returned(self) -> None:
        result = run_git(git_command(self.repo, "rev-parse", self.commit), Deadline(30))
        self.assertEqual((result.returncode, result.stdout.decode().strip()), (0, self.commit))
        result = run_git(git_command(self.repo, "hash-object", "--stdin"), Deadline(30), data=b"hi\n")
        self.assertEqual(result.stdout.decode().strip(), "45b983be36b73c0788dc9cbcb76cbb80fc7bb057")
        failed = run_git(git_command(self.repo, "rev-parse", "--verify", "nothing"), Deadline(30))
        self.assertNotEqual(failed.returncode, 0)
        self.assertTrue(failed.stderr)


if __name__ == "__main__":
    import unittest

    unittest.main()
