"""``python -m bot_bottle.git_gate``: git-gate's command line (``pre-receive``, ``install-hook``).

git calls the hook with ``old new ref`` lines on stdin::

    python -m bot_bottle.git_gate pre-receive --bottle SLUG [--db PATH | --relay FILE] [--timeout S]

Without --db or --relay, the queue is what the backend mounted at
/run/supervise (``sidecar.transport.find_transport``): the host's database,
or the relay file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.paths import DB_PATH_IN_CONTAINER
from bot_bottle.records import validate_bottle_slug
from bot_bottle.sidecar.git_gate.hook import DEFAULT_TIMEOUT_SEC, pre_receive
from bot_bottle.sidecar.git_gate.install import install_hook
from bot_bottle.sidecar.git_gate.limits import OPTIONS, Limits, limit_memory, mib, parse_size
from bot_bottle.sidecar.git_gate.serial import PushLock
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:30]!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    value = _timeout(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


_LIMIT_HELP = {
    "max_refs": "refs one push may update (default {})",
    "max_object_bytes": "the largest object one push may add (default {}; sizes take K, M or G)",
    "max_scan_bytes": "what one push may have scanned, with its other forms and archive members (default {})",
    "max_seconds": "how long the scan of one push may take, before any wait for the operator (default {} s)",
    "max_memory_bytes": "the hook's own memory, git and gitleaks aside (default {})",
    "max_archive_depth": "archive and compression layers opened below a pushed file (default {})",
    "max_archive_member_bytes": "the largest archive member or decompressed stream (default {})",
    "max_archive_bytes": "what one pushed file's archives may expand to in all (default {})",
    "max_archive_members": "archive members in one pushed file, all layers (default {})",
    "max_archive_ratio": "how many times its stored size an archive member may expand to (default {})",
}


def _add_limits(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    group = parser.add_argument_group("limits (a push past one is refused, with one line naming it)")
    for name, (option, kind) in OPTIONS.items():
        default = getattr(defaults, name)
        shown = mib(default) if kind == "size" else f"{default:g}"
        group.add_argument(option, dest=name, metavar={"size": "SIZE", "seconds": "SECONDS"}.get(kind, "N"),
                           type={"size": _size, "seconds": _seconds}.get(kind, _count), default=default,
                           help=_LIMIT_HELP[name].format(shown))


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(**{name: getattr(args, name) for name in OPTIONS})


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
        _add_limits(verb)
    return parser


def _exit_on_signal(number: int, frame: object) -> None:
    print(f"git-gate: push refused: stopped by signal {number}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status is the hook's verdict (0 accept, 1 refuse, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        validate_bottle_slug(args.bottle, "--bottle")
    except ValidationError as exc:
        print(f"git-gate: error: {exc}", file=sys.stderr)
        return 2
    if args.verb == "install-hook":
        if args.db is not None and args.relay is not None:
            print("git-gate: error: give either --db or --relay, not both", file=sys.stderr)
            return 2
        hook = install_hook(args.repo, args.bottle, db_path=args.db, relay_file=args.relay, timeout=args.timeout,
                            gitleaks=args.gitleaks, limits=_limits(args))
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
    limits = _limits(args)
    limit_memory(limits.max_memory_bytes)
    # Killed politely (the push abandoned, the server stopping), the hook unwinds
    # like on an error, so the copies of the pushed content are removed.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)
    # One push gated at a time: an accepted one keeps the lock until receive-pack has written its refs.
    lock = PushLock(Path.cwd() / os.environ.get("GIT_DIR", "."))  # the git directory (a hook runs with GIT_DIR)
    try:
        verdict = pre_receive(
            sys.stdin, bottle=args.bottle, transport=transport, repo=Path.cwd(), gitleaks=gitleaks,
            timeout=DEFAULT_TIMEOUT_SEC if args.timeout is None else args.timeout, limits=limits, lock=lock,
        )
        if verdict == 0:
            lock.hand_over()
        return verdict
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
