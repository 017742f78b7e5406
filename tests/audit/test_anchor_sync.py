"""The anchor's syncs: at most one per ``ANCHOR_SYNC_INTERVAL_SEC``, never at the cost of its last whole record.

A power cut cannot be made in a test; what it can do to the file can be
worked out from the writes and syncs the anchor makes. Every write and sync
on the anchor file is traced, and after each write the test asks what a
power cut at that moment could leave: a slot written since the last sync may
be old, new or torn; a slot not written since is what it was at that sync.
At least one such slot must hold a whole record: the newest synced, where
every sync was made by a process that wrote (the writer sees those), and
at least the writer's own last synced record where another process synced
without writing since (its exit's sync: unseen, it costs only lag).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from bot_bottle.audit import anchor as anchor_module
from bot_bottle.audit.anchor import (
    ANCHOR_SLOT,
    ANCHOR_SYNC_INTERVAL_SEC,
    Restart,
    advance_anchor,
    anchor_path,
    read_anchor,
    restart_anchor,
    retire_anchor,
)
from tests.helpers.support import REPO, TempDirTest

KEY = "k" * 16


class Trace:
    """Writes and syncs made on one file, and what a power cut after each write could leave of it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.events: list[tuple[str, int]] = []  # ("write", slot) or ("sync", 0)
        self.dirty: set[int] = set()  # slots written since the last sync
        self.synced_newest = 0  # the newest seq on the disk at the last sync

    def _ours(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}") == self.path
        except OSError:
            return False

    @contextmanager
    def recording(self, check: Callable[[], None]) -> Iterator[None]:
        """Trace the anchor's ``os.pwrite`` and ``os.fdatasync``; ``check`` runs after each write."""
        real_pwrite, real_sync = os.pwrite, os.fdatasync

        def pwrite(fd: int, data: Any, offset: int) -> int:
            written = real_pwrite(fd, data, offset)
            if self._ours(fd):
                self.events.append(("write", offset // ANCHOR_SLOT))
                self.dirty.add(offset // ANCHOR_SLOT)
                check()
            return written

        def fdatasync(fd: int) -> None:
            real_sync(fd)
            if self._ours(fd):
                self.events.append(("sync", 0))
                self.dirty.clear()
                self.synced_newest = max(self.seqs().values(), default=0)

        with mock.patch.object(anchor_module.os, "pwrite", pwrite), \
                mock.patch.object(anchor_module.os, "fdatasync", fdatasync):
            yield

    def seqs(self) -> dict[int, int]:
        """Slot -> seq of its whole record, for the slots that hold one now."""
        content = Path(self.path).read_bytes()
        found = {}
        for slot in (0, 1):
            record = anchor_module._parse_slot(content, slot)
            if record is not None:
                found[slot] = record.seq
        return found

    def after_a_power_cut(self) -> int:
        """The newest seq a power cut now is sure to leave (0: it could leave no whole record)."""
        return max((seq for slot, seq in self.seqs().items() if slot not in self.dirty), default=0)


class Clock:
    """A stand-in for ``time.monotonic`` in the anchor module, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class AnchorSyncTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.db = self.tmp / "queue.db"
        self.path = anchor_path(self.db)
        self.clock = Clock()
        patcher = mock.patch.object(anchor_module.time, "monotonic", self.clock)
        patcher.start()
        self.addCleanup(patcher.stop)
        # Each test starts as a process that has synced nothing, and leaves nothing for this one's exit.
        for state in (anchor_module._SYNCED, anchor_module._UNSYNCED):
            self.addCleanup(state.clear)
            state.clear()

    def advance(self, seq: int) -> None:
        advance_anchor(self.db, seq, f"{seq:064x}", KEY)

    def test_a_power_cut_at_any_moment_leaves_the_newest_synced_record(self) -> None:
        """Two deciding processes, decisions at random gaps around the interval: after every write, a whole record."""
        self.advance(1)  # the first record: a whole file renamed into place, synced
        trace = Trace(self.path)
        trace.synced_newest = 1
        views: list[dict[Path, Any]] = [{}, {}]  # what each of two processes knows it synced
        rng = random.Random(4)

        def check() -> None:
            self.assertEqual(trace.after_a_power_cut(), trace.synced_newest,
                             f"a power cut after {trace.events} could lose the newest synced record")

        with trace.recording(check):
            for seq in range(2, 400):
                process = rng.randrange(2)
                with mock.patch.object(anchor_module, "_SYNCED", views[process]):
                    self.advance(seq)
                self.clock.now += rng.choice((0.0, 0.001, 0.01, ANCHOR_SYNC_INTERVAL_SEC * 1.5))
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(anchor.seq, 399, "the newest record is read")
        writes = sum(1 for kind, _ in trace.events if kind == "write")
        syncs = sum(1 for kind, _ in trace.events if kind == "sync")
        self.assertEqual(writes, 398)
        self.assertLess(syncs, writes, "decisions in quick succession share a sync")
        self.assertGreater(syncs, 20, "a decision past the interval syncs, and so does a change of process")

    def test_quick_decisions_sync_once_an_interval(self) -> None:
        self.advance(1)
        trace = Trace(self.path)
        with trace.recording(lambda: None):
            for seq in range(2, 22):
                self.advance(seq)
            # Once, before the first write: this process had not synced the file, so it cannot know its disk.
            self.assertEqual(trace.events[:2], [("sync", 0), ("write", 1)])
            self.assertEqual([kind for kind, _ in trace.events].count("sync"), 1)
            self.assertEqual({slot for kind, slot in trace.events if kind == "write"}, {1},
                             "never over slot 0, the synced record")
            self.clock.now += ANCHOR_SYNC_INTERVAL_SEC * 1.01
            self.advance(22)
            self.assertEqual(trace.events[-2:], [("write", 1), ("sync", 0)])
            self.advance(23)
            self.assertEqual(trace.events[-1], ("write", 0), "now slot 1 holds the synced record")
        self.assertEqual(trace.seqs(), {0: 23, 1: 22})

    def test_a_file_changed_by_another_process_is_synced_before_it_is_written(self) -> None:
        """Another process may have synced what it wrote: the file not as this one left it, it syncs first."""
        self.advance(1)
        self.advance(2)  # not known to this process: synced first; then slot 1 written, unsynced
        trace = Trace(self.path)
        with trace.recording(lambda: None):
            with mock.patch.object(anchor_module, "_SYNCED", {}):  # another process: it syncs, writes slot 0
                self.advance(3)
            self.assertEqual(trace.events, [("sync", 0), ("write", 0)])
            self.advance(4)  # slot 0 is not what this one synced there
            self.assertEqual(trace.events[2:], [("sync", 0), ("write", 1)])
            self.advance(5)  # as it left it: no sync
            self.assertEqual(trace.events[4:], [("write", 1)])
            content = bytearray(self.path.read_bytes())
            content[ANCHOR_SLOT:ANCHOR_SLOT + 3] = b"\0\0\0"  # the slot it wrote, torn under it
            self.path.write_bytes(bytes(content))
            self.advance(6)
            self.assertEqual(trace.events[5:], [("sync", 0), ("write", 1)],
                             "synced first, then written beside the newest whole record")
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(anchor.seq, 6)

    def test_a_sync_by_a_process_that_wrote_nothing_since_goes_unseen_and_costs_only_lag(self) -> None:
        """Another process's exit made this one's unsynced record durable, unseen: this one writes over it, and
        a power cut then leaves the record this process last synced, older but whole (found in review)."""
        self.advance(1)
        with mock.patch.object(anchor_module, "_SYNCED", {}):  # another process: syncs first, writes 2
            self.advance(2)
        self.advance(3)  # this one: syncs first (2 is on the disk), writes 3 beside it, unsynced
        anchor_module._sync_unsynced()  # the other exits: its sync puts 3 on the disk too
        trace = Trace(self.path)
        left: list[int] = []
        with trace.recording(lambda: left.append(trace.after_a_power_cut())):
            self.advance(4)
        self.assertEqual(left, [2], "the record this process synced, whole")

    def test_a_restart_is_synced_at_once(self) -> None:
        """An anchor that lost its restart to the power would read the new key's seals as forged."""
        self.advance(1)
        self.advance(2)
        trace = Trace(self.path)
        with trace.recording(lambda: None):
            restart_anchor(self.db, Restart(2, f"{2:064x}", "h" * 64, "n" * 16, KEY, "2026-12-05T00:00:00Z"))
        self.assertEqual(trace.events[-1], ("sync", 0))
        self.assertEqual(trace.after_a_power_cut(), 2)
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(len(anchor.restarts), 1)

    def test_a_retired_anchor_is_synced_before_it_is_moved_aside(self) -> None:
        self.advance(1)
        self.advance(2)
        self.advance(3)  # unsynced
        trace = Trace(self.path)
        directories: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            real_fsync(fd)
            directories.append(os.readlink(f"/proc/self/fd/{fd}"))

        with trace.recording(lambda: None), mock.patch.object(anchor_module.os, "fsync", fsync):
            retired = retire_anchor(self.db)
        self.assertEqual(trace.events, [("sync", 0)])
        self.assertEqual(directories, [str(self.path.parent)], "the rename made durable")
        assert retired is not None
        self.assertIn(b'"seq": 3', retired.read_bytes())
        self.assertNotIn(self.path, anchor_module._UNSYNCED)

    def test_a_process_syncs_what_it_left_unsynced_as_it_exits(self) -> None:
        """Real processes: one that decides and exits syncs its last record; one killed loses nothing either."""
        script = f"""
import os, sys
sys.path.insert(0, {str(REPO)!r})
from bot_bottle.audit import anchor
real = os.fdatasync
def traced(fd):
    real(fd)
    print("sync", os.readlink(f"/proc/self/fd/{{fd}}"), flush=True)
anchor.os.fdatasync = traced
for seq in range(int(sys.argv[1]), int(sys.argv[1]) + 5):
    anchor.advance_anchor(anchor.Path(sys.argv[2]), seq, f"{{seq:064x}}", {KEY!r})
print("done", flush=True)
if sys.argv[3] == "kill":
    os.kill(os.getpid(), 9)
"""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.advance(1)
        finished = subprocess.run([sys.executable, "-c", script, "2", str(self.db), "exit"], env=env,
                                  capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
        self.assertEqual(finished[0], f"sync {self.path}", "the file was not known to it: synced first")
        self.assertEqual(finished[-2:], ["done", f"sync {self.path}"], "and its newest record, as it exited")
        killed = subprocess.run([sys.executable, "-c", script, "7", str(self.db), "kill"], env=env,
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(killed.returncode, -9)
        self.assertEqual(killed.stdout.splitlines()[-1], "done")
        anchor = read_anchor(self.db)
        assert anchor is not None
        self.assertEqual(anchor.seq, 11, "a killed process's write is the kernel's: nothing lost")
