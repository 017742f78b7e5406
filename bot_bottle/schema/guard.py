"""The host's writes run only the triggers, and keep only the indexes, that its migrations made.

Every sidecar on the mount can change the schema as it can change any row,
and a trigger runs inside whichever transaction fires it, the host's own
included. One that refuses ``grant-revoked`` audit entries made every
revocation fail; one that clears a grant's revoked mark after the host set
it undid the revocation in the file; a partial UNIQUE index on the audit log
refuses the second entry of a kind it names. ``SchemaGuard.hold`` runs at
the start of each of the host's write transactions (``db.Database.write``),
with the write lock held, so nothing can change the schema between its look
and the transaction's statements: a trigger or index no migration made is
dropped (so is a table no migration made that declares a foreign key: the
host enforces keys, checked in writes to the referenced table too), one that
differs from its migration's is made again as the
migration made it, and one that is missing is made again where it can be.
What it changed is said on stderr once the write commits, names escaped.

Why every write looks, and not only when ``PRAGMA schema_version`` moved:
the version is a number any process with the file can set, and a connection
loads the schema again whenever the number differs from the one it parsed,
so a sidecar can add a trigger, let the host's connection load it, and set
the number back to the one the host last checked. The look is one query of
``sqlite_master`` (about 40 rows, 20-35 microseconds) compared with the
last set found good.

Tables are not rebuilt: a table a sidecar rebuilt into other columns holds
rows, and the stores already go by the sealed log where rows can lie;
``bot-bottle db check`` reports it. A migration's table whose CREATE was
rewritten over the same storage (a CHECK of the sidecar's) gets its
migration's CREATE back, first (``schema.table_text``).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from typing import NamedTuple

from bot_bottle.errors import SchemaTooNew
from bot_bottle.schema.files import Migration, discover, layout_aside
from bot_bottle.schema.state import HISTORY_TABLE, current_version
from bot_bottle.schema.steps import expected_schema
from bot_bottle.schema.table_text import rewritten

GUARDED_KINDS = ("index", "trigger")
# ``lower(type)``: SQLite loads a row whose type, name and table match its CREATE ignoring case (ASCII, as
# lower() folds it), so a sidecar's row typed 'TRIGGER' runs as a trigger; ``type IN (...)`` compares by case.
# Tables too: one no migration made that declares a foreign key is checked in the host's writes to the table
# it references (``_linked_tables``).
# ``_cut``: SQLite reads each row's type and name as C strings, to their first NUL, while SQL compares them
# whole: a row typed 'trigger' || char(0) || 'x' ran as a trigger inside every host write, unseen here.
_CUT = "(CASE WHEN instr({0}, char(0)) THEN substr({0}, 1, instr({0}, char(0)) - 1) ELSE {0} END)"
_TYPE = "lower(" + _CUT.format("type") + ")"
_TABLE = "lower(" + _CUT.format("tbl_name") + ")"
_LIVE = (f"SELECT rowid, {_TYPE}, {_CUT.format('name')}, sql FROM sqlite_master "
         f"WHERE {_TYPE} IN ('index', 'table', 'trigger') AND sql IS NOT NULL")
NAMES_SAID = 5  # names a warning lists before it counts the rest
NAME_CHARS = 60  # of each name said


def _say_on_stderr(message: str) -> None:
    print(f"bot-bottle: warning: {message}", file=sys.stderr, flush=True)


class SchemaGuard:
    """Holds one connection's write transactions to the schema the migrations made (``hold``): their triggers and
    indexes and no others, their tables' CREATEs, no table of a sidecar's that declares a foreign key.

    ``say`` receives each warning (default: a line on stderr) from
    ``committed``; the names in it are escaped already, so it may print them
    as they are. A process that draws on the terminal (the TUI) sets it to
    its status line.
    """

    def __init__(self, migrations: tuple[Migration, ...] | None = None,
                 say: Callable[[str], None] = _say_on_stderr) -> None:
        self._known = migrations
        self.say = say
        # The last live set found as the migrations made it. Safe to keep past a rollback: it is what the file
        # holds, not when it was looked at, so a file holding anything else is looked at again.
        # (A list, in sqlite_master's order: compared without hashing every CREATE's text at each write; the same
        # rows in another order are looked at again and found good.)
        self._good: list[tuple[int, str, str, str]] | None = None

    def hold(self, conn: sqlite3.Connection) -> list[str]:
        """In the caller's write transaction (the write lock held): take out what no migration made, write back
        or make again what differs or is missing; return what it did, for ``committed`` once the transaction is
        (``[]``: nothing)."""
        live = conn.execute(_LIVE).fetchall()
        if live == self._good:
            return []
        known = self._known if self._known is not None else discover()
        version = current_version(conn)
        if version > len(known):
            # A process that stays open (dashboard, relay, TUI) meets here what its open would refuse: a
            # sidecar's 'PRAGMA user_version = 99' beside its trigger had the trigger run, unlooked at, in
            # every write of theirs ("nope", no revocation recorded). A version no migration history stands
            # behind is a lie (``state.refuse_unusable``): held to the migrations this code knows. One a
            # newer bot-bottle recorded is refused, as at open.
            if _recorded(conn) > len(known):
                raise SchemaTooNew(f"the database is at schema version {version}, but this bot-bottle knows "
                                   f"only up to {len(known)}: nothing was written; run a newer bot-bottle")
            version = len(known)
        schema = expected_schema(known, version)
        expected = {key: sql for key, sql in schema.items() if key[0] in GUARDED_KINDS}
        rows = _keyed(live)
        # What no migration made goes first, and what differs from its migration's (made again last): the
        # tables' write-back below has the connection read the schema again, and a sidecar's index on a
        # generated VIRTUAL column it had written into the audit log's CREATE, still there then, named a column
        # gone, so SQLite refused the whole schema and every host write failed ("no such column: v").
        # The keyed tables go after the write-back: a DROP TABLE deletes the rows first, and a migration
        # table's CREATE the sidecar had given 'REFERENCES evil ON DELETE CASCADE' had that delete its rows.
        taken = _taken_out(conn, {key: row for key, row in rows.items() if key[0] in GUARDED_KINDS}, expected, [],
                           rows)
        tables_said, tables_left = rewritten(conn, rows, schema)
        rows = _keyed(conn.execute(_LIVE).fetchall())
        linked = _taken_out(conn, {}, {}, _linked_tables(conn, rows.keys() - schema.keys() - _every_table(known)),
                            rows)
        tables_made = _tables_made_again(conn, rows, schema)
        now = {key for key in _keyed(conn.execute(_LIVE).fetchall()) if key[0] in GUARDED_KINDS}
        done = _tables_done(tables_said, tables_left) + _tables_made_said(tables_made) + _made_again_said(
            conn, taken._replace(foreign=taken.foreign + linked.foreign, unused=taken.unused or linked.unused),
            expected, now)
        self._good = conn.execute(_LIVE).fetchall()
        return done

    def committed(self, done: list[str]) -> None:
        """Say what ``hold`` did, now that its transaction committed (a rolled-back one did nothing)."""
        for line in done:
            self.say(line)


def _keyed(live: list[tuple[int, str, str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    return {(kind, name): (rowid, sql) for rowid, kind, name, sql in live}


def _tables_done(said: list[tuple[str, str]], left: list[tuple[str, str]]) -> list[str]:
    done = []
    if said:
        done.append(f"wrote back as its migration made it the CREATE of a table a process with the database file "
                    f"had changed (its rows kept): {_named(said)}")
    if left:
        done.append(f"left as it is a table a process with the database file rebuilt into other columns than its "
                    f"migration's: {_named(left)} ('bot-bottle db check' reports it)")
    return done


def _tables_made_again(conn: sqlite3.Connection, live: dict[tuple[str, str], tuple[int, str]],
                       schema: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Make again, empty, each migration's table that is gone, first taking out whatever holds its name (such
    as a view); the ones made.

    A sidecar renamed the rules table and put a view under its name: every standing rule or rejection the
    operator added failed ("cannot modify rules because it is a view"). Its rows are not the host's to look
    for (the sealed log keeps what each recorded, and the stores go by it); its writes are.
    """
    gone = sorted(key for key in schema.keys() - live.keys() if key[0] == "table")
    made = []
    for key in gone:
        holders = [rowid for (rowid,) in conn.execute(
            f"SELECT rowid FROM sqlite_master WHERE lower({_CUT.format('name')}) = lower(?) AND {_TYPE} = 'view'",
            (key[1],))]
        # A view holds no pages. Its triggers (INSTEAD OF) go with it, in the same statement: left for
        # ``_restore``, each was a trigger on a view that was gone when this connection read the schema again,
        # and SQLite refused the whole schema ("no such table: main.rules"), every host write failing with it.
        _unlisted(conn, holders, [key[1]] if holders else [])
        if _made_again(conn, schema[key]):
            made.append(key)
    return made


