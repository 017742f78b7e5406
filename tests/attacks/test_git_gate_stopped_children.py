"""A streamed git call stopped at the push's deadline leaves no child of git's running, with real git.

``git archive`` fills in an export-subst file's ``$Format:%(describe)$`` by
running ``git describe`` as a child of its own, which walks the history to
the nearest tag. ``StopAtDeadline`` stopped ``git archive`` alone: its
``git describe``, a child git never asked to clean up, went on after the push
was refused, orphaned (its parent, init), for as long as the history is long
(seconds over two million commits, each push leaving one more): past
``--max-seconds`` plus the grace, CPU the gate no longer accounts for.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from bot_bottle.errors import ScanLimitExceeded
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits
from bot_bottle.sidecar.git_gate.substitutions import _archive
from tests.helpers.git_remote import GateCase
from tests.helpers.support import TempDirTest

COMMITS = 400_000  # a describe of about a second here: well past the deadline below


def _describes(commit: str) -> list[int]:
    """The pids of the ``git describe`` of ``commit`` running now (zombies are done running)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                words = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if b"describe" in words and commit.encode() in words and state != b"Z":
            found.append(int(entry))
    return found


class StoppedChildrenTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.repo = self.tmp / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", str(self.repo)], check=True)
        lines = ["blob\nmark :1\ndata 19\nv.txt export-subst\n", "blob\nmark :2\ndata 21\n$Format:%(describe)$\n"]
        for n in range(COMMITS):
            lines.append(f"commit refs/heads/main\nmark :{n + 10}\ncommitter a <a@b> {1600000000 + n} +0000\n"
                         f"data 1\nx\n")
            lines.append("M 100644 :1 .gitattributes\nM 100644 :2 v.txt\n\n" if n == 0 else f"from :{n + 9}\n\n")
        lines.append("tag t0\nfrom :10\ntagger a <a@b> 1600000000 +0000\ndata 1\nt\n")
        subprocess.run(["git", "-C", str(self.repo), "fast-import", "--quiet"], input="".join(lines).encode(),
                       check=True)
        self.head = subprocess.run(["git", "-C", str(self.repo), "rev-parse", "main"], capture_output=True,
                                   text=True, check=True).stdout.strip()

    def test_the_describe_of_an_archive_stopped_at_the_deadline_is_stopped_too(self) -> None:
        scratch = {**os.environ, "GIT_DIR": str(self.repo)}
        started = time.monotonic()
        whole = _archive(scratch, self.head, ["v.txt"], 1 << 20, Deadline(60))[  # in time, it is filled in
            "v.txt"]
        self.assertTrue(whole.startswith(b"t0-"), whole)
        took = time.monotonic() - started
        self.assertGreater(took, 0.6, "the history is too short for describe to outlast the deadline here")
        with self.assertRaises(ScanLimitExceeded):
            _archive(scratch, self.head, ["v.txt"], 1 << 20, Deadline(took / 3))
        time.sleep(0.2)  # a child stopped is gone by now; one left running is not
        left = _describes(self.head)
        for pid in left:  # not left running past this test either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.assertEqual(left, [], "git describe still runs after the push was stopped at its deadline")


class StoppedChildrenPushTest(GateCase):
    def test_a_push_stopped_at_max_seconds_leaves_no_describe_running(self) -> None:
        """A real push: the remote holds a long history after a tag; the agent pushes, from a shallow clone, a
        commit whose v.txt is export-subst with $Format:%(describe)$, under --max-seconds 0.4. Refused, and
        nothing of git's left running."""
        root = self.remote_head()
        lines = []
        for n in range(COMMITS):
            lines.append(f"commit refs/heads/main\nmark :{n + 1}\ncommitter a <a@b> {1600000000 + n} +0000\n"
                         "data 1\nx\n")
            lines.append(f"from {root}\n\n" if n == 0 else f"from :{n}\n\n")
        lines.append(f"tag t0\nfrom {root}\ntagger a <a@b> 1600000000 +0000\ndata 1\nt\n")
        subprocess.run(["git", "-C", str(self.remote), "fast-import", "--quiet", "--force"],
                       input="".join(lines).encode(), check=True)  # the remote's own history: no hook runs
        self.work = self.tmp / "shallow"
        self.git("clone", "-q", "--depth", "1", "--branch", "main", f"file://{self.remote}", str(self.work),
                 cwd=self.tmp)
        for key, value in (("user.email", "agent@bottle"), ("user.name", "agent"), ("commit.gpgsign", "false")):
            self.git("config", key, value)
        self.commit(".gitattributes", "v.txt export-subst\n")
        head = self.commit("v.txt", "$Format:%(describe)$\n")
        self.hook(timeout=30, limits=Limits(max_seconds=0.4))
        result = self.push()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("did not finish within 0.4 s", result.stderr)
        time.sleep(0.3)
        left = _describes(head)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self.assertEqual(left, [], "git describe still runs after the push was refused at --max-seconds")


if __name__ == "__main__":
    import unittest

    unittest.main()
