"""Taking out of ``sqlite_master`` what no migration made (for ``schema.guard``): by its schema rows, or by a
DROP where ``schema.droppable`` shows it is provably its own; and, first, the rows SQLite reads otherwise than
their order and number say (repeats it skips, rows past rowid 2^62).

Every function runs in the host's write transaction, the write lock held, and leaves the connection to read
the schema again before its next statement (``PRAGMA writable_schema = RESET``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

from bot_bottle.schema.droppable import (
    CUT,
    TABLE,
    TYPE,
    constraint_bindings,
    misbound,
    pages_their_own,
    quoted,
    referenced,
    row_gone,
    schema_rows_written,
)
from bot_bottle.schema.files import layout_aside

_HIGH = 1 << 62  # a schema row's rowid past this is a sidecar's doing (``numbered_down``)


def numbered_down(conn: sqlite3.Connection) -> bool:
    """Number the schema rows a sidecar put past ``_HIGH`` down, in their order, next to the others; whether any.

    SQLite numbers a new row max(rowid) + 1, and at random once the last rowid is taken, and it loads the
    schema in rowid order, a table before what is made on it: a view of the sidecar's at the last rowid had the
    guard's table made again, or rebuilt, land after its own indexes as often as not, and the write committed
    a schema no process could load ("no such table: main.audit_log")."""
    high = [rowid for (rowid,) in conn.execute("SELECT rowid FROM sqlite_master WHERE rowid > ? ORDER BY rowid",
                                                (_HIGH,))]
    if not high:
        return False
    (base,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM sqlite_master WHERE rowid <= ?", (_HIGH,)).fetchone()
    with schema_rows_written(conn):  # each row to a number no higher than its own and past the one before: none taken
        conn.executemany("UPDATE sqlite_master SET rowid = ? WHERE rowid = ?",
                         [(int(base) + number, rowid) for number, rowid in enumerate(high, 1)])
    return True


def repeats_out(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Take out each schema row (with a CREATE) that repeats the type and name of one before it, as SQLite loads
    them (a view's and a table's names are one); the rows taken out, by type and name.

    SQLite loads the rows in rowid order and skips a CREATE ... IF NOT EXISTS of a name it has (any other
    repeat, and no process can load the file). The guard went by the last row of each name: a trigger refusing
    revocations under the audit log's append-only trigger's name, and after it a row 'CREATE TRIGGER IF NOT
    EXISTS audit_log_no_update ...', had the guard take out the second and fail to make the migration's again
    ("already exists"), the first running inside every revocation ("nope"); a second row 'CREATE TABLE IF NOT
    EXISTS grants (x)' had it write the grants table's CREATE over it, and no process could load the file
    ("table grants already exists"). Such rows define nothing SQLite reads."""
    seen: set[tuple[str, str]] = set()
    repeats: list[tuple[int, str, str]] = []
    for rowid, kind, name, folded in conn.execute(  # folded as SQLite folds names: ASCII letters only
            f"SELECT rowid, {TYPE}, {CUT.format('name')}, lower({CUT.format('name')}) FROM sqlite_master WHERE "
            f"{TYPE} IN ('index', 'table', 'trigger', 'view') AND sql IS NOT NULL AND sql <> '' ORDER BY rowid"):
        key = ("table" if kind == "view" else str(kind), str(folded))
        if key in seen:
            repeats.append((int(rowid), str(kind), str(name)))
        seen.add(key)
    if repeats:
        unlisted(conn, [rowid for rowid, _, _ in repeats], [])
    return [(kind, name) for _, kind, name in repeats]


class Taken(NamedTuple):
    """What ``taken_out`` took out, for ``guard._made_again_said``."""
    foreign: list[tuple[str, str]]  # what no migration made, triggers, indexes and keyed tables
    differing: list[tuple[str, str]]  # a migration's trigger or index of other text (made again later)
    changed: list[tuple[str, str]]  # those of them that differ in more than layout
    unused: bool  # an index's or table's pages were left unused


