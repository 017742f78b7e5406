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

A migration's table whose CREATE was rewritten over the same storage (a
CHECK of the sidecar's) gets its migration's CREATE back, first
(``schema.table_text``); one rebuilt into other storage is rebuilt as its
migration made it, its rows copied, where dropping the sidecar's can harm
nothing else (``schema.table_rebuild``), and otherwise left and said.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable

from bot_bottle.errors import SchemaTooNew
from bot_bottle.schema.droppable import CUT, TYPE
from bot_bottle.schema.files import Migration, discover
from bot_bottle.schema.state import HISTORY_TABLE, current_version
from bot_bottle.schema.steps import expected_schema
from bot_bottle.schema.table_rebuild import rebuilt
from bot_bottle.schema.table_text import names_back, rewritten
from bot_bottle.schema.taking_out import Taken, numbered_down, repeats_out, taken_out, unlisted

GUARDED_KINDS = ("index", "trigger")
_LIVE = (f"SELECT rowid, {TYPE}, {CUT.format('name')}, sql FROM sqlite_master "
         f"WHERE {TYPE} IN ('index', 'table', 'trigger') AND sql IS NOT NULL")
NAMES_SAID = 5  # names a warning lists before it counts the rest
NAME_CHARS = 60  # of each name said


def _say_on_stderr(message: str) -> None:
    print(f"bot-bottle: warning: {message}", file=sys.stderr, flush=True)


