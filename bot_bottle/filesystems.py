"""Which filesystem holds a path, and whether it is local: read from ``/proc/self/mountinfo``.

SQLite's locks (and, in WAL mode, its shared-memory index) hold only among
processes that share one kernel. On a local filesystem, or a Linux bind
mount of one, they do. Across a VM or network boundary (virtiofs, 9p, FUSE
shares such as Docker Desktop's grpcfuse, NFS, SMB) a lock may lock nothing
and two processes may see different memory. ``filesystem_of`` names the
filesystem under a path and ``classify`` sorts its type: ``local``,
``shared`` (across a boundary) or ``unknown``. Where there is no mountinfo
(macOS), ``filesystem_of`` answers None. ``journal_mode_for`` gives the
journal mode that follows for a database in a directory, and
``set_journal`` puts an open connection's file in it (the host's job
alone: a sidecar uses the file as the host left it).
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.errors import DatabaseError

MOUNTINFO = Path("/proc/self/mountinfo")
LOCAL = "local"
SHARED = "shared"
UNKNOWN = "unknown"

LOCAL_TYPES = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs", "overlay",
    "tmpfs", "ramfs", "apfs", "hfs", "hfsplus", "ufs", "devtmpfs",
})
SHARED_TYPES = frozenset({
    "virtiofs", "9p", "nfs", "nfs4", "cifs", "smb3", "smbfs", "fakeowner", "grpcfuse", "vboxsf", "prl_fs",
    "ceph", "glusterfs", "lustre", "afs", "osxfs", "vmhgfs", "davfs", "sshfs",
})
_ESCAPE_RE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo: where a filesystem is mounted, its type and source."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse ``/proc/self/mountinfo`` (proc(5)): the mount point (field 5) and, after '-', type and source."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        # Six fixed fields, optional fields, then "-", the type and the source.
        if len(fields) < 9 or "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        entries.append(MountEntry(_unescape(fields[4]), fields[separator + 1], _unescape(fields[separator + 2])))
    return entries


def filesystem_of(path: str | os.PathLike[str], mountinfo: str | None = None) -> MountEntry | None:
    """The mount that holds ``path``: the longest mount point that is a whole-component prefix of it."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best: MountEntry | None = None
    for entry in parse_mountinfo(mountinfo):
        point = entry.mount_point.rstrip("/") or "/"
        inside = target == point or target.startswith(point + "/") or point == "/"
        # Later lines mount over earlier ones at the same point, so >= keeps the last.
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = entry
    return best


def classify(fstype: str) -> str:
    """``local`` (safe for SQLite's locks), ``shared`` (across a VM or network boundary) or ``unknown``."""
    kind = fstype.lower()
    if kind in LOCAL_TYPES:
        return LOCAL
    if kind in SHARED_TYPES or kind.startswith("fuse") or kind.startswith("nfs") or kind.startswith("smb"):
        return SHARED
    return UNKNOWN


JOURNAL_WAL = "wal"
JOURNAL_ROLLBACK = "delete"


def journal_mode_for(directory: str | os.PathLike[str]) -> tuple[str, str]:
    """The journal mode the host gives a database in ``directory``, and why, in a phrase.

    WAL keeps its index in shared memory (``NAME-shm``, mapped by every
    process that opens the file), so it is safe only where they all share
    one kernel: a local filesystem, or a Linux bind mount of one. Anywhere
    else (virtiofs, 9p, NFS, SMB, FUSE shares, a type this code does not
    know) the rollback journal, which needs only working locks. Without a
    mount table to read (not Linux: macOS) the database is on the host's own
    disk, where sidecars in VMs never open it (they use the relay): WAL.
    """
    entry = filesystem_of(directory)
    if entry is None:
        return JOURNAL_WAL, "no mount table to read: the host's own disk"
    kind = classify(entry.fstype)
    if kind == LOCAL:
        return JOURNAL_WAL, f"{entry.fstype} is local: every process that opens the file shares this kernel"
    return JOURNAL_ROLLBACK, (f"{entry.fstype} ({kind}) may cross a VM or network boundary, where WAL's "
                              "shared-memory index is not shared")


def set_journal(conn: sqlite3.Connection, target: Path) -> None:
    """Put the file in the journal mode ``journal_mode_for`` gives its directory (the host's job alone)."""
    want, why = journal_mode_for(target.parent)
    have = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if have == want:
        return
    try:
        got = str(conn.execute(f"PRAGMA journal_mode = {want}").fetchone()[0]).lower()
    except sqlite3.OperationalError:
        got = have  # busy past the timeout: as below
    if got == want or want == JOURNAL_WAL:
        # Switching to WAL waits for every transaction under way; one that outlasts the busy timeout
        # leaves the rollback journal in place until the next host-side open, which is slower, not unsafe.
        return
    raise DatabaseError(
        f"{target} is in {have} journal mode, which is unsafe here ({why}), and could not be switched to the "
        "rollback journal (another process has it open): close every bot-bottle process using it and retry"
    )
