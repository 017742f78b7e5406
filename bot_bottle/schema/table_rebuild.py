"""A migration's table a sidecar rebuilt into other storage, rebuilt as its migration made it (for ``schema.guard``).

Where a sidecar rewrote only a table's CREATE, ``schema.table_text`` writes
the migration's text back over the same rows. A sidecar can as well rebuild
the table: copy the audit log into a table of one column more and a
``CHECK (action <> 'grant-revoked')``, drop the old one, rename the copy.
The text then describes other storage and cannot be written back, and every
revocation failed ("CHECK constraint failed") with the grant left in force.

So the host rebuilds it the way SQLite's documentation rebuilds a table for
any change ALTER TABLE cannot make: the migration's CREATE under a name of
its own, the rows copied into it column by column (and rowid, which the
standing rules' keeper goes by), the sidecar's table dropped, the new one
renamed into place by its schema rows, its text the migration's exactly.
All of it in a savepoint of the caller's write transaction: where any step
fails (a row the migration's CHECKs refuse, a name taken), nothing of it
stays, and the table is left as it was, said with SQLite's reason.

A table is rebuilt only where dropping it cannot harm anything else:
- its pages are its own and the file is whole (``schema.droppable``): a DROP
  frees the pages its row names, which a sidecar may point at another
  table's;
- every migration column is in it (a column gone is not the host's to make
  up), none that another version of the migrations makes is there beside
  them (the version held to is ``user_version``, which a sidecar sets back:
  a later migration's column is the host's data), its INTEGER PRIMARY KEY
  holds whole numbers only, and its rowids can be read (SQLite would number
  what is not, and renumber what cannot be);
- every table referencing it is a migration's, as its migration made it,
  and it references no row of its own: a DROP TABLE of a table referenced
  first deletes its rows, each looking up the rows referencing it (a scan
  of the table where that column has no index), and a reference rebuilt
  with ``ON DELETE CASCADE`` would carry the delete on.

The references to it (the migrations', known text) are set aside for the
DROP, each referencing table's CREATE written without them over the same
storage, and written back just after: SQLite then deletes nothing. With
them, the audit log's DROP, 200,000 entries beside 2,000 grants, took 40 s
(``grants.revoke_seq`` has no index), and a host's would have held the
write lock for hours, on a rebuild that cost its sidecar seconds.
"""

from __future__ import annotations

import json
import re
import sqlite3

from bot_bottle.schema.droppable import (
    CUT,
    TYPE,
    constraint_bindings,
    misbound,
    pages_their_own,
    quoted,
    row_gone,
    schema_rows_written,
)

# The name a migration's CREATE TABLE gives, as SQLite's own rename writes it back ("audit_log" quoted).
_CREATE_NAME = re.compile(r'\A\s*CREATE\s+TABLE\s+(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_]*))', re.IGNORECASE)
_SPARE = "bot_bottle_rebuilding_"  # the rebuilt table's name until it takes the migration's


def rebuilt(conn: sqlite3.Connection, tables: list[tuple[str, str]], schema: dict[tuple[str, str], str],
            versions: list[dict[tuple[str, str], str]]) -> tuple[list[tuple[str, str]],
                                                                  list[tuple[tuple[str, str], str]]]:
    """Rebuild each of ``tables`` (migration tables whose storage differs from their migration's CREATE in
    ``schema``) as the migration made it, in the caller's write transaction; ``(rebuilt, left with why)``.
    ``versions``: the schema at each version the migrations know (a column one of them gives a table is never
    the rebuild's to drop).

    The triggers and indexes the rebuilt tables had are dropped with them; the guard makes its migrations'
    again once this returns."""
    done: list[tuple[str, str]] = []
    pending = list(tables)
    ever = _columns_ever(versions) if tables else {}
    while True:  # again while one got rebuilt: a table referencing another may be rebuilt before it
        left: list[tuple[tuple[str, str], str]] = []
        for key in pending:
            why = _why_not(conn, key[1], schema, ever)
            if why is None:
                why = _rebuild(conn, key[1], schema[key])
            if why is None:
                done.append(key)
            else:
                left.append((key, why))
        if len(left) in (0, len(pending)):
            return done, left
        pending = [key for key, _ in left]


def _columns_ever(versions: list[dict[tuple[str, str], str]]) -> dict[str, set[str]]:
    """Each table any of ``versions`` makes (lower case): every column any of them gives it (lower case)."""
    ever: dict[str, set[str]] = {}
    for schema in versions:
        for (kind, name), sql in schema.items():
            if kind == "table":
                ever.setdefault(name.lower(), set()).update(column.lower() for column in _made_in_memory(sql)[0])
    return ever


