"""``bot-bottle relay ...``: the host relay through which sidecars in VMs reach the database."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from bot_bottle.cli.common import fail, port_number, positive_int, print_json, print_table, verb_parser
from bot_bottle.cli.registry import summary
from bot_bottle.records import DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_BYTES, Quota
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.relay.lock import lock_path, running_relay
from bot_bottle.relay.process import (
    DEFAULT_RELAY_HOST,
    DEFAULT_RELAY_PORT,
    RELAY_MAX_CONNECTIONS,
    VM_HOST_NAMES,
    ensure_relay,
    serve,
)
from bot_bottle.relay.service import DEFAULT_MAX_WAITS_PER_BOTTLE
from bot_bottle.relay.shares import DEFAULT_WRITES_PER_SEC, WRITE_BURST_SEC
from bot_bottle.sidecar.server import seconds_argument
from bot_bottle.text import terminal
from bot_bottle.wire.jsonrpc_server import REQUEST_TIMEOUT_SEC
from bot_bottle.wire.relay_file import RELAY_FILENAME

_RELAY_EPILOG = f"""\
examples:
  bot-bottle relay                        run the relay in the foreground on {DEFAULT_RELAY_HOST}:{DEFAULT_RELAY_PORT}
  bot-bottle relay start                  start it in the background unless it runs (as 'prepare' does)
  bot-bottle relay start --writes-per-bottle 50   the same, each bottle allowed 50 writes a second
  bot-bottle relay status                 is it running, where, and which bottles have credentials
  bot-bottle relay revoke web-1           refuse web-1's sidecar from its next request on
  bot-bottle relay stop                   stop the running relay (SIGTERM)

Sidecars in VMs (Docker Desktop, Apple container, smolmachines on macOS) never
open the database: they file and wait through this relay, which derives their
bottle from the token in their relay.json. One relay runs per host (its lock:
~/.bot-bottle/relay/relay.lock).
"""


def cmd_relay_serve(args: argparse.Namespace) -> int:
    """Run the relay in the foreground until SIGTERM or Ctrl-C."""
    def log(line: str) -> None:
        print(f"relay: {terminal.clean_line(line)}", file=sys.stderr, flush=True)

    def ready(url: str) -> None:
        print(f"relay listening on {url}", flush=True)

    try:
        return serve(args.host, args.port, db_path=args.db, extra_hosts=args.allowed_host,
                     quota=Quota(args.max_pending, args.max_pending_bytes),
                     max_waits_per_bottle=args.max_waits_per_bottle, writes_per_bottle=args.writes_per_bottle,
                     max_connections=args.max_connections,
                     request_timeout=args.request_timeout, log=log, ready=ready)
    except OSError as exc:
        if exc.filename is None:
            return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        raise


def _serving_arguments(args: argparse.Namespace) -> list[str]:
    """The serving options as the background relay's command line takes them (``--name=value``, so that no
    value can be read as an option of its own); the address is passed on its own (``ensure_relay``)."""
    words = []
    for action in _add_serving_options(argparse.ArgumentParser(add_help=False)):
        if action.dest in ("host", "port"):
            continue
        value = getattr(args, action.dest)
        for each in value if isinstance(value, list) else [value]:
            words.append(f"{action.option_strings[0]}={each}")
    return words


def cmd_relay_start(args: argparse.Namespace) -> int:
    """Start the relay in the background, with the options given, unless one runs; print where it listens."""
    already = running_relay()
    info = ensure_relay(args.host, args.port, db_path=args.db, options=_serving_arguments(args),
                        asked_by="you asked for", then="start it again")
    if args.json:
        print_json({"running": True, "started": already is None, "pid": info.pid, "url": info.url,
                    "database": info.database})
    elif already is None:
        print(f"relay running: pid {info.pid}, listening on {info.url}")
    else:
        print(f"relay already running: pid {info.pid}, listening on {info.url}, with the options it was started "
              "with ('bot-bottle relay stop', then start, to change them)")
    return 0


def cmd_relay_stop(args: argparse.Namespace) -> int:
    """Send SIGTERM to the running relay and wait for it to let its lock go."""
    info = running_relay()
    if info is None:
        return fail("no relay runs on this host")
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while running_relay() is not None:
        if time.monotonic() > deadline:
            return fail(f"the relay (pid {info.pid}) did not stop within {args.timeout:g} s")
        time.sleep(0.05)
    if args.json:
        print_json({"running": False, "stopped_pid": info.pid})
    else:
        print(f"relay stopped (pid {info.pid})")
    return 0


def cmd_relay_status(args: argparse.Namespace) -> int:
    """Whether a relay runs and where; every bottle's credential (never a token)."""
    info = running_relay()
    with RelayCredentials(args.db) as credentials:
        rows = credentials.listing()
    if args.json:
        print_json({
            "running": info is not None,
            "relay": None if info is None else {"pid": info.pid, "url": info.url, "database": info.database},
            "lock": str(lock_path()),
            "credentials": [{"bottle": r.queue_key, "created_at": r.created_at, "revoked_at": r.revoked_at}
                            for r in rows],
        })
        return 0
    if info is None:
        print(f"relay: not running (start it with 'bot-bottle relay start'; lock {lock_path()})")
    else:
        print(f"relay: running, pid {info.pid}, listening on {info.url}, database {info.database}")
    if rows:
        print_table(["BOTTLE", "CREDENTIAL", "SINCE"],
                    [[r.queue_key, "revoked" if r.revoked_at else "live", r.revoked_at or r.created_at]
                     for r in rows])
    else:
        print("no bottle has a relay credential")
    return 0


