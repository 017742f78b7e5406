"""``bot-bottle prepare``: a bottle's supervise plane on this host, and the plan its backend launches."""

from __future__ import annotations

import argparse
from typing import Any

from bot_bottle.backends import BACKENDS, backend
from bot_bottle.backends.plan import TRANSPORTS, Supervise
from bot_bottle.cli.common import fail, port_number, print_json, verb_parser
from bot_bottle.cli.registry import summary
from bot_bottle.relay.process import DEFAULT_RELAY_PORT
from bot_bottle.text import terminal


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare a bottle's supervise plane and print its plan."""
    if getattr(args, "db", None) is not None:
        # The plan mounts the host's database directory (or the relay that opens the host's database).
        return fail("prepare works on the host database (~/.bot-bottle/db), the one sidecars reach; "
                    "it takes no --db", 2)
    chosen = backend(args.backend)
    plan = Supervise.prepare(args.slug, backend=chosen, transport=args.transport, relay_port=args.relay_port)
    sidecar = chosen.sidecar_args(plan)
    agent = chosen.agent_args(plan)
    if args.json:
        print_json({
            "bottle": plan.slug, "backend": chosen.name, "transport": plan.transport,
            "why": plan.transport_reason, "relay_url": plan.relay_url,
            "mount": {"source": str(plan.mount.source), "target": plan.mount.target,
                      "read_only": plan.mount.read_only},
            "sidecar_args": sidecar, "sidecar_command": list(plan.sidecar_command),
            "agent_args": agent, "mcp_url": plan.mcp_url,
        })
        return 0
    mode = "read-only" if plan.mount.read_only else "read-write"
    lines = [
        f"bottle:     {plan.slug}",
        f"backend:    {chosen.name}",
        f"transport:  {plan.transport} ({plan.transport_reason})",
        f"mount:      {plan.mount.source} -> {plan.mount.target} ({mode})",
    ]
    if plan.relay_url:
        lines.append(f"relay:      {plan.relay_url}")
    lines += [
        f"sidecar:    {' '.join(sidecar)} ... {' '.join(plan.sidecar_command)}",
        f"agent:      {' '.join(agent)}",
    ]
    for line in lines:
        print(terminal.clean_line(line))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``prepare`` verb."""
    p = verb_parser(
        subparsers, "prepare", json=True, help=summary("prepare"),
        description="Prepare a bottle's supervise plane on this host: create and migrate the database, choose "
        "the transport (the backend's on this host, or --transport), and for the relay start it unless it runs, "
        "mint the bottle's token and write its relay file. Prints the plan: the transport and why, the mount, "
        "the sidecar's and the agent's run arguments.",
        epilog="examples:\n  bot-bottle prepare web-1 --backend docker\n"
        "  bot-bottle prepare web-1 --backend macos-container --json\n"
        "  bot-bottle prepare web-1 --backend docker --transport relay",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("slug", metavar="SLUG", help="the bottle's slug (its queue key)")
    p.add_argument("--backend", required=True, choices=sorted(BACKENDS), help="how the bottle is launched")
    p.add_argument("--transport", choices=TRANSPORTS, default=None,
                   help="override the backend's choice: mount (the database directory) or relay")
    p.add_argument("--relay-port", type=port_number, default=DEFAULT_RELAY_PORT, metavar="N",
                   help=f"the relay's port (default: {DEFAULT_RELAY_PORT})")
    p.set_defaults(handler=cmd_prepare)
