"""The sidecar's supervise server as a process: its command line, start-up checks and run loop.

An agent in a bottle registers this server as an MCP server (for Claude Code:
``claude mcp add --transport http supervise http://supervise:9100/``). The
tools and protocol are ``sidecar.mcp``; the HTTP transport and its bounds,
``wire.jsonrpc_server``. Run as the sidecar: ``python -m bot_bottle.supervise_server
--bottle SLUG``; the queue is whatever the backend mounted at
``/run/supervise`` (``sidecar.transport.find_transport``): the host's database on
its mount, or the relay file of a sidecar in a VM. The server refuses to
start when it finds neither, rather than create a database.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from bot_bottle.bottles import HEARTBEAT_INTERVAL_SEC
from bot_bottle.db.checkpointer import IdleCheckpointer
from bot_bottle.errors import BotBottleError, RelayUnreachable, ValidationError
from bot_bottle.paths import DB_DIR_IN_CONTAINER, DB_PATH_IN_CONTAINER
from bot_bottle.queue_store import BottleQueue
from bot_bottle.records import DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_BYTES, Quota, validate_bottle_slug
from bot_bottle.sidecar.mcp import DEFAULT_WAIT_SECONDS, SuperviseService
from bot_bottle.sidecar.mount_check import check_mount
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.sidecar.transport import MOUNT, SidecarQueue, find_transport
from bot_bottle.text import terminal
from bot_bottle.wire.jsonrpc_server import (
    DEFAULT_ALLOWED_HOSTS,
    MAX_CONNECTIONS,
    REQUEST_TIMEOUT_SEC,
    SuperviseHTTPServer,
    normalize_allowed_host,
)
from bot_bottle.wire.relay_file import RELAY_FILE_IN_CONTAINER

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 9100
MAX_WAIT_SECONDS = 3600.0
WAIT_SECONDS_ENV = "BOT_BOTTLE_SUPERVISE_WAIT_SECONDS"


def wait_seconds_from(argument: float | None, environ: dict[str, str] | os._Environ[str]) -> float:
    """The wait bound: the argument, else ``$BOT_BOTTLE_SUPERVISE_WAIT_SECONDS``, else 30 s."""
    source = "--wait-seconds"
    value: object = argument
    if value is None:
        raw = environ.get(WAIT_SECONDS_ENV)
        if raw is None or not raw.strip():
            return DEFAULT_WAIT_SECONDS
        source = WAIT_SECONDS_ENV
        try:
            value = float(raw)
        except ValueError:
            raise ValidationError(source, f"{raw!r} is not a number of seconds") from None
    assert isinstance(value, float | int)
    if not 0 <= value <= MAX_WAIT_SECONDS or value != value:
        raise ValidationError(source, f"must be between 0 and {MAX_WAIT_SECONDS:g} seconds")
    return float(value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def seconds_argument(text: str) -> float:
    """argparse type: a number of seconds, more than 0 and at most ``MAX_WAIT_SECONDS``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_WAIT_SECONDS:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The sidecar's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot_bottle.supervise_server",
        description="The bottle sidecar's supervise server: MCP (streamable HTTP) tools that file "
        "proposals for the operator and wait for the decision.",
        epilog=(
            "examples:\n"
            "  python -m bot_bottle.supervise_server --bottle web-1\n"
            "      in the sidecar: database at " + DB_PATH_IN_CONTAINER + ", listening on 0.0.0.0:9100\n"
            "  python -m bot_bottle.supervise_server --bottle demo --db /tmp/demo.db --host 127.0.0.1 --port 0\n"
            "      on a workstation: any free port, printed as 'listening on http://H:N/'\n"
            "\nThe agent registers it with: claude mcp add --transport http supervise http://supervise:9100/\n"
            "\nWithout --db or --relay the backend must have mounted one of two things at " + DB_DIR_IN_CONTAINER
            + ":\n"
            "  " + DB_PATH_IN_CONTAINER + "  the host's database, on a mount (docker on Linux)\n"
            "  " + RELAY_FILE_IN_CONTAINER + "    the host relay's URL and this bottle's token (sidecars in VMs)\n"
            "With neither, or a database that is not on a mount, the server exits 1 instead of creating a\n"
            "database the operator never sees; so it does for a mount where SQLite's lock probe fails or\n"
            "whose filesystem may cross a VM or network boundary (virtiofs, 9p, NFS, SMB, FUSE shares)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bottle", required=True, metavar="SLUG", help="this bottle's slug (the queue key)")
    parser.add_argument("--db", type=Path, metavar="PATH", default=None,
                        help=f"database file (default: {DB_PATH_IN_CONTAINER} on the sidecar's mount, or the "
                        "relay); for tests and workstations")
    parser.add_argument("--relay", type=Path, metavar="FILE", default=None,
                        help=f"a relay file ({{url, token, bottle}}, default: {RELAY_FILE_IN_CONTAINER} when the "
                        "backend mounted one): file and wait through the host relay, never opening a database")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port, 0 for any free one (default: {DEFAULT_PORT})")
    parser.add_argument("--wait-seconds", type=float, default=None, metavar="S",
                        help=f"how long a tool call waits for the decision (default: ${WAIT_SECONDS_ENV} "
                        f"or {DEFAULT_WAIT_SECONDS:g})")
    parser.add_argument("--routes-file", type=Path, metavar="PATH", default=None,
                        help="the bottle's current routes file, sent with each egress-block proposal as its "
                        "current file (the operator's screens read a proposal against the last routes file the "
                        "host approved for the bottle, every host new where none is, and mark it drifted where "
                        "this one is another or none is on record; without this option, a proposal is read so "
                        "unmarked, unless filed before that approval or the file revoked)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="another name the server is reached by (repeatable); only Host headers naming "
                        f"{', '.join(DEFAULT_ALLOWED_HOSTS)} or these are served, and an Origin must name one too")
    parser.add_argument("--max-pending", type=_positive_int, default=DEFAULT_MAX_PENDING, metavar="N",
                        help=f"proposals this bottle may have waiting at once (default: {DEFAULT_MAX_PENDING}; one a "
                        "standing rule decided, or that expired, counts for an hour from its filing); the next "
                        "filing is refused with a tool error")
    parser.add_argument("--max-pending-bytes", type=_positive_int, default=DEFAULT_MAX_PENDING_BYTES, metavar="B",
                        help="bytes of payloads, justifications and current files this bottle may have waiting "
                        f"at once (default: {DEFAULT_MAX_PENDING_BYTES}, 16 MiB)")
    parser.add_argument("--request-timeout", type=seconds_argument, default=REQUEST_TIMEOUT_SEC, metavar="S",
                        help="deadline for a whole request's headers and body, and for an idle connection "
                        f"(default: {REQUEST_TIMEOUT_SEC:g}); a slower client is answered 408 and dropped")
    parser.add_argument("--heartbeat-seconds", type=seconds_argument, default=HEARTBEAT_INTERVAL_SEC, metavar="S",
                        help="how often the server tells the host this bottle is alive (default: "
                        f"{HEARTBEAT_INTERVAL_SEC:g}); a running bottle not seen for a few of these shows as stale")
    parser.add_argument("--max-connections", type=_positive_int, default=MAX_CONNECTIONS, metavar="N",
                        help=f"open connections at once, one thread each (default: {MAX_CONNECTIONS}); more are "
                        "answered 503 with Retry-After")
    return parser


