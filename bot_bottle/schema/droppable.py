"""Which of the indexes and tables a sidecar made the host may DROP, freeing their pages (for ``schema.guard``).

A DROP frees the pages its schema row names, and a row written with
``writable_schema`` names any pages it likes: the guard's own DROP INDEX of a
forged row freed the audit log's pages, and the file was malformed for every
process after. So a DROP is only for what is provably its own: its pages,
walked by SQLite's ``dbstat``, held by it alone, in a file ``quick_check``
finds whole, no other table referencing it. Everything else the guard takes
out by its schema rows (``taking_out.unlisted``). The names in ``sqlite_master``
are read as SQLite loads them: case-blind, to the first NUL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# ``lower(type)``: SQLite loads a row whose type, name and table match its CREATE ignoring case (ASCII, as
# lower() folds it), so a sidecar's row typed 'TRIGGER' runs as a trigger; ``type IN (...)`` compares by case.
# Tables too: one no migration made that declares a foreign key is checked in the host's writes to the table
# it references (``guard._linked_tables``).
# ``CUT``: SQLite reads each row's type and name as C strings, to their first NUL, while SQL compares them
# whole: a row typed 'trigger' || char(0) || 'x' ran as a trigger inside every host write, unseen here.
CUT = "(CASE WHEN instr({0}, char(0)) THEN substr({0}, 1, instr({0}, char(0)) - 1) ELSE {0} END)"
TYPE = "lower(" + CUT.format("type") + ")"
TABLE = "lower(" + CUT.format("tbl_name") + ")"


def pages_their_own(conn: sqlite3.Connection, names: list[str]) -> set[str]:
    """Those of the indexes and tables ``names`` no page of which another table or index holds, as SQLite's
    ``dbstat`` walks them, in one pass over the file however many are named; none where it cannot say (a build
    without ``dbstat``, a page it cannot read). A table goes with its constraint indexes (no CREATE of their
    own: a DROP TABLE frees them with it): their pages may be held by them and it alone. Taken out by its rows
    instead, such a table left its pages unused, and the next migration's integrity check refused the file."""
    if not names:
        return set()
    holders: dict[int, set[str]] = {}
    try:
        for name, page in conn.execute("SELECT name, pageno FROM dbstat"):
            holders.setdefault(int(page), set()).add(str(name))
    except sqlite3.DatabaseError:
        if not conn.in_transaction:
            raise
        return set()
    if not file_whole(conn):
        return set()
    present = {name for held in holders.values() for name in held}
    own = set()
    for name in names:
        group = {name} | {str(index) for (index,) in conn.execute(
            f"SELECT {CUT.format('name')} FROM sqlite_master WHERE sql IS NULL AND {TYPE} = 'index' AND {TABLE} = "
            "lower(?)", (name,))}
        if name in present and all(held <= group for held in holders.values() if held & group):
            own.add(name)
    return own


def file_whole(conn: sqlite3.Connection) -> bool:
    """Whether ``PRAGMA quick_check`` finds the file whole: no page both in a tree and on the freelist.

    ``dbstat`` walks each schema row's tree and never the freelist, so a sidecar's index row (written with
    ``writable_schema``, ``secure_delete`` off so that a page it freed kept its old index content) whose root
    was a free page read as that index's own: the guard's DROP INDEX freed the page again, SQLite found the
    file malformed, and every host write failed with it (no revocation recorded), where before only writes
    to the indexed table did. Asked only where something is to be dropped."""
    try:
        return [str(line) for (line,) in conn.execute("PRAGMA quick_check")] == ["ok"]
    except sqlite3.DatabaseError:
        if not conn.in_transaction:
            raise
        return False


def constraint_bindings(conn: sqlite3.Connection, tables: list[str]) -> list[tuple[str, str]]:
    """``(table, index)`` for each constraint index (no CREATE of its own: a UNIQUE or PRIMARY KEY's) SQLite
    binds to one of ``tables``, the index's name in lower case."""
    return [(str(table), str(name)) for table, name in conn.execute(
        "SELECT t.value, lower(list.name) FROM json_each(?) AS t, pragma_index_list(t.value) AS list",
        (json.dumps(tables),))]


def misbound(conn: sqlite3.Connection, tables: list[str], bound: list[str]) -> set[str]:
    """Those of ``tables`` (lower case) a constraint index row names by its tbl_name that SQLite does not bind
    to it (``bound``: the names ``constraint_bindings`` found bound).

    A constraint index's row is bound to its table by its name, as SQLite loads it, whatever its tbl_name
    says; SQLite's DROP TABLE deletes rows by tbl_name. One with a lying tbl_name was left by the DROP, bound
    to nothing (every later command: "orphan index", told to restore a backup), or would take a migration
    table's row along: such tables are not to be DROPped."""
    return {str(name) for (name,) in conn.execute(
        f"SELECT {TABLE} FROM sqlite_master WHERE sql IS NULL AND {TABLE} IN (SELECT lower(value) FROM "
        f"json_each(:tables)) AND lower({CUT.format('name')}) NOT IN (SELECT value FROM json_each(:bound))",
        {"tables": json.dumps(tables), "bound": json.dumps(bound)})}


@contextmanager
def schema_rows_written(conn: sqlite3.Connection) -> Iterator[None]:
    """Write ``sqlite_master`` rows in the ``with`` body (``writable_schema``); once it succeeds, move the schema's
    version on, so that every other connection reads the schema again, and this one does before its next
    statement (``writable_schema = RESET``) whether the body succeeded or not."""
    conn.execute("PRAGMA writable_schema = ON")
    try:
        yield
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = RESET")


def row_gone(conn: sqlite3.Connection, rowid: int, table: str | None) -> None:
    """Delete the sqlite_master row of an index or ``table`` just dropped where the DROP left it.

    SQLite's DROP deletes the row ``WHERE name = <the CREATE's name> AND type = 'index'`` (a table's: by
    ``tbl_name``), as SQL compares text, while it loads a row whose type and name match the CREATE's
    case-blind: a row named 'NOPE' for ``CREATE INDEX nope`` survives the DROP, pointing at the pages it
    freed, and the file is malformed for every process after the commit.
    """
    if conn.execute(f"SELECT 1 FROM sqlite_master WHERE rowid = ? OR {TABLE} = lower(?)",
                    (rowid, table)).fetchone() is None:
        return
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(f"DELETE FROM sqlite_master WHERE rowid = ? OR {TABLE} = lower(?)", (rowid, table))
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def referenced(conn: sqlite3.Connection, tables: list[str]) -> set[str]:
    """Which of ``tables`` (lower case) a table not among them references by a foreign key: a DROP of one
    deletes its rows first, and a migration's table a sidecar rebuilt with 'REFERENCES evil ON DELETE
    CASCADE' (other storage) had every grant deleted by the guard's DROP of evil. Such a table goes by its
    rows, deleting none. All of them where SQLite cannot say (a table of a module nobody has)."""
    if not tables:
        return set()
    try:
        return {str(name) for (name,) in conn.execute(
            f"SELECT lower(fk.\"table\") FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS fk "
            f"WHERE {TYPE} = 'table' AND lower(m.name) NOT IN (SELECT lower(value) FROM json_each(?))",
            (json.dumps(tables),))}
    except sqlite3.OperationalError:
        if not conn.in_transaction:
            raise
        return {name.lower() for name in tables}


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
