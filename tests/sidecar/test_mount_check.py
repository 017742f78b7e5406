"""The mount under the sidecar's database, and whether locks work there."""

from __future__ import annotations

import os
import unittest
from pathlib import Path

from bot_bottle.errors import MissingMount, UnsafeMount
from bot_bottle.filesystems import LOCAL, SHARED
from bot_bottle.sidecar.mount_check import LockProbe, MountReport, probe_locking, require_sidecar_database
from tests.helpers.support import TempDirTest


class MountReportTest(unittest.TestCase):
    def test_warning_names_type_and_risk(self) -> None:
        """A shared filesystem, or failed probe, gives one line naming the type and the risk."""
        shared = MountReport("/run/supervise", "virtiofs", "/run/supervise", SHARED, LockProbe(True, "seen"))
        self.assertIn("virtiofs", shared.warning() or "")
        self.assertIn("corrupt", shared.warning() or "")
        broken = MountReport("/x", "ext4", "/", LOCAL, LockProbe(False, "locks here lock nothing"))
        self.assertIn("locks here lock nothing", broken.warning() or "")
        self.assertIsNone(MountReport("/x", "ext4", "/", LOCAL, LockProbe(True, "seen")).warning())


class LockProbeTest(TempDirTest):
    def test_working_locks_are_seen(self) -> None:
        """Ordinary SQLite locks on a local directory: the second process is refused."""
        probe = probe_locking(self.tmp)
        self.assertTrue(probe.works, probe.detail)
        self.assertEqual(list(self.tmp.iterdir()), [self.home], "the probe file is removed")

    def test_a_lockless_holder_is_caught(self) -> None:
        """A holder on SQLite's unix-none VFS takes no locks: the probe reports broken locking."""
        probe = probe_locking(self.tmp, holder_vfs="unix-none")
        self.assertFalse(probe.works)
        self.assertIn("lock nothing", probe.detail)

    def test_unwritable_directory(self) -> None:
        """A directory that does not exist is a failed probe, not a crash."""
        probe = probe_locking(self.tmp / "missing")
        self.assertFalse(probe.works)


class SidecarDatabaseTest(TempDirTest):
    """The sidecar opens its database only when it is the host's file on the backend's mount."""

    def mountinfo(self, *points: str) -> str:
        lines = ["589 510 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l"]
        lines += [f"6{i} 589 252:1 /host/db {point} rw,relatime - ext4 /dev/vda1 rw" for i, point in enumerate(points)]
        return "\n".join(lines) + "\n"

    def setUp(self) -> None:
        super().setUp()
        self.directory = Path(os.path.realpath(self.tmp)) / "supervise"
        self.directory.mkdir()
        self.database = self.directory / "bot-bottle.db"

    def test_a_file_on_the_directory_mount_or_its_own_mount_is_accepted(self) -> None:
        """The backends mount the directory; a bind mount of the file itself is accepted too."""
        self.database.write_bytes(b"")
        require_sidecar_database(self.database, self.mountinfo(str(self.directory)))
        require_sidecar_database(self.database, self.mountinfo(str(self.database)))

    def test_a_missing_file_or_one_without_its_mount_is_refused_in_one_line(self) -> None:
        """No file, the container's own root, or a mount further up (a tmpfs on /run) are each refused."""
        with self.assertRaisesRegex(MissingMount, "does not exist: the sidecar needs the host's database directory"):
            require_sidecar_database(self.database, self.mountinfo(str(self.directory)))
        self.assertFalse(self.database.exists(), "the check never creates the file")
        self.database.write_bytes(b"")
        for info in (self.mountinfo(), self.mountinfo(str(self.directory.parent))):
            with self.subTest(info=info), self.assertRaises(MissingMount) as caught:
                require_sidecar_database(self.database, info)
            message = str(caught.exception)
            self.assertIn("is not on a mount of its own", message)
            self.assertIn("bind-mounted read-write at", message)
            self.assertIn("docker, smolmachines and macos-container", message)
            self.assertEqual(len(message.splitlines()), 1)

    def test_a_mount_that_may_cross_a_vm_boundary_is_refused(self) -> None:
        """The host's database on virtiofs, 9p or a FUSE share: UnsafeMount, one line, before anything opens it."""
        self.database.write_bytes(b"")
        for fstype in ("virtiofs", "9p", "fuse.grpcfuse", "nfs4"):
            info = f"589 510 0:52 / / rw - overlay overlay rw\n650 589 0:120 /db {self.directory} rw - {fstype} m rw\n"
            with self.subTest(fstype), self.assertRaises(UnsafeMount) as caught:
                require_sidecar_database(self.database, info)
            self.assertIn(f"is on {fstype}, which may cross a VM or network boundary", str(caught.exception))
            self.assertIn("host relay", str(caught.exception))
            self.assertEqual(len(str(caught.exception).splitlines()), 1)
