"""Is SQLite's locking trustworthy where the database lives? The filesystem type, and a lock probe.

SQLite's locks are POSIX advisory locks. On a local filesystem, or a Linux
bind mount of one, every process shares the kernel's lock table. Across a VM
or network boundary (virtiofs, 9p, FUSE shares such as Docker Desktop's
grpcfuse, NFS, SMB) a lock may silently lock nothing, and two writers can
corrupt the file. ``check_mount`` names the filesystem under a directory and
its class (``bot_bottle.filesystems``); ``probe_locking`` checks, from a
second process, that a lock SQLite holds there is actually seen.

``require_sidecar_database`` is the sidecar's check before it opens the
database at all: the file must exist and sit on a mount (the host's
directory, bind-mounted by the backend), never be created in the container.
``access_denied`` says why a sidecar cannot use what is there: the mount
belongs to another user than the one the container runs as (or nothing is
mounted and the image's own directory is closed to it).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.errors import MissingMount, MountAccessDenied, UnsafeMount
from bot_bottle.filesystems import LOCAL, MOUNTINFO, SHARED, UNKNOWN, classify, filesystem_of

PROBE_NAME = ".bot-bottle-lock-probe.db"
# The kernel's overflow uid: how a file's owner shows inside a user namespace that does not map it.
OVERFLOW_UID = 65534


@dataclass(frozen=True)
class LockProbe:
    """Whether a lock held by SQLite in one process was seen by another."""

    works: bool
    detail: str


# The second process: tries to take the write lock that the first holds. If
# it succeeds, the first process's lock locked nothing.
_CHECKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print("blocked" if "locked" in str(exc) else "error: " + str(exc))
else:
    conn.execute("ROLLBACK")
    print("acquired")
"""


def probe_locking(directory: str | os.PathLike[str], *, holder_vfs: str | None = None) -> LockProbe:
    """Hold SQLite's write lock on a probe file in ``directory`` and ask another process to take it.

    Works when the other process is refused. ``holder_vfs`` opens the holder
    with another SQLite VFS (``unix-none`` takes no locks at all, which is how
    the tests show the probe catching broken locking). The probe file is
    removed afterwards.
    """
    probe = Path(directory) / PROBE_NAME
    uri = f"file:{probe}" + (f"?vfs={holder_vfs}" if holder_vfs else "")
    try:
        holder = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        return LockProbe(False, f"cannot create a probe file in {directory}: {exc}")
    try:
        holder.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO probe VALUES (1)")
        result = subprocess.run([sys.executable, "-c", _CHECKER, str(probe)], capture_output=True, text=True,
                                timeout=30)
        answer = result.stdout.strip()
        holder.execute("ROLLBACK")
    except (sqlite3.Error, OSError, subprocess.TimeoutExpired) as exc:
        return LockProbe(False, f"the lock probe failed: {exc}")
    finally:
        holder.close()
        for leftover in (probe, Path(str(probe) + "-journal")):
            leftover.unlink(missing_ok=True)
    if answer == "blocked":
        return LockProbe(True, "a lock held by one process is seen by another")
    if answer == "acquired":
        return LockProbe(False, "another process took a lock this one was holding: locks here lock nothing")
    return LockProbe(False, f"the lock probe could not decide: {answer or result.stderr.strip()[-200:]}")


@dataclass(frozen=True)
class MountReport:
    """The filesystem under a database's directory, its class, and the lock probe's verdict."""

    directory: str
    fstype: str
    mount_point: str
    kind: str
    probe: LockProbe

    @property
    def safe(self) -> bool:
        """True when the filesystem is local and the probe saw the lock."""
        return self.kind == LOCAL and self.probe.works

    def refusal(self) -> UnsafeMount | None:
        """Why a sidecar must not open the database here, or None: a failed lock probe, or a shared filesystem.

        Either way the host and the sidecar may not share one kernel's locks
        and memory, which both of SQLite's journals need (WAL's index is a
        file every opener maps); an unknown filesystem is only warned of.
        """
        if not self.probe.works:
            return UnsafeMount(f"SQLite's locks do not work in {self.directory} ({self.fstype}): "
                               f"{self.probe.detail}; the sidecar will not open the database there")
        if self.kind == SHARED:
            return UnsafeMount(unsafe_message(self.directory, self.fstype))
        return None

    def warning(self) -> str | None:
        """One line naming the filesystem and the risk, or None when it is safe."""
        if self.safe:
            return None
        if not self.probe.works:
            return (f"SQLite's locks do not work in {self.directory} ({self.fstype}): {self.probe.detail}. Two "
                    "writers can corrupt the database; keep the database on a local filesystem")
        return (f"{self.directory} is on {self.fstype} ({self.kind}, mounted at {self.mount_point}), which may "
                "cross a VM or network boundary: SQLite's locks may not reach the other side and two writers "
                "can corrupt the database. The lock probe passed from this side only")


