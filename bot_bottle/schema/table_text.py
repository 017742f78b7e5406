"""A migration's table whose CREATE a sidecar rewrote, written back as its migration made it (for ``schema.guard``).

A table's constraints are the text of its CREATE in ``sqlite_master``: a
sidecar with ``writable_schema`` can add ``CHECK (action <> 'grant-revoked')``
to the audit log's CREATE (or rebuild the table with it), and every
revocation fails as under a trigger refusing it. Its rows stay where they
are: only the text is put back, and only where the text the migration made
describes the same storage as the text there now (the same columns in the
same places, the same rowid or none, the same constraint indexes), as
SQLite's own ALTER TABLE rewrites the text of a table it does not move.
A table rebuilt into other storage is left to ``schema.table_rebuild``.
"""

from __future__ import annotations

import json
import sqlite3

from bot_bottle.schema.droppable import schema_rows_written
from bot_bottle.schema.files import layout_aside

# Where a table's rows are and how SQLite finds them; everything else in its CREATE (CHECKs, DEFAULTs,
# NOT NULL, COLLATE, REFERENCES, conflict clauses, STRICT) is checked or applied in writes only. A generated
# VIRTUAL column (hidden 2) is stored in no row: one added beside a CHECK hid the CHECK from the write-back.
# Columns go by their order and names, not their numbers, which such a column shifts.
_COLUMNS = "SELECT lower(name), pk, hidden FROM pragma_table_xinfo(:table) WHERE hidden <> 2 ORDER BY cid"
_ROWID = "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = :table"
_KEY_INDEXES = ("SELECT name, origin, \"unique\", partial FROM pragma_index_list(:table) WHERE origin <> 'c' "
                "ORDER BY name")
_KEY_COLUMNS = ("SELECT seqno, lower(name), \"desc\", lower(coll), key FROM pragma_index_xinfo(:index) "
                "ORDER BY seqno")

# The storage of the migrations' tables (``_storage``), by table, by their CREATEs: built once a process for the
# same migrations.
_BUILT: dict[tuple[str, ...], dict[str, tuple[object, ...]]] = {}


def rewritten(conn: sqlite3.Connection, rows: dict[tuple[str, str], tuple[int, str]],
              expected: dict[tuple[str, str], str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Write back each migration's table whose CREATE differs in ``rows`` (``(type, name) -> (rowid, sql)``) and
    whose storage the migration's CREATE describes; ``(written back where more than layout differed, left as
    rebuilt into other storage)``. The caller's write transaction (the write lock held) reads the schema again
    afterwards: its triggers and indexes are looked at after this."""
    tables = {key: sql for key, sql in expected.items() if key[0] == "table"}
    differing = sorted(key for key in tables.keys() & rows.keys() if rows[key][1] != tables[key])
    if not differing:
        return [], []
    built = _built(tuple(sorted(tables.values())))
    same = [key for key in differing if _same_storage(conn, built, key[1])]
    if same:
        with schema_rows_written(conn):
            for key in same:
                conn.execute("UPDATE sqlite_master SET sql = ? WHERE rowid = ?", (tables[key], rows[key][0]))
    said = [key for key in same if _said_apart(rows[key][1]) != _said_apart(tables[key])]
    return said, [key for key in differing if key not in same]


def names_back(conn: sqlite3.Connection, rows: dict[tuple[str, str], tuple[int, str]],
               expected: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Write back the type, name and tbl_name of each migration's table whose row in ``rows`` spells them
    otherwise (``RULES``, ``TABLE``, ``grants`` || char(0) || ``x``); the keys, the names as the rows held them.

    SQLite loads a row whose type, name and tbl_name match its CREATE's case-blind, each to its first NUL: the
    same table, its rows and indexes. Gone by the name as written, the guard read the rules and grants tables
    renamed 'RULES' and 'GRANTS' as tables no migration made that declare a foreign key: it dropped them, every
    standing rule and grant with them, and made them again, empty. And the table rebuild, which writes the CREATEs
    of the tables referencing the one it rebuilds by their type and name, read the grants table named 'grants'
    || char(0) || 'x' as not its migration's (typed 'TABLE': its references not set aside, so the DROP failed on
    them): the audit log was left refusing revocations. Only the row's type, name and tbl_name change, nothing
    SQLite binds."""
    made = {name.lower(): name for kind, name in expected if kind == "table"}
    ours = {rows[key][0]: made[key[1].lower()] for key in rows if key[0] == "table" and key[1].lower() in made
            and (key[1] == made[key[1].lower()] or ("table", made[key[1].lower()]) not in rows)}
    spelled = sorted((rowid, str(name)) for rowid, kind, name, table in conn.execute(
        "SELECT rowid, type, name, tbl_name FROM sqlite_master WHERE rowid IN (SELECT value FROM json_each(?))",
        (json.dumps(list(ours)),)) if (kind, name, table) != ("table", ours[rowid], ours[rowid]))
    if spelled:
        with schema_rows_written(conn):
            for rowid, _ in spelled:
                conn.execute("UPDATE sqlite_master SET type = 'table', name = :name, tbl_name = :name "
                             "WHERE rowid = :rowid", {"name": ours[rowid], "rowid": rowid})
    return sorted(("table", name) for _, name in spelled)


def _said_apart(sql: str) -> str:
    """The text as far as a difference in it is said: layout and double quotes aside. A down migration's rebuild
    renamed into place reads ``CREATE TABLE "parent"`` where its up migration made ``CREATE TABLE parent``, and
    an honest downgrade is not to be called a sidecar's doing (the text is written back all the same)."""
    return layout_aside(sql.replace('"', ""))


def _same_storage(conn: sqlite3.Connection, built: dict[str, tuple[object, ...]], table: str) -> bool:
    """Whether ``table`` keeps its rows in the file as the migrations' CREATE does; False where SQLite cannot
    even say, such as a row rewritten into ``CREATE VIRTUAL TABLE ... USING`` a module nobody has ("no such
    module"): that table is left, and the write goes on, as every write to other tables would without it."""
    try:
        live = _storage(conn, table)
    except sqlite3.OperationalError:
        if not conn.in_transaction:
            raise  # an error that ended the whole transaction: nothing of this write can go on
        return False
    return live == built.get(table)


def _storage(conn: sqlite3.Connection, table: str) -> tuple[object, ...]:
    """What says where ``table``'s rows are: its columns' places, its rowid, its constraint indexes."""
    indexes = conn.execute(_KEY_INDEXES, {"table": table}).fetchall()
    return (conn.execute(_COLUMNS, {"table": table}).fetchall(), conn.execute(_ROWID, {"table": table}).fetchall(),
            indexes, [conn.execute(_KEY_COLUMNS, {"index": index[0]}).fetchall() for index in indexes])


def _built(creates: tuple[str, ...]) -> dict[str, tuple[object, ...]]:
    if creates not in _BUILT:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            for sql in creates:
                conn.execute(sql)
            _BUILT[creates] = {str(name): _storage(conn, str(name)) for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()}
        finally:
            conn.close()
    return _BUILT[creates]