def taken_out(conn: sqlite3.Connection, rows: dict[tuple[str, str], tuple[int, str]],
               expected: dict[tuple[str, str], str], tables: list[tuple[str, str]],
               table_rows: dict[tuple[str, str], tuple[int, str]]) -> Taken:
    live = {key: sql for key, (_, sql) in rows.items()}
    foreign = sorted(live.keys() - expected.keys())
    # Made again on any difference of text: a run of spaces inside a string literal is not layout. Said only
    # where more than layout differs (a database made by an older release may keep a trigger's text laid out
    # as its migration file then was).
    differing = sorted(key for key in live.keys() & expected.keys() if live[key] != expected[key])
    changed = [key for key in differing if layout_aside(live[key]) != layout_aside(expected[key])]
    # An index or table whose pages are its own is dropped, its pages freed (a sidecar's plain CREATE INDEX, a
    # migration's index laid out as an older release's file was). Everything else goes by its schema rows
    # (``unlisted``), triggers included: they hold no pages.
    # SQLite will DROP no table it reserves (``sqlite_...``). A table taken out by its rows takes every row
    # naming it along, its indexes too: none may be left to a table that is gone.
    own = pages_their_own(conn, [name for kind, name in foreign + differing + tables if kind != "trigger"])
    bound_to = constraint_bindings(conn, [name for _, name in tables])
    bound = [name for _, name in bound_to]
    lying = misbound(conn, [name for _, name in tables], bound)
    lying |= referenced(conn, [name for _, name in tables])
    kept_pages = [name for _, name in tables
                  if name.lower().startswith("sqlite_") or name not in own or name.lower() in lying]
    on_them = {rowid for (rowid,) in conn.execute(f"SELECT rowid FROM sqlite_master WHERE {TABLE} IN "
                                                  "(SELECT lower(value) FROM json_each(?))", (json.dumps(kept_pages),))}
    freed = [key for key in foreign + differing if key[0] == "index" and rows[key][0] not in on_them
             and key[1] in own] + [key for key in tables if key[1] not in kept_pages]
    unlisted(conn, [rows[key][0] for key in foreign + differing if key not in freed], kept_pages,
              [name for table, name in bound_to if table in kept_pages])  # the others' DROP frees their pages
    # A DROP TABLE first deletes the table's rows, checking the keys of every table that references it: a
    # sidecar's second table keyed to the first, one row in each, made the DROP fail ("FOREIGN KEY constraint
    # failed") and every host write with it. Such tables are all taken out here, so the checks wait (deferred)
    # and are then forgotten: turning the pragma off clears what they counted, nothing of the host's among it
    # (the guard runs first in the transaction).
    conn.execute("PRAGMA defer_foreign_keys = ON")
    try:
        for kind, name in sorted(freed, key=lambda key: key[0] == "table"):  # a table's DROP takes its indexes
            conn.execute(f"DROP {kind.upper()} {quoted(name)}")
            row_gone(conn, (rows | table_rows)[kind, name][0], name if kind == "table" else None)
    finally:
        conn.execute("PRAGMA defer_foreign_keys = OFF")
    unlisted(conn, [], [], bound)  # a dropped table's constraint index rows whose tbl_name the DROP missed
    return Taken(foreign + tables, differing, changed,
                  any(kind != "trigger" and (kind, name) not in freed for kind, name in foreign + tables))


def unlisted(conn: sqlite3.Connection, rowids: list[int], tables: list[str],
              bound: tuple[str, ...] | list[str] = ()) -> None:
    """Take objects out by deleting their sqlite_master rows (``rowids``, and every row of ``tables``: each
    constraint index's by its name among ``bound``, lower case, not by its tbl_name), then have every
    connection, this one first, read the schema again.

    Never by DROP. A DROP frees the pages the row names, and a row written with ``writable_schema`` names any
    pages it likes: an index row naming the audit log's had the guard's DROP INDEX free the log, the file
    malformed for every process after. Nor one DROP at a time: each looks through all of sqlite_master, and
    30,000 trigger rows a sidecar wrote in 0.04 s held the host's write lock for 20 s. An index's or a table's
    own pages are left unused, a sidecar's to have made; ``db check`` names them.
    """
    named = f"lower({CUT.format('name')}) IN (SELECT value FROM json_each(:bound))"
    if not rowids and not tables and conn.execute(f"SELECT 1 FROM sqlite_master WHERE sql IS NULL AND {named}",
                                                  {"bound": json.dumps(list(bound))}).fetchone() is None:
        return
    with schema_rows_written(conn):
        conn.execute("DELETE FROM sqlite_master WHERE rowid IN (SELECT value FROM json_each(:rowids)) OR "
                     f"({TABLE} IN (SELECT lower(value) FROM json_each(:tables)) AND (sql IS NOT NULL OR {named}))"
                     f" OR (sql IS NULL AND {named})",
                     {"rowids": json.dumps(rowids), "tables": json.dumps(tables), "bound": json.dumps(list(bound))})
