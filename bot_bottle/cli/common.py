"""What every CLI verb shares: the ``--db`` and ``--json`` options and output helpers."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bot_bottle.db import resolve_db_path
from bot_bottle.errors import CannotOpenDatabase
from bot_bottle.records import SHORT_ID_LENGTH
from bot_bottle.text import terminal
from bot_bottle.timestamps import moment_of

# Exit statuses, the same for every verb (README, "Exit status"; each leaf verb's --help lists them).
EXIT_OK = 0
EXIT_FAILED = 1  # it did not happen: the error line says why
EXIT_USAGE = 2  # refused: the command line, or what it asked for, was not valid; nothing was done
EXIT_CANCELLED = 3  # you answered no (or nothing) at a confirmation: nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it): nothing more was done

EXIT_STATUS_HELP = """\
exit status:
  0    done
  1    failed: one line on stderr says why
  2    refused: the command line, or what it asked for, was not valid (a
       malformed argument, a reason left out where one is needed, a routes
       file that cannot be recorded); one line on stderr says why, nothing
       was done
  3    cancelled at a confirmation: nothing was done
  130  interrupted (Ctrl-C)"""


def leaf_epilog(*examples: tuple[str, str]) -> str:
    """A leaf verb's --help ending: its examples (command, what it does), then the exit statuses."""
    width = max(len(command) for command, _ in examples)
    lines = ["examples:", *(f"  {command.ljust(width)}  {what}" for command, what in examples), "", EXIT_STATUS_HELP]
    return "\n".join(lines) + "\n"


def confirm(question: str, why_typed: str = "", ask: Callable[[str], str] = input) -> bool:
    """Ask ``question`` on a terminal; True for ``y`` or ``yes`` (the one confirmation word everywhere).

    With ``why_typed`` (approving reaches more than it reads as, and why),
    only the whole word ``yes`` records, as the TUI's and the dashboard's
    second ask: a reflex ``y`` does not. ``ask`` prints the prompt and reads
    the answer (``input``; another terminal's, where stdin holds a file).
    EOF is no; Ctrl-C propagates (the verb exits 130).
    """
    prompt = f"{question} {why_typed}: type yes to record it, anything else cancels: " if why_typed \
        else f"{question} [y/N] "
    try:
        answer = ask(prompt)
    except EOFError:
        return False
    return answer.strip().lower() == "yes" if why_typed else answer.strip().lower() in ("y", "yes")


def db_file(text: str) -> Path:
    """argparse type of ``--db``: the path, a leading ``~`` expanded as a shell would (``--db=~/copy.db`` is not
    expanded by one, and would otherwise make a directory named ``~`` in the current one)."""
    return Path(text).expanduser()


def add_db_option(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--db PATH``: the database to use (default: the host database); also accepted before the verb."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=db_file,
        # SUPPRESS: when not given here, the value from before the verb (or None) stands.
        default=argparse.SUPPRESS,
        help=help or "database file to use (default: ~/.bot-bottle/db/bot-bottle.db)",
    )


def _parent(add: Any) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    add(parent)
    return parent


def verb_parser(subparsers: Any, name: str, *args: Any, json: bool = False, **kwargs: Any) -> argparse.ArgumentParser:
    """A verb's parser with the options every verb shares: ``--db``, and ``--json`` where ``json``.

    The shared options come from parent parsers, defined once here.
    """
    parents = [DB_OPTION, JSON_OPTION] if json else [DB_OPTION]
    return subparsers.add_parser(name, *args, parents=parents, **kwargs)  # type: ignore[no-any-return]


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print machine-readable JSON instead of text."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


DB_OPTION = _parent(add_db_option)
JSON_OPTION = _parent(add_json_option)


MAX_COUNT = 1_000_000_000  # more rows than any listing could show; SQLite's own limit is 2**63 - 1
MAX_VERSION = 9999  # migrations are numbered with four digits


