"""What every CLI verb shares: the ``--db`` and ``--json`` options and output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot_bottle.db import resolve_db_path
from bot_bottle.records import TIMESTAMP_FORMAT


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """``--db PATH``: the database to use (default: the host database)."""
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=Path,
        default=None,
        help="database file to use (default: ~/.bot-bottle/db/bot-bottle.db)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print machine-readable JSON instead of text."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _whole_number(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    return _whole_number(text, 1, "a whole number")


def version_number(text: str) -> int:
    """argparse type: a schema version, 0 or more."""
    return _whole_number(text, 0, "a version number")


def db_path(args: argparse.Namespace) -> Path:
    """The database path the command works on."""
    return resolve_db_path(getattr(args, "db", None))


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows under headers in aligned columns (the last column is not padded)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [list(headers), *[list(r) for r in rows]]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])] + [line[-1]]
        print("  ".join(cells).rstrip())


def first_line(text: str, width: int = 60) -> str:
    """The first non-blank line of ``text``, cut to ``width`` characters."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return ""


def age(timestamp: str, now: datetime | None = None) -> str:
    """How long ago a stored UTC timestamp was, shortly: ``42s``, ``7m``, ``3h``, ``2d``."""
    moment = datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
