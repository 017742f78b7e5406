"""``bot-bottle config``: the host's settings (pending-ttl), each change recorded in the audit log."""

from __future__ import annotations

import argparse
from typing import Any

from bot_bottle.cli.common import db_path, print_json, verb_parser
from bot_bottle.cli.registry import summary
from bot_bottle.decisions import default_decider
from bot_bottle.errors import ValidationError
from bot_bottle.grants import GrantStore
from bot_bottle.timestamps import parse_duration, spell_duration

_CONFIG_EPILOG = """\
examples:
  bot-bottle config list
  bot-bottle config set pending-ttl 12h     proposals nobody decides close after 12 hours
"""


def cmd_config_list(args: argparse.Namespace) -> int:
    """The host's settings and their values."""
    with GrantStore(db_path(args)) as store:
        ttl = store.pending_ttl()
    if args.json:
        print_json({"pending-ttl": ttl})
    else:
        print(f"pending-ttl  {spell_duration(ttl)}  (proposals nobody decides close after this)")
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    """Set one of the host's settings (audited)."""
    if args.name != "pending-ttl":
        raise ValidationError("name", f"{args.name[:40]!r} is not a setting: the one there is, is pending-ttl")
    seconds = parse_duration("pending-ttl", args.value, times=False)  # a length for every proposal, not a date
    with GrantStore(db_path(args)) as store:
        value = store.set_pending_ttl(seconds, set_by=default_decider())
    if args.json:
        print_json({"pending-ttl": value})
    else:
        print(f"pending-ttl  {spell_duration(value)}  (from the next proposal filed)")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``config`` verb."""
    config = subparsers.add_parser("config", help=summary("config"), epilog=_CONFIG_EPILOG,
                                   description="The host's settings, each change recorded in the audit log.",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = config.add_subparsers(dest="config_verb", metavar="VERB", required=True)
    p = verb_parser(verbs, "list", json=True, help="every setting and its value",
                    description="List the host's settings.")
    p.set_defaults(handler=cmd_config_list)
    p = verb_parser(verbs, "set", json=True, help="set a setting",
                    description="Set one of the host's settings: pending-ttl (how long a proposal waits for a "
                    "decision before it is closed as expired; default 24h, from 1m to 30d). A new value holds "
                    "from the next proposal filed: the ones already pending keep the expiry they were filed with "
                    "('proposals show ID' says it).")
    p.add_argument("name", metavar="NAME", help="the setting: pending-ttl")
    p.add_argument("value", metavar="VALUE", help="its value: a duration such as 12h")
    p.set_defaults(handler=cmd_config_set)
