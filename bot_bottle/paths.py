"""Where bot-bottle keeps things on the host, and which of them sidecars see.

``~/.bot-bottle`` (``HOME`` decides ``~``) holds everything; only its ``db``
directory, which holds the database and its journal and nothing else, is
mounted into sidecars. What a sidecar must not be able to change or delete
lives outside it: the audit key and anchors, and the host database's
backups (docs/decisions.md, "Where the file lives").
"""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "bot-bottle.db"
# Inside a sidecar: where the backend mounts what the sidecar may reach (the database's directory, or a
# directory holding only its relay file). A constant: never taken from the environment.
DB_DIR_IN_CONTAINER = "/run/supervise"
DB_PATH_IN_CONTAINER = f"{DB_DIR_IN_CONTAINER}/{DB_FILENAME}"


def bot_bottle_root() -> Path:
    """``~/.bot-bottle``: everything bot-bottle keeps on the host (``HOME`` decides ``~``)."""
    return Path.home() / ".bot-bottle"


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
