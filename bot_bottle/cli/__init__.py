"""The ``bot-bottle`` command line: argparse verbs over the database, the queue and the audit log.

``main(argv)`` returns the exit status (``cli.common``: 0 done, 1 failed, 2
usage, 3 cancelled at a confirmation, 130 interrupted). An expected failure
prints one line on stderr, never a traceback; a usage error names the verb
whose ``--help`` says more and, for a mistyped verb or option, the nearest
one. A reader that goes away (``| head``) ends the command quietly, with 0.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import re
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from bot_bottle import __version__
from bot_bottle.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, db_file, drop_stdout, fail
from bot_bottle.cli.examples import finish_help
from bot_bottle.cli.registry import VERBS
from bot_bottle.connection import translate
from bot_bottle.db import resolve_db_path
from bot_bottle.errors import BotBottleError, NotFound, ValidationError
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

Every verb takes --help and --db PATH (default: ~/.bot-bottle/db/bot-bottle.db), but prepare,
which works on the host database.
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), pointing at ``--help``, with the nearest
    verb or option when one was mistyped."""

    _words: Sequence[str] = ()

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's, keeping the words this parser was given, for ``error`` to name a mistyped option."""
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2.

        A required option said to be missing where an option this parser
        does not know was given (``--reson``) is said as that typo, with the
        nearest option: the cause, where argparse names only the effect.
        """
        required = message.removeprefix("the following arguments are required: ")
        missing_options = required != message and all(name.startswith("-") for name in required.split(", "))
        typo = self._unknown_option() if missing_options else None  # (a missing VERB keeps its list of verbs)
        if typo is not None:
            message = f"unrecognized arguments: {typo}"
        text = terminal.clean_line(f"{self.prog}: error: {message}{self._nearest(message)}{self._verbs(message)} "
                                   f"(see '{self.prog} --help')")
        self.exit(EXIT_USAGE, text + "\n")

    def _unknown_option(self) -> str | None:
        """The first word given that reads as an option this parser does not know (nor abbreviates), if any."""
        known = [option for action in self._actions for option in action.option_strings]
        for word in self._words:
            if word == "--":
                return None
            name = word.split("=", 1)[0]
            if name.startswith("-") and len(name) > 1 and not name[1:].replace(".", "").isdigit() and not any(
                    option == name or (self.allow_abbrev and name.startswith("--") and option.startswith(name))
                    for option in known):
                return word
        return None

    def _verbs(self, message: str) -> str:
        """``: one of list, show, ...`` when a group was given without its verb (``bot-bottle proposals``)."""
        if not message.startswith("the following arguments are required: VERB"):
            return ""
        groups = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        return f" (one of: {', '.join(groups[0].choices)})" if groups else ""

    def _nearest(self, message: str) -> str:
        """``; did you mean 'X'?`` for an unknown choice or option close to a real one."""
        choice = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            known = re.findall(r"'([^']*)'", choice.group(2))
            close = difflib.get_close_matches(choice.group(1), known, n=1, cutoff=0.6)
        else:
            unknown = re.match(r"unrecognized arguments: (\S+)", message)
            known = [option for action in self._actions for option in action.option_strings]
            close = difflib.get_close_matches(unknown.group(1).split("=")[0], known, n=1, cutoff=0.6) \
                if unknown else []
        return f"; did you mean '{close[0]}'?" if close else ""

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse's, but words left over are refused by the verb that was given them (its --help, its
        options), not by the top-level parser."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            _leaf(self, list(args or []), parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _leaf(parser: argparse.ArgumentParser, words: list[str], parsed: argparse.Namespace) -> OneLineErrorParser:
    """The innermost (sub)parser the command line reached (``bot-bottle proposals list``)."""
    current = parser
    while True:
        subparsers = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = None
        if subparsers:
            value = getattr(parsed, subparsers[0].dest or "", None)
            if isinstance(value, str) and value in subparsers[0].choices:
                chosen = subparsers[0].choices[value]
        if chosen is None:
            assert isinstance(current, OneLineErrorParser)
            return current
        current = chosen


def build_parser(verb: str | None = None, *, every: bool = True) -> argparse.ArgumentParser:
    """The argparse tree: every verb listed, with ``verb``'s own arguments (every verb's when ``every``)."""
    parser = OneLineErrorParser(
        prog="bot-bottle",
        description="Review what bot-bottle's agents ask for, and keep the record of it.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"bot-bottle {__version__}")
    parser.add_argument("--db", metavar="PATH", type=db_file, default=None,
                        help="database file to use, for any verb but prepare (default: "
                        "~/.bot-bottle/db/bot-bottle.db)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, summary) in VERBS.items():
        if every or name == verb:
            importlib.import_module(module).register(verbs)
        else:
            verbs.add_parser(name, help=summary)
    finish_help(parser)
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


def _with_option_names(exc: ValidationError, args: argparse.Namespace, positionals: set[str]) -> str:
    """The message with the field named as the user typed it (``notes`` -> ``--reason``; a positional
    argument by its name in the usage line: ``ID``)."""
    option = getattr(args, "field_options", {}).get(exc.field)
    if option is None and exc.field in vars(args) and exc.field not in ("db", "verb", "handler"):
        option = exc.field.upper() if exc.field in positionals else "--" + exc.field.replace("_", "-")
    message = str(exc)
    if option and message.startswith(f"{exc.field}: "):
        return f"{option}: {message[len(exc.field) + 2:]}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    _escape_what_the_locale_cannot_hold()
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_verb_in(words), every=False)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.verb is None:
        parser.print_help()
        return EXIT_OK
    try:
        return _flushed(int(args.handler(args)))
    except ValidationError as exc:
        leaf = _leaf(parser, words, args)
        positionals = {action.dest for action in leaf._actions if not action.option_strings}
        return fail(_with_option_names(exc, args, positionals), EXIT_USAGE)
    except NotFound as exc:  # where it looked: a --db left out (or another's) finds no id the operator just saw
        return fail(f"{exc}; looked in {resolve_db_path(getattr(args, 'db', None))}", 1)
    except BotBottleError as exc:
        return fail(str(exc), 1)
    except sqlite3.Error as exc:
        return fail(str(translate(exc, resolve_db_path(args.db))), 1)
    except BrokenPipeError:
        # Before OSError, whose subclass it is: the reader went away (| head, | true). That is how a pipeline
        # ends, not a failure: quiet, and 0, as a shell's own tools (and gh) do.
        return _reader_gone()
    except PermissionError as exc:
        return fail(f"permission denied: {exc.filename or exc.strerror} (this user cannot reach it: run as the "
                     "user who owns it, or choose another --db)", 1)
    except OSError as exc:
        return fail(f"{exc.filename or 'the system'}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)


def _escape_what_the_locale_cannot_hold() -> None:
    """In a locale whose encoding is not UTF-8 (Latin-1, ASCII), a character it cannot hold (an agent's arrow,
    a look-alike's escape target) is written as its escape (``\\u2192``), the sanitizer's own notation,
    instead of ending the command with a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError):
                stream.reconfigure(errors="backslashreplace")


def _flushed(status: int) -> int:
    """``status``, once what was printed is out (a closed pipe shows here, not at the interpreter's exit)."""
    sys.stdout.flush()
    return status


def _reader_gone() -> int:
    """stdout's reader went away: end quietly (``drop_stdout``), as a pipeline's tools do."""
    drop_stdout()
    return EXIT_OK
