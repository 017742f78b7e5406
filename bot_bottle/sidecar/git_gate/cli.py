"""``python -m bot_bottle.git_gate``: git-gate's command line (``pre-receive``, ``install-hook``).

git calls the hook with ``old new ref`` lines on stdin::

    python -m bot_bottle.git_gate pre-receive --bottle SLUG [--db PATH | --relay FILE] [--timeout S]

Without --db or --relay, the queue is what the backend mounted at
/run/supervise (``sidecar.transport.find_transport``): the host's database,
or the relay file.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.paths import DB_PATH_IN_CONTAINER
from bot_bottle.records import validate_queue_key
from bot_bottle.sidecar.git_gate.hook import DEFAULT_TIMEOUT_SEC, pre_receive
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.sidecar.transport import find_transport
from bot_bottle.wire.relay_file import RELAY_FILE_IN_CONTAINER

MAX_TIMEOUT_SEC = 24 * 3600.0


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_TIMEOUT_SEC:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_TIMEOUT_SEC:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """git-gate's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot_bottle.git_gate",
        description="git-gate: scan every object a push adds (blobs, trees, commits, tags, ref names) with "
        "gitleaks; ask the operator about findings marked gitleaks:allow. Only refs/heads/ and refs/tags/ "
        "may be pushed.",
        epilog="examples:\n"
        "  python -m bot_bottle.git_gate install-hook /srv/git/app.git --bottle web-1\n"
        "  (git runs) python -m bot_bottle.git_gate pre-receive --bottle web-1 < old-new-ref-lines",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, text in (("pre-receive", "run as git's pre-receive hook (reads 'old new ref' lines on stdin)"),
                       ("install-hook", "write the pre-receive hook into a repository")):
        verb = verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name == "install-hook":
            verb.add_argument("repo", type=Path, help="the repository (bare, as git-gate serves it)")
        verb.add_argument("--bottle", required=True, metavar="SLUG", help="the bottle that pushes here")
        verb.add_argument("--db", type=Path, metavar="PATH", default=None,
                          help=f"database file (default: {DB_PATH_IN_CONTAINER} on the sidecar's mount, or the "
                          f"relay file {RELAY_FILE_IN_CONTAINER}; a push is refused at once when neither is there)")
        verb.add_argument("--relay", type=Path, metavar="FILE", default=None,
                          help="a relay file ({url, token, bottle}): ask the operator through the host relay")
        verb.add_argument("--timeout", type=_timeout, metavar="SECONDS", default=None,
                          help=f"how long a push waits for the operator (default {DEFAULT_TIMEOUT_SEC:g})")
        verb.add_argument("--gitleaks", metavar="PATH", default=None, help="the gitleaks binary (default: on PATH)")
    return parser


def _exit_on_signal(number: int, frame: object) -> None:
    print(f"git-gate: push refused: stopped by signal {number}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status is the hook's verdict (0 accept, 1 refuse, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        validate_queue_key(args.bottle, "--bottle")
    except ValidationError as exc:
        print(f"git-gate: error: {exc}", file=sys.stderr)
        return 2
    if args.verb == "install-hook":
        if args.db is not None and args.relay is not None:
            print("git-gate: error: give either --db or --relay, not both", file=sys.stderr)
            return 2
        hook = install_hook(args.repo, args.bottle, db_path=args.db, relay_file=args.relay, timeout=args.timeout,
                            gitleaks=args.gitleaks)
        print(hook)
        return 0
    # The sidecar's queue must be the host's database on its mount, or the relay: refuse
    # at once rather than create a database and wait for a decision nobody can see.
    try:
        transport = find_transport(args.db, args.relay)
    except BotBottleError as exc:
        print(f"git-gate: push refused: {exc}", file=sys.stderr)
        return 1
    gitleaks = args.gitleaks or shutil.which("gitleaks") or "gitleaks"
    # Killed politely (the push abandoned, the server stopping), the hook unwinds
    # like on an error, so the copies of the pushed content are removed.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)
    return pre_receive(
        sys.stdin, bottle=args.bottle, transport=transport, repo=Path.cwd(), gitleaks=gitleaks,
        timeout=DEFAULT_TIMEOUT_SEC if args.timeout is None else args.timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