def _why_not(conn: sqlite3.Connection, table: str, schema: dict[tuple[str, str], str],
             ever: dict[str, set[str]]) -> str | None:
    """Why ``table`` may not be rebuilt (None: it may)."""
    columns, _, alias = _made_in_memory(schema[("table", table)])
    try:
        live = {str(name).lower() for (name,) in conn.execute(
            "SELECT name FROM pragma_table_xinfo(?)", (table,))}
        # An INTEGER PRIMARY KEY makes a number of a NULL and of text that reads as one: the audit log's entry
        # a sidecar numbered '11', or nothing, would be renumbered by the host into its chain.
        unnumbered = alias is not None and alias.lower() in live and conn.execute(
            f"SELECT 1 FROM {quoted(table)} WHERE typeof({quoted(alias)}) <> 'integer' LIMIT 1").fetchone()
        children = _children(conn, table)
        # Its DROP deletes the rows first wherever a table references it, itself included, and looks up each
        # row's children: in a column of its own with no index, a scan of the table for every row.
        itself = conn.execute("SELECT 1 FROM pragma_foreign_key_list(?) WHERE lower(\"table\") = lower(?)",
                              (table, table)).fetchone()
    except sqlite3.OperationalError as exc:
        if not conn.in_transaction:
            raise
        return f"SQLite cannot read it: {exc}"  # (a virtual table of a module nobody has, for one)
    gone = [name for name in columns if name.lower() not in live]
    if gone:
        return f"its column {gone[0]} is gone"
    # The version the guard holds the file to is PRAGMA user_version, which a sidecar sets: set to 8, a process
    # that stays open rebuilt the rules table as migration 8 made it, and what each rule was confirmed for
    # (migration 9's column) was gone. A column a migration makes is the host's data, whatever the version says.
    made_here = {name.lower() for name in columns}
    later = sorted(name for name in live - made_here if name in ever.get(table.lower(), set()))
    if later:
        return (f"its column {later[0]} is one another version of the migrations makes (the file's version may "
                "have been set back): its rows are not the rebuild's to drop")
    if unnumbered:
        return f"a row's {alias} is not a whole number"
    if itself:
        return "it references itself"
    made = {name.lower(): sql for (kind, name), sql in schema.items() if kind == "table"}
    for name, sql in children:
        if made.get(str(name).lower()) != sql:
            return f"a table not as its migration made it references it ({str(name)[:60]!r})"
    if _CREATE_NAME.match(schema[("table", table)]) is None:
        return "its migration's CREATE names it in a way this code does not read"
    bound = [name for _, name in constraint_bindings(conn, [table])]
    if table not in pages_their_own(conn, [table]) or table.lower() in misbound(conn, [table], bound):
        return "its pages are not its own alone, or the file is not whole"
    return None


def _rebuild(conn: sqlite3.Connection, table: str, create: str) -> str | None:
    """Rebuild ``table`` as ``create`` makes it, in a savepoint; why not, where a step failed (None: done)."""
    spare = _spare_name(conn, table)
    columns = ", ".join(quoted(name) for name in _made_in_memory(create)[0])
    rowid = _rowid_copied(conn, table, create)
    if rowid == "":
        return "columns named rowid, _rowid_ and oid hide its rowids, which a rebuild would renumber"
    copied = f"{rowid}, {columns}" if rowid else columns
    conn.execute("SAVEPOINT bot_bottle_rebuild")
    conn.execute("PRAGMA defer_foreign_keys = ON")  # the copy's key checks: forgotten below, none of the host's
    try:
        conn.execute(_CREATE_NAME.sub(f"CREATE TABLE {quoted(spare)}", create, count=1))
        conn.execute(f"INSERT INTO {quoted(spare)} ({copied}) SELECT {copied} FROM {quoted(table)}")
        conn.execute("PRAGMA defer_foreign_keys = OFF")  # clears what the copy counted
        (rowid_of_row,) = conn.execute(
            f"SELECT rowid FROM sqlite_master WHERE {TYPE} = 'table' AND lower({CUT.format('name')}) = lower(?)",
            (table,)).fetchone()
        bound = [name for _, name in constraint_bindings(conn, [table])]
        children = {str(name): str(sql) for name, sql in _children(conn, table)}
        _texts_written(conn, {name: _unreferencing(sql, table) for name, sql in children.items()})
        conn.execute(f"DROP TABLE {quoted(table)}")
        row_gone(conn, int(rowid_of_row), table)
        _bound_rows_gone(conn, bound)
        _renamed(conn, spare, table, create)
        _texts_written(conn, children)
    except sqlite3.DatabaseError as exc:
        if not conn.in_transaction:
            raise  # an error that ended the whole transaction: nothing of this write can go on
        conn.execute("ROLLBACK TO bot_bottle_rebuild")
        return f"rebuilding it failed: {exc}"
    finally:
        if conn.in_transaction:
            conn.execute("PRAGMA defer_foreign_keys = OFF")
            conn.execute("RELEASE bot_bottle_rebuild")
    return None


