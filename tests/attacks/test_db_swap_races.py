"""Attack: swap the database's ``-wal`` while a host process, past its check of the files, waits for the lock.

``db.Database`` refuses to read or write once a file at the database's path
is not the one its connection opened. A sidecar on the mount cannot slip a
swap past the check by timing alone, but it can widen the moment at will:
it holds the write lock (``BEGIN IMMEDIATE`` on its own connection), so the
operator's ``proposals approve`` checks the files, then waits; the sidecar
renames a copy over the ``-wal`` and lets go. The decision was then
committed into the ``-wal`` no other process opens (and the index every
process shares described frames the file at the path does not hold: the
database read as a disk I/O error), while the command said nothing was
recorded. The files must be checked again once the lock is held, and after
the commit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bot_bottle.paths import host_db_path
from bot_bottle.queue_reads import shown_digest
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import REPO, TempDirTest, wait_until

# The sidecar: holds the write lock until told, renames a copy over the -wal, lets go, and stays connected.
_HOLD_AND_SWAP = """
import os, shutil, sqlite3, sys
path = sys.argv[1]
conn = sqlite3.connect(path, isolation_level=None)
conn.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
sys.stdin.readline()
shutil.copyfile(path + '-wal', path + '.copy')
os.rename(path + '.copy', path + '-wal')
conn.execute('ROLLBACK')
print('swapped', flush=True)
sys.stdin.readline()
"""

# What any process opening the database at its path now reads of the proposal.
_READ_FRESH = """
import sys
from bot_bottle.queue_store import QueueStore
with QueueStore(None) as store:
    response = store.response(sys.argv[1])
    print('pending' if response is None else response.status)
"""


def _waiting_on_a_watch(pid: int) -> bool:
    """Whether process ``pid`` has an inotify watch open: the decider waits on one for the lock (Linux)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify" for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


class WalSwappedWhileTheDeciderWaitsTest(TempDirTest):
    def test_the_decision_is_refused_and_nothing_is_recorded_where_others_read(self) -> None:
        if not os.path.isdir(f"/proc/{os.getpid()}/fd"):
            self.skipTest("needs /proc to see that the decider waits for the lock")
        with QueueStore(None) as store:
            proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, '{"host": "a.example"}', "the agent's ask")
        path = host_db_path()
        env = {**os.environ, "HOME": str(self.home), "PYTHONDONTWRITEBYTECODE": "1"}
        sidecar = subprocess.Popen([sys.executable, "-c", _HOLD_AND_SWAP, str(path)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True)
        self.addCleanup(sidecar.wait, 30)
        self.addCleanup(sidecar.kill)
        assert sidecar.stdin is not None and sidecar.stdout is not None
        self.assertEqual(sidecar.stdout.readline().strip(), "locked")
        decider = subprocess.Popen(
            [sys.executable, "-m", "bot_bottle", "proposals", "reject", proposal.short_id, "--reason", "no",
             "--digest", shown_digest(proposal)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.addCleanup(decider.kill)
        wait_until(lambda: _waiting_on_a_watch(decider.pid) or decider.poll() is not None, timeout=60)
        self.assertIsNone(decider.poll(), "the decider should be waiting for the lock the sidecar holds")
        time.sleep(0.05)
        sidecar.stdin.write("\n")
        sidecar.stdin.flush()
        self.assertEqual(sidecar.stdout.readline().strip(), "swapped")
        _out, err = decider.communicate(timeout=60)
        self.assertNotEqual(decider.returncode, 0, "the decision was reported as recorded")
        self.assertIn(f"{path}-wal was replaced by another file", err)
        self.assertNotIn("Traceback", err)
        fresh = subprocess.run([sys.executable, "-c", _READ_FRESH, proposal.id], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=60)
        self.assertEqual((fresh.returncode, fresh.stdout.strip()), (0, "pending"), fresh.stderr[-600:])
        sidecar.stdin.write("\n")
        sidecar.stdin.flush()
