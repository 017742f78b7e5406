"""Which filesystem holds a path, and whether it is local, shared across a boundary, or unknown."""

from __future__ import annotations

import unittest

from bot_bottle.filesystems import LOCAL, SHARED, UNKNOWN, classify, filesystem_of, parse_mountinfo

LINUX_HOST = """\
22 29 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
29 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
31 29 0:26 / /tmp rw,nosuid,nodev shared:14 - tmpfs tmpfs rw,size=8g
40 29 252:17 / /home rw,relatime shared:20 - xfs /dev/vdb1 rw,attr2,inode64
"""

# A sidecar on Linux Docker: overlay root, the database directory bind-mounted from ext4.
DOCKER_LINUX_SIDECAR = """\
589 510 0:52 / / rw,relatime master:285 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A,workdir=/w
590 589 0:56 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
612 589 252:1 /home/ann/.bot-bottle/db /run/supervise rw,relatime - ext4 /dev/vda1 rw,errors=remount-ro
"""

# Docker Desktop (macOS): virtiofs, the older grpcfuse, and the fakeowner layer.
DOCKER_DESKTOP_VIRTIOFS = """\
589 510 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l
650 589 0:120 /Users/ann/.bot-bottle/db /run/supervise rw,relatime - virtiofs mount0 rw
"""
DOCKER_DESKTOP_GRPCFUSE = """\
589 510 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l
651 589 0:121 /host_mnt/Users/ann/.bot-bottle/db /run/supervise rw - fuse.grpcfuse grpcfuse rw,user_id=0
"""
DOCKER_DESKTOP_FAKEOWNER = """\
589 510 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l
652 589 0:122 /Users/ann/.bot-bottle/db /run/supervise rw - fakeowner /run/host_mark/Users rw,fakeowner
"""
NINE_P = "700 589 0:130 / /run/supervise rw,relatime - 9p drvfs rw,dirsync,aname=drvfs,trans=virtio\n"
NFS = "701 29 0:131 / /home rw,relatime shared:40 - nfs4 filer:/export/home rw,vers=4.2,rsize=1048576\n"
CIFS = "702 29 0:132 / /mnt/share rw,relatime shared:41 - cifs //nas/share rw,vers=3.1.1,cache=strict\n"
SPACES = "703 29 0:133 / /mnt/my\\040disk rw,relatime shared:42 - btrfs /dev/sdb1 rw\n"
ODD = "704 29 0:134 / /mnt/odd rw,relatime shared:43 - weirdfs none rw\n"


class MountinfoTest(unittest.TestCase):
    def test_parsing(self) -> None:
        """Mount point, type and source come from the right fields, past the optional ones."""
        entries = parse_mountinfo(LINUX_HOST)
        self.assertEqual([(e.mount_point, e.fstype) for e in entries],
                         [("/proc", "proc"), ("/", "ext4"), ("/tmp", "tmpfs"), ("/home", "xfs")])
        self.assertEqual(entries[1].source, "/dev/vda1")
        self.assertEqual(parse_mountinfo("garbage\n\n1 2 3\n"), [])

    def test_longest_mount_point_wins(self) -> None:
        """A path belongs to the deepest mount above it, by whole path components."""
        self.assertEqual(filesystem_of("/home/ann/.bot-bottle/db", LINUX_HOST).fstype, "xfs")  # type: ignore[union-attr]
        self.assertEqual(filesystem_of("/homework", LINUX_HOST).fstype, "ext4")  # type: ignore[union-attr]
        self.assertEqual(filesystem_of("/tmp", LINUX_HOST).fstype, "tmpfs")  # type: ignore[union-attr]

    def test_escaped_spaces(self) -> None:
        """mountinfo's \\040 is a space in the mount point."""
        entry = filesystem_of("/mnt/my disk/db", LINUX_HOST + SPACES)
        self.assertEqual((entry.mount_point, entry.fstype), ("/mnt/my disk", "btrfs"))  # type: ignore[union-attr]

    def test_recorded_cases(self) -> None:
        """Each recorded sample is classified as it should be."""
        cases = [
            (LINUX_HOST, "/home/ann/.bot-bottle/db", "xfs", LOCAL),
            (DOCKER_LINUX_SIDECAR, "/run/supervise", "ext4", LOCAL),
            (DOCKER_LINUX_SIDECAR, "/etc", "overlay", LOCAL),
            (DOCKER_DESKTOP_VIRTIOFS, "/run/supervise", "virtiofs", SHARED),
            (DOCKER_DESKTOP_GRPCFUSE, "/run/supervise", "fuse.grpcfuse", SHARED),
            (DOCKER_DESKTOP_FAKEOWNER, "/run/supervise", "fakeowner", SHARED),
            (LINUX_HOST + NINE_P, "/run/supervise", "9p", SHARED),
            (LINUX_HOST + NFS, "/home/ann", "nfs4", SHARED),
            (LINUX_HOST + CIFS, "/mnt/share/x", "cifs", SHARED),
            (LINUX_HOST + ODD, "/mnt/odd", "weirdfs", UNKNOWN),
        ]
        for sample, path, fstype, kind in cases:
            with self.subTest(path=path, fstype=fstype):
                entry = filesystem_of(path, sample)
                assert entry is not None
                self.assertEqual(entry.fstype, fstype)
                self.assertEqual(classify(entry.fstype), kind)


if __name__ == "__main__":
    unittest.main()