def _children(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """``(name, CREATE)`` of each table but ``table`` that references it by a foreign key."""
    return [(str(name), str(sql)) for name, sql in conn.execute(
        f"SELECT DISTINCT m.name, m.sql FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS fk "
        f"WHERE {TYPE} = 'table' AND lower(fk.\"table\") = lower(:table) AND lower(m.name) <> lower(:table)",
        {"table": table})]


def _unreferencing(create: str, parent: str) -> str:
    """``create`` (a migration's, which names ``parent`` plainly) without its references to ``parent``, over the
    same storage; ``sqlite3.DatabaseError`` where the text read so is not that.

    A DROP TABLE of a table another references deletes its rows first, each looking up the rows that reference
    it: in a column with no index (``grants.revoke_seq``), a scan of that table for every row. The audit log's,
    200,000 entries beside 2,000 grants, took 40 s, and a host's log and grants would have held the write lock
    for hours, on a rebuild that cost its sidecar seconds. With the references set aside for the DROP, SQLite
    deletes nothing; they are written back just after, in the same savepoint."""
    pattern = re.compile(r'\s+REFERENCES\s+("?)' + re.escape(parent) + r'\1\s*\([^()]*\)', re.IGNORECASE)
    text = pattern.sub("", create)
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        memory.execute(create)
        name = _name_in(create)
        columns = memory.execute("SELECT * FROM pragma_table_xinfo(?)", (name,)).fetchall()
        memory.execute(f"DROP TABLE {quoted(name)}")
        memory.execute(text)
        same = memory.execute("SELECT * FROM pragma_table_xinfo(?)", (name,)).fetchall() == columns
        still = memory.execute("SELECT 1 FROM pragma_foreign_key_list(?) WHERE lower(\"table\") = lower(?)",
                               (name, parent)).fetchone()
    finally:
        memory.close()
    if not same or still:
        raise sqlite3.DatabaseError(f"its references from {name!r} could not be set aside")
    return text


def _texts_written(conn: sqlite3.Connection, texts: dict[str, str]) -> None:
    """Set the CREATE of each table named in ``texts`` (over the same storage), and have every connection, this
    one first, read the schema again."""
    if not texts:
        return
    with schema_rows_written(conn):
        for name, sql in texts.items():  # one row each, or the DROP would go by references still there
            if conn.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                            (sql, name)).rowcount != 1:
                raise sqlite3.DatabaseError(f"the CREATE of {name[:60]!r} could not be written")


def _name_in(create: str) -> str:
    """The name a migration's CREATE TABLE gives its table ("t" where this code does not read it)."""
    match = _CREATE_NAME.match(create)
    return "t" if match is None else (match.group(1) or match.group(2))


def _made_in_memory(create: str) -> tuple[list[str], bool, str | None]:
    """The columns ``create`` makes, in order; whether its rows' rowid is copied with them (the table has none,
    or an INTEGER PRIMARY KEY names it); and that column's name (None: none), read from the table made in
    memory."""
    name = _name_in(create)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute(create)
        columns = [str(column) for (column,) in conn.execute(
            "SELECT name FROM pragma_table_xinfo(?) ORDER BY cid", (name,))]
        key = [(str(column), str(kind).upper()) for column, kind in conn.execute(
            "SELECT name, type FROM pragma_table_info(?) WHERE pk > 0", (name,))]
        keyless = conn.execute("SELECT wr FROM pragma_table_list WHERE name = ?", (name,)).fetchone() != (0,)
        alias = key[0][0] if [kind for _, kind in key] == ["INTEGER"] and not keyless else None
        return columns, keyless or alias is not None, alias
    finally:
        conn.close()