class SchemaGuard:
    """Holds one connection's write transactions to the schema the migrations made (``hold``): their triggers and
    indexes and no others, their tables' CREATEs, no table of a sidecar's that declares a foreign key.

    ``say`` receives each warning (default: a line on stderr) from
    ``committed``; the names in it are escaped for a terminal already, so it
    may print them as they are (a page escapes them again for HTML). A
    process that draws on the terminal (the TUI) sets it to its status line,
    the dashboard to a list on its pages.
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
        self._unmended: list[str] = []  # the last hold's tables left as rebuilt, said (``rolled_back``)

    def hold(self, conn: sqlite3.Connection) -> list[str]:
        """In the caller's write transaction (the write lock held): take out what no migration made, write back
        or make again what differs or is missing; return what it did, for ``committed`` once the transaction is
        (``[]``: nothing)."""
        live = conn.execute(_LIVE).fetchall()
        if live == self._good:
            return []
        repeated = repeats_out(conn)
        if numbered_down(conn) or repeated:
            live = conn.execute(_LIVE).fetchall()
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
        spelled = names_back(conn, rows, schema)  # first: everything below goes by the names
        if spelled:
            rows = _keyed(conn.execute(_LIVE).fetchall())
        # What no migration made goes first, and what differs from its migration's (made again last): the
        # tables' write-back below has the connection read the schema again, and a sidecar's index on a
        # generated VIRTUAL column it had written into the audit log's CREATE, still there then, named a column
        # gone, so SQLite refused the whole schema and every host write failed ("no such column: v").
        # The keyed tables go after the write-back: a DROP TABLE deletes the rows first, and a migration
        # table's CREATE the sidecar had given 'REFERENCES evil ON DELETE CASCADE' had that delete its rows.
        taken = taken_out(conn, {key: row for key, row in rows.items() if key[0] in GUARDED_KINDS}, expected, [],
                           rows)
        tables_said, tables_left = rewritten(conn, rows, schema)
        rows = _keyed(conn.execute(_LIVE).fetchall())
        linked = taken_out(conn, {}, {}, _linked_tables(conn, rows.keys() - schema.keys() - _every_table(known)),
                            rows)
        # Rebuilt once the keyed tables are gone: none of a sidecar's may then reference one (its DROP deletes
        # the rows first). Their triggers and indexes go with them, made again below as the others are.
        before = {key for key in _keyed(conn.execute(_LIVE).fetchall()) if key[0] in GUARDED_KINDS}
        versions = [expected_schema(known, at) for at in range(1, len(known) + 1)] if tables_left else []
        tables_rebuilt, tables_left_why = rebuilt(conn, tables_left, schema, versions)
        tables_made = _tables_made_again(conn, rows, schema)
        now = {key for key in _keyed(conn.execute(_LIVE).fetchall()) if key[0] in GUARDED_KINDS}
        self._unmended = _tables_left_said(tables_left_why)
        done = _repeats_said(repeated) + _tables_done(spelled, tables_said, tables_rebuilt) + \
            self._unmended + _tables_made_said(tables_made) + \
            _made_again_said(conn, taken._replace(foreign=taken.foreign + linked.foreign,
                                                  unused=taken.unused or linked.unused), expected, now, before)
        self._good = conn.execute(_LIVE).fetchall()
        return done

    def committed(self, done: list[str]) -> None:
        """Say what ``hold`` did, now that its transaction committed (a rolled-back one did nothing)."""
        self._unmended = []
        for line in done:
            self.say(line)

    def rolled_back(self) -> None:
        """Say, of a write that failed after ``hold``, the tables it had to leave as a process with the file
        rebuilt them: what the write's error is most likely about (a CHECK of the sidecar's refusing a
        revocation). What it did besides went with the rollback, and the next write does it again."""
        unmended, self._unmended = self._unmended, []
        for line in unmended:
            self.say(line)


def _repeats_said(repeats: list[tuple[str, str]]) -> list[str]:
    return [f"took out schema rows repeating the name of one before them, which SQLite skips (a process with the "
            f"database file wrote them to hide what is under that name): {_named(repeats)}"] if repeats else []


def _keyed(live: list[tuple[int, str, str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
    return {(kind, name): (rowid, sql) for rowid, kind, name, sql in live}


def _tables_done(spelled: list[tuple[str, str]], said: list[tuple[str, str]],
                 rebuilt_again: list[tuple[str, str]]) -> list[str]:
    done = []
    if spelled:
        done.append(f"wrote back as its migration named it the name or type of a table a process with the database "
                    f"file had spelled otherwise (its rows kept): {_named(spelled)}")
    if said:
        done.append(f"wrote back as its migration made it the CREATE of a table a process with the database file "
                    f"had changed (its rows kept): {_named(said)}")
    if rebuilt_again:
        done.append(f"rebuilt as its migration made it a table a process with the database file had rebuilt into "
                    f"other columns (its rows copied, its own columns and constraints gone): {_named(rebuilt_again)}")
    return done


def _tables_left_said(left: list[tuple[tuple[str, str], str]]) -> list[str]:
    return [f"left as it is a table a process with the database file rebuilt into other columns than its "
            f"migration's: {_named([key])}, as {_printable(why)} ('bot-bottle db check' reports it)"
            for key, why in left]


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
            f"SELECT rowid FROM sqlite_master WHERE lower({CUT.format('name')}) = lower(?) AND {TYPE} = 'view'",
            (key[1],))]
        # A view holds no pages. Its triggers (INSTEAD OF) go with it, in the same statement: left for
        # ``_restore``, each was a trigger on a view that was gone when this connection read the schema again,
        # and SQLite refused the whole schema ("no such table: main.rules"), every host write failing with it.
        unlisted(conn, holders, [key[1]] if holders else [])
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


def _made_again_said(conn: sqlite3.Connection, taken: Taken, expected: dict[tuple[str, str], str],
                     now: set[tuple[str, str]], before: set[tuple[str, str]]) -> list[str]:
    """Make again each migration's trigger and index not there ``now`` (those ``taken`` out as differing among
    them, and those there ``before`` the tables were rebuilt), once the tables are as their migrations made
    them; what the guard did, said."""
    gone = sorted(expected.keys() - now)
    restored = [key for key in gone if _made_again(conn, expected[key])]
    missing = [key for key in gone if key not in taken.differing and key not in before]
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


def _named(keys: list[tuple[str, str]]) -> str:
    """``trigger "a", index "b" and 3 more``, each name escaped (a sidecar chose it) and cut short."""
    said = [f"{kind} {_escaped(name)}" for kind, name in keys[:NAMES_SAID]]
    more = f" and {len(keys) - NAMES_SAID} more" if len(keys) > NAMES_SAID else ""
    return ", ".join(said) + more


def _escaped(name: str) -> str:
    return f'"{_printable(name[:NAME_CHARS])}"' + ("..." if len(name) > NAME_CHARS else "")


def _printable(text: str) -> str:
    """``text`` in printable ASCII, anything else as its escape."""
    shown = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in shown)