def start(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[SuperviseHTTPServer, SidecarQueue]:
    """Find the transport (``--db``, ``--relay`` or the sidecar's mount), open it, and bind the server (not serving).

    Raises ``BotBottleError`` (``ValidationError`` for bad arguments,
    ``MissingMount`` for a sidecar with neither the host's database nor a
    relay file, ``UnsafeMount`` for the host's database on a mount where the
    lock probe fails or that may cross a VM boundary, ``Unauthorized`` for a
    relay that refuses its token) or ``OSError`` (cannot listen).
    """
    validate_bottle_slug(args.bottle, "--bottle")
    wait = wait_seconds_from(args.wait_seconds, os.environ)
    if not 0 <= args.port <= 65535:
        raise ValidationError("--port", "must be between 0 and 65535")
    allowed = [normalize_allowed_host(name) for name in args.allowed_host]
    quota = Quota(args.max_pending, args.max_pending_bytes)
    transport = find_transport(args.db, args.relay)
    # SQLite's locks, and WAL's shared memory, are only as good as the filesystem under the mount: the host's
    # database is never opened where they may not reach the host (a --db file of a workstation is warned of).
    report = check_mount(transport.database.parent) if transport.kind == MOUNT and transport.database else None
    refusal = report.refusal() if report is not None else None
    if refusal is not None:
        raise refusal
    queue = transport.open(args.bottle, quota=quota)
    try:
        if isinstance(queue, RelayQueue):
            log(transport.describe())
            try:
                queue.hello(patient=False)  # a token the relay refuses stops the sidecar here, with its reason
            except RelayUnreachable as exc:
                log(f"warning: {exc}; each call fails until it is")
        elif transport.database is not None:
            warning = (report or check_mount(transport.database.parent)).warning()
            if warning:
                log(f"warning: {warning}")
        service = SuperviseService(queue, wait_seconds=wait, routes_file=args.routes_file, log=log)
        server = SuperviseHTTPServer((args.host, args.port), service, request_timeout=args.request_timeout,
                                     max_connections=args.max_connections, allowed_hosts=allowed)
        return server, queue
    except BaseException:
        queue.close()
        raise


def keep_alive(queue: SidecarQueue, every: float, stop: threading.Event, log: Callable[[str], None]) -> None:
    """Refresh the bottle's ``last_seen`` now and every ``every`` seconds until ``stop`` is set.

    A database briefly unavailable is logged and tried again next time: the
    server keeps serving, and the host sees the bottle as stale meanwhile.
    """
    failing = False
    while True:
        try:
            queue.heartbeat()
            failing = False
        except BotBottleError as exc:
            if not failing:  # once per outage, not every interval
                log(f"cannot record this bottle as alive: {exc}")
            failing = True
        if stop.wait(every):
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGTERM or Ctrl-C; returns the exit status."""
    args = build_parser().parse_args(argv)

    def log(line: str) -> None:
        # Lines can quote what an agent or a relay sent: one line, escaped, whatever reads the log.
        print(f"supervise[{args.bottle}]: {terminal.clean_line(line)}", file=sys.stderr, flush=True)

    try:
        server, queue = start(args, log)
    except BotBottleError as exc:
        print(f"supervise-server: error: {terminal.clean_line(str(exc))}", file=sys.stderr)
        return 2 if isinstance(exc, ValidationError) else 1
    except OSError as exc:
        print(f"supervise-server: error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    stopping = threading.Event()
    beat = threading.Thread(target=keep_alive, args=(queue, args.heartbeat_seconds, stopping, log),
                            name="heartbeat", daemon=True)
    beat.start()
    # On the mount, the WAL is copied into the file when commits pause, so that a filing seldom has to.
    checkpointer = IdleCheckpointer(queue.database_path, log=log).start() if isinstance(queue, BottleQueue) else None
    print(f"listening on http://{host}:{port}/", flush=True)
    status = 0  # stopped by SIGTERM (how a container is stopped)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        status = 130  # Ctrl-C, as every bot-bottle command reports it
    finally:
        stopping.set()
        beat.join(10)
        if checkpointer is not None:
            checkpointer.stop()
        server.server_close()
        try:
            queue.stopped()
        except BotBottleError as exc:
            log(f"cannot record this bottle as stopped: {exc}")
        queue.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
