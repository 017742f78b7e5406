"""Every leaf verb's ``--help`` ends with examples and the exit statuses: the examples of those that do not
write their own, and the formatter that wraps descriptions but keeps examples as written.

``finish_help(parser)`` walks the whole argparse tree once it is built
(``cli.build_parser``): a leaf verb without examples in its epilog gets
these, every leaf gets the exit statuses (``cli.common.EXIT_STATUS_HELP``),
and every parser the formatter. tests/cli/test_help.py walks the tree and
holds each leaf to it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from bot_bottle.cli.common import EXIT_STATUS_HELP

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "bottles list": (("bot-bottle bottles list", "every bottle, those waiting on you first"),
                     ("bot-bottle bottles list --json | jq '.[].slug'", "for a script")),
    "bottles show": (("bot-bottle bottles show web-1", "one bottle: its state, pending work and grants"),),
    "bottles routes": (("bot-bottle bottles routes web-1 routes.yaml",
                        "the routes file web-1 runs with, on record as approved"),),
    "proposals list": (("bot-bottle proposals list", "what every bottle has pending, oldest first"),
                       ("bot-bottle proposals list --bottle web-1 --all", "everything web-1 ever filed"),
                       ("bot-bottle proposals list | cut -f1,7",
                        "piped: tab-separated, nothing cut (here: each id and what it grants)")),
    "proposals show": (("bot-bottle proposals show 3f2a", "one proposal, its diff and its digest"),
                       ("bot-bottle proposals show 3f2a --json | jq -r .digest", "the digest, for a script")),
    "grants list": (("bot-bottle grants list", "what every bottle may do now, and for how long"),
                    ("bot-bottle grants list --bottle web-1 --all", "web-1's, ended and revoked ones too")),
    "grants revoke": (("bot-bottle grants revoke 7c1d --reason 'done with the mirror'", "ends it now"),),
    "rules list": (("bot-bottle rules list", "the standing rules in force"),),
    "rules add": (("bot-bottle rules add --bottle web-1 --host docs.python.org --for 30d --notes docs",
                   "approve that route for web-1 for 30 days"),
                  ("bot-bottle rules add --all-bottles --host pastebin.com --reject --notes no",
                   "always reject it, for every bottle")),
    "rules revoke": (("bot-bottle rules revoke 5e2a --reason 'project over'", "ends the rule now"),),
    "config list": (("bot-bottle config list", "the host's settings"),),
    "config set": (("bot-bottle config set pending-ttl 8h", "a proposal not decided in 8 hours expires"),),
    "audit list": (("bot-bottle audit list --bottle web-1 --since 2026-12-01", "web-1's decisions since then"),
                   ("bot-bottle audit list --json | jq length", "for a script")),
    "audit verify": (("bot-bottle audit verify", "is the log whole, and sealed with this host's key?"),
                     ("bot-bottle audit head > head.json", "save the head, to check against later"),
                     ("bot-bottle audit verify --head head.json", "nothing was cut off since")),
    "audit retire-anchor": (("bot-bottle audit retire-anchor --yes",
                             "the database was replaced or emptied on purpose"),),
    "audit new-key": (("bot-bottle audit new-key --yes", "the old key is lost for good: start a new one"),),
    "audit set-aside": (("bot-bottle audit set-aside --export old-entries.jsonl --yes",
                         "move entries out of the log, into a file first"),),
    "audit head": (("bot-bottle audit head > head.json", "the log's newest entry, to check against later"),),
    "audit export": (("bot-bottle audit export > audit.jsonl", "every entry, one JSON object a line"),),
    "db path": (("bot-bottle db path", "where the host database is"),),
    "db status": (("bot-bottle db status", "its path and schema version"),
                  ("bot-bottle db status --json", "for a script")),
    "db upgrade": (("bot-bottle db upgrade", "apply every migration (a backup is taken first)"),),
    "db downgrade": (("bot-bottle db downgrade --to 6 --export audit.jsonl", "back to version 6"),),
    "db backup": (("bot-bottle db backup", "a consistent copy in ~/.bot-bottle/backups"),
                  ("bot-bottle db backup --json", "where it went, for a script")),
    "db check": (("bot-bottle db check", "SQLite's integrity and foreign-key checks"),),
    "relay start": (("bot-bottle relay start", "start the relay unless it runs"),
                    ("bot-bottle relay start --json", "its pid and URL, for a script")),
    "relay stop": (("bot-bottle relay stop", "stop it (waiting sidecars retry)"),),
    "relay status": (("bot-bottle relay status", "is it running, and every bottle's credential"),),
    "relay revoke": (("bot-bottle relay revoke web-1", "refuse web-1's sidecar from its next request"),),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps a one-paragraph description to the terminal, keeps text laid out in lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip("\n"):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Give every leaf verb of ``parser`` its examples and the exit statuses, every parser the formatter."""
    for path, each in _parsers(parser, []):
        each.formatter_class = HelpFormatter
        if not _is_leaf(each):
            continue
        epilog = each.epilog or ""
        if "example" not in epilog:
            examples = EXAMPLES.get(" ".join(path), ())
            width = max((len(command) for command, _ in examples), default=0)
            epilog = "examples:\n" + "".join(f"  {command.ljust(width)}  {what}\n" for command, what in examples)
        if "exit status" not in epilog:
            epilog = epilog.rstrip("\n") + "\n\n" + EXIT_STATUS_HELP + "\n"
        each.epilog = epilog


def _parsers(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, [*path, name])


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    """A parser that runs a verb: no subcommands, or subcommands it can run without (``relay``)."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return not subcommands or (not subcommands[0].required and parser.get_default("handler") is not None)