def cmd_relay_revoke(args: argparse.Namespace) -> int:
    """Revoke a bottle's relay credential and remove its relay file."""
    with RelayCredentials(args.db) as credentials:
        revoked = credentials.revoke(args.slug)
    with contextlib.suppress(FileNotFoundError):
        (bottle_relay_dir(args.slug) / RELAY_FILENAME).unlink()
    if not revoked:
        return fail(f"bottle {args.slug} has no live relay credential")
    if args.json:
        print_json({"bottle": args.slug, "revoked": True})
    else:
        print(f"revoked {args.slug}'s relay credential: the relay refuses its sidecar from the next request; "
              f"'bot-bottle prepare {args.slug} --backend NAME' mints a new one")
    return 0


def _add_serving_options(parser: argparse.ArgumentParser, *, after_start: bool = False) -> list[argparse.Action]:
    """Add the options the relay serves with, and return them; ``after_start``: ``relay start``'s copies, which
    leave a value given before ``start`` standing when they are not given (``relay --port 9555 start``), as
    ``--db`` does."""
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if after_start else value

    added: list[argparse.Action] = []

    def add(*names: str, **options: Any) -> None:
        added.append(parser.add_argument(*names, **options))

    add("--host", default=default(DEFAULT_RELAY_HOST),
        help=f"address to listen on (default: {DEFAULT_RELAY_HOST}; Docker Desktop forwards "
        "host.docker.internal there; Apple container's VMs need 192.168.64.1)")
    add("--port", type=port_number, default=default(DEFAULT_RELAY_PORT),
        help=f"port (default: {DEFAULT_RELAY_PORT}, fixed so bottles' relay files outlive a restart; 0: any "
             "free one)")
    add("--allowed-host", action="append", default=default([]), metavar="NAME",
        help="another name sidecars reach the relay by (repeatable; always: "
        f"{', '.join(VM_HOST_NAMES)}, localhost and the listen address)")
    add("--max-pending", type=positive_int, default=default(DEFAULT_MAX_PENDING), metavar="N",
        help=f"proposals each bottle may have waiting at once (default: {DEFAULT_MAX_PENDING}; one a standing "
        "rule decided, or that expired, counts for an hour from its filing)")
    add("--max-pending-bytes", type=positive_int, default=default(DEFAULT_MAX_PENDING_BYTES),
        metavar="B",
        help=f"bytes each bottle may have pending at once (default: {DEFAULT_MAX_PENDING_BYTES})")
    add("--max-waits-per-bottle", type=positive_int, default=default(DEFAULT_MAX_WAITS_PER_BOTTLE),
        metavar="N", help="calls one bottle may have waiting at the relay at once (default: "
        f"{DEFAULT_MAX_WAITS_PER_BOTTLE}), and half the requests of any kind it may have in flight; "
        "more are told to retry")
    add("--writes-per-bottle", type=positive_int, default=default(DEFAULT_WRITES_PER_SEC),
        metavar="N",
        help="writes (filings, archives, heartbeats) one bottle may make a second (default: "
        f"{DEFAULT_WRITES_PER_SEC}), after a burst of {WRITE_BURST_SEC} seconds' worth; more are "
        "told to retry, and its sidecar does, so a bottle filing fast slows to this rate")
    add("--max-connections", type=positive_int, default=default(RELAY_MAX_CONNECTIONS),
        metavar="N",
        help="connections waiting to be authenticated at once (default: "
        f"{RELAY_MAX_CONNECTIONS}, a quarter of them per peer); a new one past that cuts the oldest "
        "waiting one, which is told to retry. A bottle's authenticated requests count in its own "
        "share, never here")
    add("--request-timeout", type=seconds_argument, default=default(REQUEST_TIMEOUT_SEC),
        metavar="S", help="deadline for a whole request's headers and body, and for an idle connection "
        f"(default: {REQUEST_TIMEOUT_SEC:g}); a slower client is answered 408 and dropped")
    return added