def _tables_made_said(made: list[tuple[str, str]]) -> list[str]:
    return [f"made again, empty, a table a process with the database file had taken away (the sealed audit log "
            f"keeps what its rows recorded): {_named(made)}"] if made else []


def _recorded(conn: sqlite3.Connection) -> int:
    """The newest version the migration history records (0: none, or no history table to read)."""
    try:
        return int(conn.execute(f"SELECT coalesce(max(version), 0) FROM {HISTORY_TABLE}").fetchone()[0])
    except (sqlite3.OperationalError, TypeError, ValueError):
        if not conn.in_transaction:
            raise
        return 0


def _every_table(known: tuple[Migration, ...]) -> set[tuple[str, str]]:
    """The tables any of ``known`` makes, at whatever version: never the guard's to drop.

    The version the guard holds the file to is ``PRAGMA user_version``, which a sidecar sets as it likes. Set
    to 2 (and the history rows past it deleted), the open's migration 3 ran under the guard at version 2,
    which dropped the audit log (it declares a foreign key, and migration 2 makes no such table) with every
    entry in it; migration 3 then made it again, empty."""
    return {key for key in expected_schema(known, len(known)) if key[0] == "table"}


def _linked_tables(conn: sqlite3.Connection, unmade: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The tables no migration made that declare a foreign key.

    The host's connections enforce foreign keys, and SQLite checks a key in the writes to the table it
    references as well as to the table declaring it: ``CREATE TABLE x (a REFERENCES audit_log (action))``,
    one plain statement, made every decision and revocation fail ("foreign key mismatch"), the referenced
    column being no key. A table of no reference is left: nothing the host runs reads or writes it.
    """
    return sorted(key for key in unmade if key[0] == "table" and conn.execute(
        "SELECT 1 FROM pragma_foreign_key_list(?)", (key[1],)).fetchone() is not None)


class _Taken(NamedTuple):
    """What ``_taken_out`` took out, for ``_made_again_said``."""
    foreign: list[tuple[str, str]]  # what no migration made, triggers, indexes and keyed tables
    differing: list[tuple[str, str]]  # a migration's trigger or index of other text (made again later)
    changed: list[tuple[str, str]]  # those of them that differ in more than layout
    unused: bool  # an index's or table's pages were left unused


def _taken_out(conn: sqlite3.Connection, rows: dict[tuple[str, str], tuple[int, str]],
               expected: dict[tuple[str, str], str], tables: list[tuple[str, str]],
               table_rows: dict[tuple[str, str], tuple[int, str]]) -> _Taken:
    live = {key: sql for key, (_, sql) in rows.items()}
    foreign = sorted(live.keys() - expected.keys())
    # Made again on any difference of text: a run of spaces inside a string literal is not layout. Said only
    # where more than layout differs (a database made by an older release may keep a trigger's text laid out
    # as its migration file then was).
    differing = sorted(key for key in live.keys() & expected.keys() if live[key] != expected[key])
    changed = [key for key in differing if layout_aside(live[key]) != layout_aside(expected[key])]
    # An index or table whose pages are its own is dropped, its pages freed (a sidecar's plain CREATE INDEX, a
    # migration's index laid out as an older release's file was). Everything else goes by its schema rows
    # (``_unlisted``), triggers included: they hold no pages.
    # SQLite will DROP no table it reserves (``sqlite_...``). A table taken out by its rows takes every row
    # naming it along, its indexes too: none may be left to a table that is gone.
    own = _pages_their_own(conn, [name for kind, name in foreign + differing + tables if kind != "trigger"])
    # A constraint index's row (no CREATE) is bound to its table by its name, as SQLite loads it, whatever its
    # tbl_name says; SQLite's DROP TABLE deletes rows by tbl_name. One with a lying tbl_name was left by the
    # DROP, bound to nothing (every later command: "orphan index", told to restore a backup), or would take
    # a migration table's row along: such tables go by their rows, each row by its binding.
    bound_to = [(str(table), str(name)) for table, name in conn.execute(
        "SELECT t.value, lower(list.name) FROM json_each(?) AS t, pragma_index_list(t.value) AS list",
        (json.dumps([name for _, name in tables]),))]
    bound = [name for _, name in bound_to]
    lying = {str(name) for (name,) in conn.execute(
        f"SELECT {_TABLE} FROM sqlite_master WHERE sql IS NULL AND {_TABLE} IN (SELECT lower(value) FROM "
        f"json_each(:tables)) AND lower({_CUT.format('name')}) NOT IN (SELECT value FROM json_each(:bound))",
        {"tables": json.dumps([name for _, name in tables]), "bound": json.dumps(bound)})}
    lying |= _referenced(conn, [name for _, name in tables])
    kept_pages = [name for _, name in tables
                  if name.lower().startswith("sqlite_") or name not in own or name.lower() in lying]
    on_them = {rowid for (rowid,) in conn.execute(f"SELECT rowid FROM sqlite_master WHERE {_TABLE} IN "
                                                  "(SELECT lower(value) FROM json_each(?))", (json.dumps(kept_pages),))}
    freed = [key for key in foreign + differing if key[0] == "index" and rows[key][0] not in on_them
             and key[1] in own] + [key for key in tables if key[1] not in kept_pages]
    _unlisted(conn, [rows[key][0] for key in foreign + differing if key not in freed], kept_pages,
              [name for table, name in bound_to if table in kept_pages])  # the others' DROP frees their pages
    # A DROP TABLE first deletes the table's rows, checking the keys of every table that references it: a
    # sidecar's second table keyed to the first, one row in each, made the DROP fail ("FOREIGN KEY constraint
    # failed") and every host write with it. Such tables are all taken out here, so the checks wait (deferred)
    # and are then forgotten: turning the pragma off clears what they counted, nothing of the host's among it
    # (the guard runs first in the transaction).
    conn.execute("PRAGMA defer_foreign_keys = ON")
    try:
        for kind, name in sorted(freed, key=lambda key: key[0] == "table"):  # a table's DROP takes its indexes
            conn.execute(f"DROP {kind.upper()} {_quoted(name)}")
            _row_gone(conn, (rows | table_rows)[kind, name][0], name if kind == "table" else None)
    finally:
        conn.execute("PRAGMA defer_foreign_keys = OFF")
    _unlisted(conn, [], [], bound)  # a dropped table's constraint index rows whose tbl_name the DROP missed
    return _Taken(foreign + tables, differing, changed,
                  any(kind != "trigger" and (kind, name) not in freed for kind, name in foreign + tables))


def _referenced(conn: sqlite3.Connection, tables: list[str]) -> set[str]:
    """Which of ``tables`` (lower case) a table not among them references by a foreign key: a DROP of one
    deletes its rows first, and a migration's table a sidecar rebuilt with 'REFERENCES evil ON DELETE
    CASCADE' (left as it is) had every grant deleted by the guard's DROP of evil. Such a table goes by its
    rows, deleting none. All of them where SQLite cannot say (a table of a module nobody has)."""
    if not tables:
        return set()
    try:
        return {str(name) for (name,) in conn.execute(
            f"SELECT lower(fk.\"table\") FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS fk "
            f"WHERE {_TYPE} = 'table' AND lower(m.name) NOT IN (SELECT lower(value) FROM json_each(?))",
            (json.dumps(tables),))}
    except sqlite3.OperationalError:
        if not conn.in_transaction:
            raise
        return {name.lower() for name in tables}


def _made_again_said(conn: sqlite3.Connection, taken: _Taken, expected: dict[tuple[str, str], str],
                     now: set[tuple[str, str]]) -> list[str]:
    """Make again each migration's trigger and index not there ``now`` (those ``taken`` out as differing among
    them), once the tables are as their migrations made them; what the guard did, said."""
    gone = sorted(expected.keys() - now)
    restored = [key for key in gone if _made_again(conn, expected[key])]
    missing = [key for key in gone if key not in taken.differing]
    done = []
    if taken.foreign:
        unused = " (pages it named are left unused: 'bot-bottle db check' names them)" if taken.unused else ""
        done.append("dropped what no migration made (a process with the database file, such as a sidecar on the "
                    f"mount, added it to run inside bot-bottle's writes): {_named(taken.foreign)}{unused}")
    if taken.changed:
        done.append(f"made again as its migration made it what a process with the database file had changed: "
                    f"{_named(taken.changed)}")
    if missing:
        done.append(f"made again what a process with the database file had dropped: {_named(missing)}")
    unmade = [key for key in gone if key not in restored]
    if unmade:
        done.append(f"could not make again over the rows there now: {_named(unmade)} ('bot-bottle db check' "
                    "reports it)")
    return done


def _unlisted(conn: sqlite3.Connection, rowids: list[int], tables: list[str],
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
    named = f"lower({_CUT.format('name')}) IN (SELECT value FROM json_each(:bound))"
    if not rowids and not tables and conn.execute(f"SELECT 1 FROM sqlite_master WHERE sql IS NULL AND {named}",
                                                  {"bound": json.dumps(list(bound))}).fetchone() is None:
        return
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("DELETE FROM sqlite_master WHERE rowid IN (SELECT value FROM json_each(:rowids)) OR "
                     f"({_TABLE} IN (SELECT lower(value) FROM json_each(:tables)) AND (sql IS NOT NULL OR {named}))"
                     f" OR (sql IS NULL AND {named})",
                     {"rowids": json.dumps(rowids), "tables": json.dumps(tables), "bound": json.dumps(list(bound))})
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        conn.execute(f"PRAGMA schema_version = {version + 1}")  # every other connection reads it again
    finally:
        conn.execute("PRAGMA writable_schema = RESET")  # and this one, before its next statement


def _pages_their_own(conn: sqlite3.Connection, names: list[str]) -> set[str]:
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
    if not _sound(conn):
        return set()
    present = {name for held in holders.values() for name in held}
    own = set()
    for name in names:
        group = {name} | {str(index) for (index,) in conn.execute(
            f"SELECT {_CUT.format('name')} FROM sqlite_master WHERE sql IS NULL AND {_TYPE} = 'index' AND {_TABLE} = "
            "lower(?)", (name,))}
        if name in present and all(held <= group for held in holders.values() if held & group):
            own.add(name)
    return own


def _sound(conn: sqlite3.Connection) -> bool:
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


def _row_gone(conn: sqlite3.Connection, rowid: int, table: str | None) -> None:
    """Delete the sqlite_master row of an index or ``table`` just dropped where the DROP left it.

    SQLite's DROP deletes the row ``WHERE name = <the CREATE's name> AND type = 'index'`` (a table's: by
    ``tbl_name``), as SQL compares text, while it loads a row whose type and name match the CREATE's
    case-blind: a row named 'NOPE' for ``CREATE INDEX nope`` survives the DROP, pointing at the pages it
    freed, and the file is malformed for every process after the commit.
    """
    if conn.execute(f"SELECT 1 FROM sqlite_master WHERE rowid = ? OR {_TABLE} = lower(?)",
                    (rowid, table)).fetchone() is None:
        return
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(f"DELETE FROM sqlite_master WHERE rowid = ? OR {_TABLE} = lower(?)", (rowid, table))
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def _made_again(conn: sqlite3.Connection, sql: str) -> bool:
    """Run one migration's CREATE: True if it took; False where the rows no longer allow it, such as a UNIQUE
    index over rows a sidecar duplicated (SQLite undoes the one statement and the transaction goes on)."""
    try:
        conn.execute(sql)
    except sqlite3.DatabaseError:
        if not conn.in_transaction:
            raise  # an error that ended the whole transaction: nothing of this write can go on
        return False
    return True


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _named(keys: list[tuple[str, str]]) -> str:
    """``trigger "a", index "b" and 3 more``, each name escaped (a sidecar chose it) and cut short."""
    said = [f"{kind} {_escaped(name)}" for kind, name in keys[:NAMES_SAID]]
    more = f" and {len(keys) - NAMES_SAID} more" if len(keys) > NAMES_SAID else ""
    return ", ".join(said) + more


def _escaped(name: str) -> str:
    shown = name[:NAME_CHARS].encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in shown)
    return f'"{shown}"' + ("..." if len(name) > NAME_CHARS else "")