def _rowid_copied(conn: sqlite3.Connection, table: str, create: str) -> str | None:
    """A name that reads ``table``'s rowid, where both it and the migration's table have one and no column of
    the migration's carries it; None: there is none to copy; ``""``: there is, but columns of the sidecar's
    named ``rowid``, ``_rowid_`` and ``oid`` hide it. The standing rules' keeper goes by proposals' rowids, and
    a rebuild renumbering them would have it look again at what it had looked at."""
    if _made_in_memory(create)[1] or conn.execute(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", (table,)).fetchone() != (0,):
        return None
    live = {str(name).lower() for (name,) in conn.execute("SELECT name FROM pragma_table_xinfo(?)", (table,))}
    return next((alias for alias in ("rowid", "_rowid_", "oid") if alias not in live), "")


def _spare_name(conn: sqlite3.Connection, table: str) -> str:
    """A name no row of the schema holds (a sidecar may have taken the first one tried)."""
    taken = {str(name) for (name,) in conn.execute(
        f"SELECT lower({CUT.format('name')}) FROM sqlite_master WHERE lower(name) LIKE ? ESCAPE '\\'",
        (_SPARE.replace("_", "\\_") + "%",))}
    number = 0
    while f"{_SPARE}{table}_{number}".lower() in taken:
        number += 1
    return f"{_SPARE}{table}_{number}"


def _renamed(conn: sqlite3.Connection, spare: str, table: str, create: str) -> None:
    """The table made as ``spare`` given ``table``'s name by its schema rows, its text the migration's exactly.

    Not by ALTER TABLE: SQLite's rename updates ``sqlite_sequence`` wherever an object of that name is in the
    schema, and the sidecar's view of that name (inert otherwise) failed every rename, the log left refusing
    revocations; its newer rename reads every trigger and view again as well. The spare's rows are the ones this
    savepoint made: its table's, and its constraint indexes' (``sqlite_autoindex_<spare>_N``, bound by name)."""
    autoindex = "sqlite_autoindex_"
    taken = conn.execute(
        f"SELECT {CUT.format('name')} FROM sqlite_master WHERE lower({CUT.format('name')}) IN (SELECT lower(:prefix "
        "|| :table || substr(name, :rest)) FROM sqlite_master WHERE type = 'index' AND tbl_name = :spare AND sql IS "
        "NULL AND substr(name, 1, :cut) = :prefix || :spare || '_')",
        {"prefix": autoindex, "table": table, "spare": spare, "rest": len(autoindex) + len(spare) + 1,
         "cut": len(autoindex) + len(spare) + 1}).fetchone()
    if taken is not None:  # two rows of one index name: SQLite binds the later one, whatever pages it names
        raise sqlite3.DatabaseError(f"a schema row holds the name its constraint index takes ({str(taken[0])[:60]!r})")
    with schema_rows_written(conn):
        conn.execute("UPDATE sqlite_master SET name = :table, tbl_name = :table, sql = :sql "
                     "WHERE type = 'table' AND name = :spare",
                     {"table": table, "sql": create, "spare": spare})
        conn.execute("UPDATE sqlite_master SET name = :prefix || :table || substr(name, :rest), tbl_name = :table "
                     "WHERE type = 'index' AND tbl_name = :spare AND sql IS NULL AND substr(name, 1, :cut) = "
                     ":prefix || :spare || '_'",
                     {"prefix": autoindex, "table": table, "spare": spare, "rest": len(autoindex) + len(spare) + 1,
                      "cut": len(autoindex) + len(spare) + 1})


def _bound_rows_gone(conn: sqlite3.Connection, bound: list[str]) -> None:
    """Delete the rows of a just-dropped table's constraint indexes (``bound``: their names, lower case) that
    its DROP and ``row_gone`` left, their tbl_name another table's.

    SQLite binds such a row to its table by its name, whatever its tbl_name says, and its DROP deletes rows by
    tbl_name: the sidecar's row for the audit log's index, given tbl_name 'grants', stayed, naming the page the
    DROP freed under the name the copy's own index then took. Loaded before the copy, it was an orphan index;
    after it (the last rowid), SQLite bound it, and the file was malformed: every host write failed."""
    named = f"sql IS NULL AND lower({CUT.format('name')}) IN (SELECT value FROM json_each(?))"
    if not bound or conn.execute(f"SELECT 1 FROM sqlite_master WHERE {named}", (json.dumps(bound),)).fetchone() is None:
        return
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(f"DELETE FROM sqlite_master WHERE {named}", (json.dumps(bound),))
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