def register(subparsers: Any) -> None:
    """Add the ``relay`` verb and its subcommands."""
    parser = verb_parser(
        subparsers, "relay", help=summary("relay"),
        description="Run the host relay: the one process that opens the host database for sidecars that run "
        "in VMs, serving each bottle's queue operations (file, read, wait, archive) over HTTP/JSON to the "
        "holder of that bottle's token. Without a subcommand it runs in the foreground.",
        epilog=_RELAY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_serving_options(parser)
    parser.set_defaults(handler=cmd_relay_serve)
    verbs = parser.add_subparsers(dest="relay_verb", metavar="VERB")

    p = verb_parser(verbs, "start", json=True, help="start the relay in the background unless it runs",
                    description="Start the relay in the background (its log: ~/.bot-bottle/relay/relay.log) "
                    "unless one runs; print its pid and address. 'prepare' does this for relay-backed bottles.")
    _add_serving_options(p, after_start=True)
    p.set_defaults(handler=cmd_relay_start)

    p = verb_parser(verbs, "stop", json=True, help="stop the running relay",
                    description="Send SIGTERM to the running relay and wait until it has stopped. Waiting "
                    "sidecars retry, and find their decisions when a relay runs again.")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S", help="how long to wait (default: 15)")
    p.set_defaults(handler=cmd_relay_stop)

    p = verb_parser(verbs, "status", json=True, help="whether the relay runs, and the bottles' credentials",
                    description="Say whether a relay runs on this host and where, and list every bottle's relay "
                    "credential (live or revoked; the tokens themselves are never stored).")
    p.set_defaults(handler=cmd_relay_status)

    p = verb_parser(verbs, "revoke", json=True, help="revoke a bottle's relay credential",
                    description="Revoke a bottle's relay credential and delete its relay file: the relay refuses "
                    "that bottle's sidecar from its next request. Preparing the bottle again mints a new token.")
    p.add_argument("slug", metavar="SLUG", help="the bottle")
    p.set_defaults(handler=cmd_relay_revoke, field_options={"bottle": "SLUG"})
