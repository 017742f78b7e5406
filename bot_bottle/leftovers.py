"""Files a killed writer leaves behind: hidden ``.NAME.<pid>.<suffix>`` files whose process is gone.

Every file bot-bottle must never show half-written (a backup, an export of
the audit log, the audit key, an audit anchor) is written under a hidden
name carrying the writer's process id and moved into place whole
(``publish``, for the files that must not replace one). ``kill -9`` between the two leaves
the hidden file; the next writer of the same kind removes those whose
process no longer runs (``remove_stale``).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path


def hidden_name(path: Path, suffix: str) -> Path:
    """Where this process writes ``path`` before it is moved into place: ``.NAME.<pid>.<suffix>`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.{suffix}")


def sync_folder(folder: Path) -> None:
    """``fsync`` the directory ``folder``, so that a name just made in it stays after a power cut.

    A filesystem that cannot sync a directory (some network and FUSE mounts refuse) is let be: the file
    itself was synced, and that is all such a filesystem offers."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def publish(written: Path, destination: Path, mode: int = 0o600) -> None:
    """Give the finished file ``written`` the name ``destination``, never replacing a file that took it meanwhile.

    ``FileExistsError`` where the name is taken; any other ``OSError`` leaves no file at ``destination``.
    A hard link where the filesystem has them (``link`` fails on a name taken, where ``rename`` would
    overwrite it); otherwise the name is reserved with ``O_EXCL`` and ``written`` renamed over the
    placeholder (``mode``). ``written`` stays until the caller removes it.
    """
    try:
        os.link(written, destination)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # a filesystem without hard links (some FUSE and network mounts): reserve the name, then rename
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.close(fd)
    try:
        os.replace(written, destination)  # over our own empty placeholder
    except OSError:
        destination.unlink(missing_ok=True)
        raise


def remove_stale(folder: Path, suffix: str, name: str | None = None) -> list[Path]:
    """Remove ``.NAME.<pid>.<suffix>`` files in ``folder`` (of ``name`` only, if given) whose process is gone.

    Returns the ones removed. A file of a live process (or one this process
    cannot ask about) is left alone.
    """
    pattern = re.compile(rf"\.{re.escape(name) if name is not None else '.+'}\.(\d+)\.{re.escape(suffix)}")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def process_alive(pid: int) -> bool:
    """True if process ``pid`` runs (or may: someone else's, or a number the system cannot ask about)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
