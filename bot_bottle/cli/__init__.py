"""The ``bot-bottle`` command line: argparse verbs over the database, the queue and the audit log.

``main(argv)`` returns the exit status: 0 on success, 1 on an operational
failure, 2 on a usage error. An expected failure prints one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from bot_bottle import __version__, terminal_text
from bot_bottle.cli import audit_cmds, db_cmds, demo, doctor, proposals_cmds, tui
from bot_bottle.cli.common import db_path
from bot_bottle.connection import translate
from bot_bottle.errors import BotBottleError, ValidationError

_EPILOG = """\
examples:
  bot-bottle demo                     see the whole flow on a throwaway database
  bot-bottle supervise                review and decide, in a terminal UI
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
        text = terminal_text.clean_line(f"{self.prog}: error: {message} (see '{self.prog} --help')")
        self.exit(2, text + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole argparse tree."""
    parser = OneLineErrorParser(
        prog="bot-bottle",
        description="Review what bot-bottle's agents ask for, and keep the record of it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bot-bottle {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    tui.register(verbs)
    proposals_cmds.register(verbs)
    audit_cmds.register(verbs)
    db_cmds.register(verbs)
    demo.register(verbs)
    doctor.register(verbs)
    return parser


def _fail(message: str, status: int) -> int:
    # Messages can quote input (an id, a file's line, what someone else decided): never raw to the terminal.
    print(f"bot-bottle: error: {terminal_text.clean(message)}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        return _fail(str(exc), 2)
    except BotBottleError as exc:
        return _fail(str(exc), 1)
    except sqlite3.Error as exc:
        return _fail(str(translate(exc, db_path(args))), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (| head): not an error worth a traceback.
        sys.stderr.close()
        return 1