def check_mount(directory: str | os.PathLike[str]) -> MountReport:
    """Classify the filesystem under ``directory`` and probe its locking."""
    entry = filesystem_of(directory)
    fstype = entry.fstype if entry else "unknown"
    return MountReport(
        directory=str(directory),
        fstype=fstype,
        mount_point=entry.mount_point if entry else "?",
        kind=classify(fstype) if entry else UNKNOWN,
        probe=probe_locking(directory),
    )


def require_sidecar_database(path: str | os.PathLike[str], mountinfo: str | None = None) -> None:
    """Raise ``MissingMount`` unless ``path`` is an existing file on a mount at it or at its directory.

    The sidecar's database is the host's file in the host's directory,
    bind-mounted by the backend; without the mount, opening the path would
    create a fresh database inside the container that no operator sees. The
    message is one line naming the missing mount and how backends provide it.
    A mount of a filesystem that may cross a VM or network boundary is
    ``UnsafeMount``: the file is opened only where the host's kernel is shared.
    ``mountinfo`` replaces ``/proc/self/mountinfo`` (for tests).
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    how = (f"the sidecar needs the host's database directory (~/.bot-bottle/db) bind-mounted read-write at "
           f"{os.path.dirname(os.fspath(path))}, as the docker, smolmachines and macos-container backends do "
           "(Supervise.prepare creates and migrates it on the host); it never creates the database itself")
    if not os.path.isfile(target):
        raise MissingMount(f"{os.fspath(path)} does not exist: {how}")
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError as exc:
            raise MissingMount(f"cannot read {MOUNTINFO} to check that {os.fspath(path)} is mounted "
                               f"({exc.strerror}): {how}") from None
    entry = filesystem_of(target, mountinfo)
    point = entry.mount_point.rstrip("/") if entry else ""
    if point not in (target, directory):
        where = f"on {entry.mount_point} ({entry.fstype})" if entry else "on no mount"
        raise MissingMount(f"{os.fspath(path)} is not on a mount of its own (it is {where}): {how}")
    assert entry is not None
    if classify(entry.fstype) == SHARED:
        raise UnsafeMount(unsafe_message(os.fspath(path), entry.fstype))


def unsafe_message(where: str, fstype: str) -> str:
    """Why a sidecar refuses the database at ``where`` on a ``fstype`` mount that may cross a VM boundary."""
    return (f"{where} is on {fstype}, which may cross a VM or network boundary: SQLite's locks and WAL's "
            "shared-memory index may not reach the host there, and two writers could corrupt the database. "
            "The sidecar will not open it; a sidecar in a VM files through the host relay ('bot-bottle prepare "
            "SLUG --backend NAME' sets that up)")


def access_denied(mount_point: str, path: str, doing: str, mountinfo: str | None = None) -> MissingMount:
    """The error for a sidecar whose user may not ``doing`` ``path``, under ``mount_point``: one line.

    ``MountAccessDenied`` when something is mounted at ``mount_point``,
    naming the mode and owner of ``path`` (or of the mount point, where
    ``path`` cannot be looked at), the uid:gid the sidecar runs as and the
    ``--user`` that would work; ``MissingMount`` when nothing is mounted there
    (the image's own directory is what is closed). ``mountinfo`` replaces
    ``/proc/self/mountinfo`` (for tests).
    """
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            mountinfo = ""
    entry = filesystem_of(mount_point, mountinfo)
    me = f"uid {os.getuid()} gid {os.getgid()}"
    if entry is None or entry.mount_point.rstrip("/") != mount_point.rstrip("/"):
        return MissingMount(f"nothing is mounted at {mount_point}, and this sidecar ({me}) may not look into the "
                            "image's own directory there: the backend mounts the host's database directory or the "
                            "relay file at it ('bot-bottle prepare SLUG --backend NAME' prints the command)")
    for target in (path, mount_point):
        try:
            info = os.stat(target)
            break
        except OSError:
            continue
    else:
        return MountAccessDenied(f"this sidecar ({me}) may not {doing} {path} on the mount at {mount_point}: run it "
                                 "as the user who owns the mounted directory ('bot-bottle prepare' prints the --user)")
    owner = ("" if target == path else f"{target} is ") + \
        f"mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid} gid {info.st_gid}"
    if info.st_uid == OVERFLOW_UID:
        fix = ("its owner is not mapped into this container's user namespace (uid 65534 stands for that): with "
               "rootless podman, run the sidecar with --userns=keep-id --user UID:GID, as 'bot-bottle prepare "
               "SLUG --backend docker --engine podman' prints")
    else:
        fix = (f"run the sidecar as that owner, --user {info.st_uid}:{info.st_gid}, as the command 'bot-bottle "
               "prepare SLUG --backend NAME' prints does")
    return MountAccessDenied(f"{mount_point} is mounted, but this sidecar ({me}) may not {doing} {path} ({owner}): "
                             f"{fix}")