def _whole_number(text: str, minimum: int, maximum: int, what: str) -> int:
    if len(text) > 30:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}... is not {what}")
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more")
    if value > maximum:
        raise argparse.ArgumentTypeError(f"must be {maximum} or less")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535."""
    return _whole_number(text, 0, 65535, "a port number")


def positive_int(text: str) -> int:
    """argparse type: a whole number from 1 to ``MAX_COUNT``."""
    return _whole_number(text, 1, MAX_COUNT, "a whole number")


def version_number(text: str) -> int:
    """argparse type: a schema version, 0 to 9999."""
    return _whole_number(text, 0, MAX_VERSION, "a version number")


def db_path(args: argparse.Namespace, *, create: bool = False, findings: bool = False) -> Path:
    """The database path the command works on.

    A ``--db`` the user named must be an existing file unless ``create`` (the
    verbs that create a database): a mistyped path is an error, never a new
    empty database; and never a device or a FIFO, unless ``findings`` (doctor
    reports what is there). The host database is created on first use.
    """
    given = getattr(args, "db", None)
    path = resolve_db_path(given)
    if given is not None and not findings and path.exists() and not path.is_file() and not path.is_dir():
        # A device or a FIFO (--db /dev/null): SQLite would fail on it, or leave a journal beside it (/dev).
        raise CannotOpenDatabase(f"--db {path} is not a regular file, so not a database file: point --db at one")
    if given is not None and not create:
        if path.is_dir():
            raise CannotOpenDatabase(f"--db {path} is a directory, not a database file")
        if not path.exists():
            raise CannotOpenDatabase(
                f"--db {path}: no database there. Check the path, or create one with "
                f"'bot-bottle db upgrade --db {path}'"
            )
    return path


def warn(message: str) -> None:
    """Say something the command went on despite, in one line on stderr (``bot-bottle: warning: ...``,
    sanitized as ``fail``'s)."""
    print(f"bot-bottle: warning: {terminal.clean_line(message)}", file=sys.stderr)


def fail(message: str, status: int = 1) -> int:
    """Say what went wrong in one line on stderr (``bot-bottle: error: ...``, sanitized); returns ``status``.

    Every error line the CLI prints goes through here: messages can quote
    input, which never reaches the terminal raw.
    """
    # What was printed first comes first, also where stdout and stderr go to one file (doctor's report, then
    # "doctor found errors (see above)"): stdout is block-buffered there, and stderr is not.
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # its reader went away (| head): the failure is still this command's status
        drop_stdout()
    # On one line too, so a stored field with a newline cannot add a line that reads as our own.
    print(f"bot-bottle: error: {terminal.clean_line(message)}", file=sys.stderr)
    return status


def stdout_takes_unicode() -> bool:
    """True when stdout's encoding holds every character (UTF-8); a Latin-1 or ASCII locale's does not."""
    try:
        return codecs.lookup(getattr(sys.stdout, "encoding", None) or "utf-8").name.startswith("utf")
    except LookupError:
        return False


def drop_stdout() -> None:
    """stdout's reader went away: point stdout at /dev/null, so no later flush (the interpreter's last one
    included) fails again and prints a traceback."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (every character outside ASCII escaped where stdout's encoding
    cannot hold it, so the JSON stays exact in any locale)."""
    text = json.dumps(value, indent=2, ensure_ascii=not stdout_takes_unicode())
    sys.stdout.write(terminal.json_for_terminal(text) + "\n")


def styled_output(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stdout) is a terminal that takes our styling (not ``TERM=dumb``, no ``NO_COLOR``)."""
    out = stream or sys.stdout
    return out.isatty() and os.environ.get("TERM") != "dumb" and "NO_COLOR" not in os.environ


def terminal_columns() -> int | None:
    """The width of the terminal stdout writes to, or None when stdout is not a terminal."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


class Shown(str):
    """A screen line that carries its role, for colour: ``added``, ``removed``, ``hunk``, ``warning``.

    A ``str`` in every other way, so whatever does not colour treats it as text.
    """

    role: str

    def __new__(cls, text: str, role: str = "") -> Shown:
        """``text`` with ``role``."""
        line = super().__new__(cls, text)
        line.role = role
        return line


# ANSI SGR parameters by role and by decision status; only ever our own text's colour.
ROLE_STYLES = {"added": "32", "removed": "31", "hunk": "36", "warning": "1;33", "heading": "1", "dim": "2"}
STATUS_STYLES = {"approved": "32", "modified": "33", "rejected": "31", "pending": "36", "operator-edit": "35"}


def print_untrusted(text: str | Sequence[str], *, page: bool = False) -> None:
    """Print text that holds anything an agent wrote, through the sanitizer.

    A string is split at newlines; a sequence is taken as the screen lines
    themselves, each shown as one line (a newline inside one is escaped), and
    coloured by its role (``Shown``) on a terminal that takes colour.

    Unsafe characters show as styled escapes; on a terminal, a line longer than
    the screen wraps here with a continuation mark, rather than at the
    terminal's edge where its tail could pass for a line of its own. With
    ``page``, output taller than the terminal goes through ``$PAGER``.
    """
    styled = styled_output()
    columns = terminal_columns()
    items: Sequence[str] = text.replace("\r\n", "\n").split("\n") if isinstance(text, str) else text
    rows: list[str] = []
    for item in items:
        one = terminal.line(item)
        style = ROLE_STYLES.get(getattr(item, "role", ""), "")
        if style:
            one = terminal.coloured(one, style)
        for row in terminal.wrap(one, columns) if columns else [one]:
            rows.append(terminal.ansi(row, styled))
    emit(rows, page=page)


def emit(rows: Sequence[str], *, page: bool = False) -> None:
    """Write finished output rows; through ``$PAGER`` (default ``less -R``) when asked and they overflow a terminal.

    A pager that cannot start is skipped: the rows are printed as they are.
    """
    height = shutil.get_terminal_size().lines if sys.stdout.isatty() else 0
    if page and height and len(rows) >= height:
        command = shlex.split(os.environ.get("PAGER") or "less -R")
        env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
        try:
            pager = subprocess.Popen(command, stdin=subprocess.PIPE, text=True, encoding="utf-8", env=env)
        except OSError:
            pass
        else:
            assert pager.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                pager.stdin.write("\n".join(rows) + "\n")
                pager.stdin.close()
            pager.wait()
            return
    for row in rows:
        print(row)


def piped() -> bool:
    """True when stdout is not a terminal (a pipe or a file): output is for a program, whole and plain."""
    return not sys.stdout.isatty()


def cell_text(text: str) -> str:
    """What a table shows of a free text (a justification, a note): its first line on a terminal, all of it
    when piped (a script wants the whole text; the table escapes its newlines)."""
    return text if piped() else first_line(text)


# A terminal narrower than this leaves out a table's ``narrow_drop`` columns (the tool, a proposal's age), as the
# TUI's list does (``render.TOOL_FROM_WIDTH``): at 60 columns 'proposals list' cut what approving grants to 5.
NARROW_BELOW = 100
# A table's bottle column is cut to this many columns on a terminal, as the TUI's grants and rules views cut it:
# a slug may be 64 characters, and sized to its longest cell the column left every row's grants none at 80.
BOTTLE_COLUMNS = 16


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str | terminal.Line]], *, last_width: int = 60,
    status_column: int | None = None, page: bool = False, narrow_drop: Sequence[int] = (),
    bottle_column: int | None = None,
) -> None:
    """Print rows of untrusted text under headers in aligned display columns.

    Cells are sanitized (one line each); a cell given as a ``terminal.Line``
    was built (and sanitized) by the caller, with its own styles. The last
    column is cut to ``last_width`` columns and not padded. On a terminal
    each row is cut to the screen's width with a marker, so no row wraps into
    something that looks like another row; the ``status_column`` is coloured
    by its value. On a terminal narrower than ``NARROW_BELOW`` the columns
    numbered in ``narrow_drop`` are left out, so that those after them keep
    their room; piped, every column is printed. On a terminal the
    ``bottle_column`` is cut to ``BOTTLE_COLUMNS``: one bottle's long slug
    (a sidecar on the mount files under any it writes) widened the column
    for every row, and pushed every other bottle's grants off the screen.
    """
    if piped():
        for texts in [headers, *rows]:
            print("\t".join(terminal.plain(terminal.line(text) if isinstance(text, str) else text) for text in texts))
        return
    keep = list(range(len(headers)))  # the columns shown, by their number in ``headers``
    if narrow_drop and (terminal_columns() or NARROW_BELOW) < NARROW_BELOW:
        keep = [index for index in keep if index not in narrow_drop]
        headers, rows = [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]
        status_column = keep.index(status_column) if status_column in keep else None
    table = [[terminal.line(h) for h in headers]]
    table += [[terminal.line(cell) if isinstance(cell, str) else cell for cell in row] for row in rows]
    if bottle_column is not None and bottle_column in keep:
        shown_at = keep.index(bottle_column)
        for row in table:
            row[shown_at] = terminal.fit(row[shown_at], BOTTLE_COLUMNS)
    for row in table:
        row[-1] = terminal.fit(row[-1], last_width)
    widths = [max(terminal.width(row[i]) for row in table) for i in range(len(headers))]
    styled = styled_output()
    columns = terminal_columns()
    lines = []
    for number, row in enumerate(table):
        cells: terminal.Line = []
        for index, cell in enumerate(row):
            if index:
                cells.append(terminal.Segment("  "))
            shown = cell if index == len(row) - 1 else terminal.pad(cell, widths[index])
            if number and index == status_column and terminal.plain(cell) in STATUS_STYLES:
                shown = terminal.coloured(shown, STATUS_STYLES[terminal.plain(cell)])
            cells += shown
        line = _rstrip(cells)
        lines.append(terminal.ansi(terminal.fit(line, columns) if columns else line, styled))
    emit(lines, page=page)


