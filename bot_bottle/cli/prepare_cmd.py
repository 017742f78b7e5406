"""``bot-bottle prepare``: a bottle's supervise plane on this host, and the commands that start its sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot_bottle.backends import BACKENDS, backend
from bot_bottle.backends.launch import APPLE_CONTAINER, DEFAULT_IMAGE, DOCKER, PODMAN
from bot_bottle.backends.plan import TRANSPORTS, Supervise
from bot_bottle.cli.common import add_db_option, add_json_option, fail, port_number, print_json
from bot_bottle.cli.launch_routes import LaunchRoutes, check_launch_routes, read_routes_file, record_launch_routes
from bot_bottle.cli.registry import summary
from bot_bottle.paths import host_db_path
from bot_bottle.queue_store import QueueStore
from bot_bottle.relay.process import DEFAULT_RELAY_PORT
from bot_bottle.text import terminal


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare a bottle's supervise plane and print the commands that start its sidecar."""
    if getattr(args, "db", None) is not None:
        # The plan mounts the host's database directory (or the relay that opens the host's database).
        return fail("prepare works on the host database (~/.bot-bottle/db), the one sidecars reach; "
                    "it takes no --db", 2)
    chosen = backend(args.backend)
    options = chosen.launch_options(args.engine, args.image, args.publish)  # checked before anything is made
    routes_text = None if args.routes_file is None else read_routes_file(args.routes_file)  # so is the file
    checked: int | None = None  # how far the check held the log to its seal: the recording walks on from there
    if routes_text is not None and host_db_path().exists():  # and what the host holds of it: refused, nothing made
        store = QueueStore(None)
        try:
            checked = check_launch_routes(store, args.slug, routes_text)
        finally:
            store.close()
    plan = Supervise.prepare(args.slug, backend=chosen, transport=args.transport, relay_port=args.relay_port,
                             relay_address=args.relay_address, engine=options.engine)
    routes: LaunchRoutes | None = None
    if routes_text is not None:
        store = QueueStore(None)
        try:
            routes = record_launch_routes(store, plan.slug, routes_text, checked=checked)
        finally:
            store.close()
    launch = chosen.launch(plan, options)
    sidecar = chosen.sidecar_args(plan, options.engine)
    agent = chosen.agent_args(plan)
    if args.json:
        print_json({
            "bottle": plan.slug, "backend": chosen.name, "engine": launch.engine, "transport": plan.transport,
            "why": plan.transport_reason, "relay_url": plan.relay_url,
            "mount": {"source": str(plan.mount.source), "target": plan.mount.target,
                      "read_only": plan.mount.read_only},
            "image": launch.image, "container": launch.container, "network": launch.network,
            "sidecar_args": sidecar, "entrypoint_args": list(plan.entrypoint_args),
            "commands": {"start": [list(command) for command in launch.start], "stop": list(launch.stop)},
            "agent_args": agent, "mcp_url": plan.mcp_url,
            "routes_file": None if routes is None else routes.to_json(args.routes_file),
        })
        return 0
    mode = "read-only" if plan.mount.read_only else "read-write"
    lines = [
        f"bottle:     {plan.slug}",
        f"backend:    {chosen.name}, with {launch.engine}",
        f"transport:  {plan.transport} ({plan.transport_reason})",
        f"mount:      {plan.mount.source} -> {plan.mount.target} ({mode})",
    ]
    if plan.relay_url:
        lines.append(f"relay:      {plan.relay_url}")
    if routes is not None:
        done = "recorded as approved" if routes.recorded else "already its approved routes file"
        lines.append(f"routes:     {args.routes_file}: {done} (proposal {routes.proposal.short_id}); its routes "
                     "proposals are read against it; it grants:")
        lines += [f"              {item}" for item in routes.granted()]
    lines += [
        f"image:      {launch.image}" + (" (built from Dockerfile.sidecars; --image names another)"
                                         if launch.image == DEFAULT_IMAGE else ""),
        f"agent:      {' '.join(agent)}",
        "",
        "start the sidecar (paste into a shell):",
    ]
    shell = launch.shell_lines()
    if launch.network is not None:
        shell[0] += "   # once; after that it says the network exists"
    lines += [f"  {line}" for line in shell]
    lines += ["stop it:", f"  {' '.join(launch.stop)}"]
    for line in lines:
        print(terminal.clean_line(line))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``prepare`` verb."""
    p = subparsers.add_parser(
        "prepare", help=summary("prepare"),
        description="Prepare a bottle's supervise plane on this host: create and migrate the database, choose "
        "the transport (the backend's on this host, or --transport), and for the relay start it unless it runs, "
        "mint the bottle's token and write its relay file. Prints the commands that start the bottle's sidecar "
        "(copied into a shell, they run it: the image, the mount, the user, the network, the arguments after the "
        "image), the one that stops it, and the agent's run arguments. With --routes-file, the routes file the "
        "bottle is launched with is recorded as approved for it, so that its sidecar's first routes proposal is "
        "read against that file (without one on record, every host a proposed routes file names reads as new); "
        "it ends the routes grant of a file it replaces, as approving any routes file does, and names it.",
        epilog="examples:\n  bot-bottle prepare web-1 --backend docker\n"
        "  bot-bottle prepare web-1 --backend docker --engine podman --publish 9100\n"
        "  bot-bottle prepare web-1 --backend docker --routes-file routes.yaml\n"
        "  bot-bottle prepare web-1 --backend macos-container --json\n"
        "  bot-bottle prepare web-1 --backend docker --transport relay --relay-address 192.0.2.2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_option(p, help="not taken: prepare works on the host database (~/.bot-bottle/db/bot-bottle.db), "
                  "the one its sidecars reach")
    add_json_option(p)
    p.add_argument("slug", metavar="SLUG", help="the bottle's slug (its queue key)")
    p.add_argument("--backend", required=True, choices=sorted(BACKENDS), help="how the bottle is launched")
    p.add_argument("--engine", choices=(DOCKER, PODMAN, APPLE_CONTAINER), default=None,
                   help="the container command that runs the sidecar: docker (the default) or podman for the "
                   "docker and smolmachines backends, Apple's container for macos-container")
    p.add_argument("--image", default=DEFAULT_IMAGE, metavar="NAME",
                   help=f"the sidecar image, built from Dockerfile.sidecars (default: {DEFAULT_IMAGE})")
    p.add_argument("--publish", type=port_number, default=None, metavar="PORT",
                   help="also publish the sidecar's MCP port on this host's 127.0.0.1:PORT, to reach it from the "
                   "host (whoever can connect there files proposals as this bottle); default: only the bottle's "
                   "network reaches it")
    p.add_argument("--routes-file", type=Path, default=None, metavar="FILE",
                   help="the routes file the bottle is launched with (the sidecar's --routes-file; a regular file, "
                   "not a symbolic link): recorded in the audit log as approved for it, so its routes proposals "
                   "are read against it; refused before anything is prepared where it was rejected or its grant "
                   "revoked")
    p.add_argument("--transport", choices=TRANSPORTS, default=None,
                   help="override the backend's choice: mount (the database directory) or relay")
    p.add_argument("--relay-port", type=port_number, default=DEFAULT_RELAY_PORT, metavar="N",
                   help=f"the relay's port (default: {DEFAULT_RELAY_PORT})")
    p.add_argument("--relay-address", default=None, metavar="ADDRESS",
                   help="for the relay: the IPv4 address of this host where the relay listens and sidecars reach it, "
                   "when the backend's default is wrong here (docker on Linux: 172.17.0.1, docker0's address; "
                   "macos-container: 192.168.64.1; podman has none)")
    p.set_defaults(handler=cmd_prepare, field_options={"bottle": "SLUG", "routes_file": "--routes-file"})
