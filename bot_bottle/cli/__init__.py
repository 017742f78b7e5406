"""The ``bot-bottle`` command line: argparse verbs over the database, the queue and the audit log.

``main(argv)`` returns the exit status: 0 on success, 1 on an operational
failure, 2 on a usage error. An expected failure prints one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bot_bottle import __version__
from bot_bottle.cli.common import fail
from bot_bottle.cli.registry import VERBS
from bot_bottle.connection import translate
from bot_bottle.db import resolve_db_path
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.text import terminal

_EPILOG = """\
examples:
  bot-bottle demo                     see the whole flow on a throwaway database
  bot-bottle supervise                review and decide, in a terminal UI
  bot-bottle dashboard                the same in a browser (a local page; open the URL it prints)
  bot-bottle bottles list             which bottles run, which went silent, what each waits for
  bot-bottle proposals list           what every bottle is waiting on
  bot-bottle proposals approve 3f2a   approve one (any unique id prefix)
  bot-bottle audit verify             check that the audit log is whole
  bot-bottle db status                the database's path and schema version
  bot-bottle doctor                   is the database, and the filesystem under it, safe?

Every verb takes --db PATH (default: ~/.bot-bottle/db/bot-bottle.db) and --help.
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        text = terminal.clean_line(f"{self.prog}: error: {message} (see '{self.prog} --help')")
        self.exit(2, text + "\n")


def build_parser(verb: str | None = None, *, every: bool = True) -> argparse.ArgumentParser:
    """The argparse tree: every verb listed, with ``verb``'s own arguments (every verb's when ``every``)."""
    parser = OneLineErrorParser(
        prog="bot-bottle",
        description="Review what bot-bottle's agents ask for, and keep the record of it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"bot-bottle {__version__}")
    parser.add_argument("--db", metavar="PATH", type=Path, default=None,
                        help="database file to use, for any verb (default: ~/.bot-bottle/db/bot-bottle.db)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, summary) in VERBS.items():
        if every or name == verb:
            importlib.import_module(module).register(verbs)
        else:
            verbs.add_parser(name, help=summary)
    return parser


def _verb_in(argv: Sequence[str]) -> str | None:
    """The verb named on the command line (the first word that is not an option or --db's value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--db":
            skip = True
        elif not word.startswith("-"):
            return word if word in VERBS else None
    return None


def _with_option_names(exc: ValidationError, args: argparse.Namespace) -> str:
    """The message with the field named as the option the user typed (``notes`` -> ``--reason``)."""
    option = getattr(args, "field_options", {}).get(exc.field)
    if option is None and exc.field in vars(args) and exc.field not in ("db", "verb", "handler"):
        option = "--" + exc.field.replace("_", "-")
    message = str(exc)
    if option and message.startswith(f"{exc.field}: "):
        return f"{option}: {message[len(exc.field) + 2:]}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_verb_in(words), every=False)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.verb is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        return fail(_with_option_names(exc, args), 2)
    except BotBottleError as exc:
        return fail(str(exc), 1)
    except sqlite3.Error as exc:
        return fail(str(translate(exc, resolve_db_path(args.db))), 1)
    except PermissionError as exc:
        return fail(f"permission denied: {exc.filename or exc.strerror} (this user cannot reach it: run as the "
                     "user who owns it, or choose another --db)", 1)
    except OSError as exc:
        return fail(f"{exc.filename or 'the system'}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (| head): not an error worth a traceback.
        sys.stderr.close()
        return 1