def _rstrip(cells: terminal.Line) -> terminal.Line:
    while cells and not cells[-1].escaped and not cells[-1].text.strip():
        cells = cells[:-1]
    if cells and not cells[-1].escaped:
        last = cells[-1]
        cells = [*cells[:-1], terminal.Segment(last.text.rstrip(), False, last.style)]
    return cells


def counted(count: int, noun: str, nouns: str) -> str:
    """``1 entry``, ``0 entries``, ``3 entries``: a count with its noun as a person writes it."""
    return f"{count} {noun if count == 1 else nouns}"


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (raw: sanitize it where it is shown)."""
    for line in text.split("\n"):
        # Only plain blanks: str.strip() would also drop control characters the operator should see.
        if line.strip(" \t\r"):
            return line.strip(" \t\r")
    return ""


UNREADABLE = "unreadable"


def age(timestamp: str, now: datetime | None = None) -> str:
    """How long ago a stored UTC timestamp was, shortly: ``42s``, ``7m``, ``3h``, ``2d``.

    ``unreadable`` for text that is not a stored time: a sidecar can write
    any text into the file, and every screen must still show the row.
    """
    moment = moment_of(timestamp)
    if moment is None:
        return UNREADABLE
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_RULE_ACTOR = re.compile(r"rule [0-9a-f]{32}")


def shown_actor(actor: str) -> str:
    """Who decided, as every list names them: a standing rule by its short id (``rule 0c1e98b5``), as 'grants
    list' and 'rules list' show it, not by all 32 digits (the audit log's own ``actor``; ``--json`` keeps it)."""
    return actor[:5 + SHORT_ID_LENGTH] if _RULE_ACTOR.fullmatch(actor) else actor
