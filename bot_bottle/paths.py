"""Where bot-bottle keeps things on the host, and which of them sidecars see.

``~/.bot-bottle`` (``HOME`` decides ``~``) holds everything; only its ``db``
directory, which holds the database and its journal and nothing else, is
mounted into sidecars. What a sidecar must not be able to change or delete
lives outside it: the audit key and anchors, and the host database's
backups (docs/decisions.md, "Where the file lives").
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from bot_bottle.errors import UnsafePath

DB_FILENAME = "bot-bottle.db"
# Inside a sidecar: where the backend mounts what the sidecar may reach (the database's directory, or a
# directory holding only its relay file). A constant: never taken from the environment.
DB_DIR_IN_CONTAINER = "/run/supervise"
DB_PATH_IN_CONTAINER = f"{DB_DIR_IN_CONTAINER}/{DB_FILENAME}"


# A stand-in for ~/.bot-bottle in this process (root_in): the throwaway demo keeps everything in its folder.
_ROOT_INSTEAD: list[Path] = []


def bot_bottle_root() -> Path:
    """``~/.bot-bottle``: everything bot-bottle keeps on the host (``HOME`` decides ``~``)."""
    return _ROOT_INSTEAD[-1] if _ROOT_INSTEAD else _root_of_home(os.environ.get("HOME"))


@functools.lru_cache(maxsize=8)
def _root_of_home(home: str | None) -> Path:
    # Once per value of HOME: a decision asks for the root several times (its anchor, its key), and
    # Path.home() parses the path afresh each time (docs/benchmarks.md, "Throughput").
    return Path.home() / ".bot-bottle"


@contextlib.contextmanager
def root_in(folder: Path) -> Iterator[Path]:
    """Within the block, this process keeps everything under ``folder`` instead of ``~/.bot-bottle`` (its
    audit key and anchors, its relay files): the throwaway demo touches nothing outside its folder."""
    _ROOT_INSTEAD.append(folder)
    try:
        yield folder
    finally:
        _ROOT_INSTEAD.pop()


def host_db_dir() -> Path:
    """The directory that holds only the database and its journal (mounted into sidecars)."""
    return bot_bottle_root() / "db"


def host_db_path() -> Path:
    """The host database file, ``~/.bot-bottle/db/bot-bottle.db``."""
    return host_db_dir() / DB_FILENAME


def host_backups_dir() -> Path:
    """``~/.bot-bottle/backups``: the host database's backups, where no sidecar can delete them."""
    return bot_bottle_root() / "backups"


def resolve_db_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` as a ``Path``, or the host database's path when it is ``None``."""
    return host_db_path() if path is None else Path(path)


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter: each missing level made 0700, none a link.

    ``Path.mkdir(parents=True)`` makes the parents it creates with the
    umask's mode (0755, commonly), so each level is made here.
    ``~/.bot-bottle`` and each level inside it that exists is made 0700
    when it is ours; a level inside it that is a symbolic link is refused
    (what is kept there must not be written through one; ``~/.bot-bottle``
    itself may be a link the user made). ``UnsafePath`` (one line,
    naming the level) when that cannot be done.
    """
    root = bot_bottle_root()
    for level in reversed([path, *path.parents]):
        try:
            info = os.stat(level) if level == root else os.lstat(level)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(level, 0o700)
            info = os.lstat(level)
        if not (level == root or root in level.parents):
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePath(f"{level} is not a directory (a link, or a file): bot-bottle keeps nothing there "
                             "through one; move it away")
        if stat.S_IMODE(info.st_mode) != 0o700 and info.st_uid == os.getuid():
            os.chmod(level, 0o700)
    return path


def open_private_file(path: Path, flags: int) -> int:
    """``os.open`` of a file kept in a private directory: never through a symbolic link, only a regular file.

    Created 0600 when ``flags`` has ``O_CREAT``. ``UnsafePath`` (one
    line, naming the file) when ``path`` is a link or not a regular file: a
    link planted there would otherwise have us write, or empty, whatever it
    points to.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0), 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(f"{path} is a symbolic link: bot-bottle writes nothing through one; remove it") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath(f"{path} is not a regular file: remove it")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at ``path``, a link's own rather than its target's; None when there is
    none (so a link put in place of a file, even one to that very file, is another file)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
