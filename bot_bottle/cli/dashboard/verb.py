"""``bot-bottle dashboard``: the operator's view and decisions in a local browser page.

The server is ``cli.dashboard.server``; this module is the verb: it binds
127.0.0.1 on a random port (or ``--port``), prints the URL with its token,
and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from bot_bottle.cli.common import EXIT_INTERRUPTED, db_path, port_number, verb_parser
from bot_bottle.cli.dashboard.server import DashboardServer, serve
from bot_bottle.cli.registry import summary
from bot_bottle.errors import BotBottleError
from bot_bottle.text import terminal

_EPILOG = """\
examples:
  bot-bottle dashboard               serve on a random port; open the URL it prints
  bot-bottle dashboard --port 8765   a port of your choice (still 127.0.0.1 only)

The URL carries a random token, new each start: the first visit swaps it for
a session cookie, and the page drops it from the address bar. Its path is a
random root too, the only path the cookie is sent to (browsers send cookies
to every port of a host). Nothing else on this machine can use the dashboard
without them. Ctrl-C stops it.
"""


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until stopped."""

    def log(line: str) -> None:  # a line may hold what a row says (a rule's id, a grant's bottle): sanitized
        print(f"dashboard: {terminal.clean_line(line)}", file=sys.stderr, flush=True)

    def ready(server: DashboardServer) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        if args.json:  # one line a script can read the URL from, as soon as it serves
            print(json.dumps({"url": server.url, "pid": os.getpid()}), flush=True)
            return
        print(f"dashboard at {server.url}", flush=True)
        print("open it in a browser on this machine; Ctrl-C stops it", flush=True)

    try:
        serve(db_path(args), args.port, log=log, ready=ready)
    except OSError as exc:
        raise BotBottleError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED  # stopped with Ctrl-C (SIGTERM stops it with 0)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``dashboard`` verb."""
    parser = verb_parser(
        subparsers, "dashboard", help=summary("dashboard"), json=True,
        description="A local web page, served on 127.0.0.1 by the standard library: every bottle with its state "
        "and pending proposals, a proposal's escaped diff or report, approve / modify / reject under the same "
        "rules and confirmation as the terminal UI, and the audit log with its verify status. It refreshes "
        "itself when anything changes.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=port_number, default=0, metavar="N",
                        help="port on 127.0.0.1 (default: 0, a random free one)")
    # (--json: one line {"url": ..., "pid": ...} once it serves, for a script that opens or polls it.)
    parser.set_defaults(handler=cmd_dashboard)
