"""Whether an audit entry carries this host's seal as it reads now: what the screens and the keeper hold an entry
to before they take its word (a sidecar on the mount can drop the file's triggers and rewrite any column, but
cannot make a seal)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bot_bottle.audit.anchor import Anchor, read_anchor
from bot_bottle.audit.chain import compute_hash
from bot_bottle.audit.forensics import seal_problem
from bot_bottle.audit.seal import load_key
from bot_bottle.connection import database_path


def host_sealing(conn: sqlite3.Connection) -> tuple[bytes | None, Anchor | None]:
    """This host's audit key and the anchor of the database ``conn`` reads, what ``seal_problem`` holds an entry
    to (no anchor for a database without a path)."""
    path = database_path(conn)
    return load_key(), read_anchor(Path(path)) if path else None


def sealed_as_read(conn: sqlite3.Connection, row: tuple[Any, ...], key: bytes | None, anchor: Anchor | None) -> bool:
    """Whether audit entry ``row`` (``chain.SELECT``) as it reads now carries this host's seal
    (``forensics.seal_problem``). Its content is held to the seal, not its stored hash, a column anyone can
    write over (the entry stays the host's); a row no host wrote (a text number, a column of the wrong type)
    is not sealed."""
    if not isinstance(row[0], int):
        return False
    try:
        content = compute_hash(*row[:11])
    except (TypeError, ValueError):  # not what bot-bottle writes
        return False
    return seal_problem(conn, (*row[:11], content, row[12]), key, anchor) is None


def sealed_rows(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The entries among ``rows`` that carry this host's seal (``sealed_as_read``), in their order; the key and
    the anchor read once, and only where there is a row to hold to them."""
    sealing: tuple[bytes | None, Anchor | None] | None = None
    for row in rows:
        sealing = sealing or host_sealing(conn)
        if sealed_as_read(conn, row, *sealing):
            yield row
