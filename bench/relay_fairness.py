"""What an honest bottle sees at the relay while another bottle (or a client without a token) attacks it.

Each attack of tests/helpers/relay_attacks.py runs in its own process with
bottle A's relay file, against a real relay process; bottle B's real sidecar
files through the relay, an operator approves as soon as B's proposal shows,
and B's agent times each tool call from its start to its answer. Reported
per attack: B's success rate and its latency (median, p99, max). Figures,
not assertions: tests/attacks/test_relay_fairness.py asserts that B is
served within a second under each.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from common import as_host_at, machine, median, parser, percentile, table, work_dir

from bot_bottle.db import open_db
from bot_bottle.relay.credentials import RelayCredentials
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file
from tests.helpers.relay_attacks import KINDS, Honest, start_attack, stop_attack
from tests.helpers.relay_fixture import free_port, start_relay_process, stop_process


def run(kind: str | None, rounds: int, root: Path) -> tuple[int, list[float]]:
    """B's round trips under ``kind`` (``None``: no attack): how many were approved, and each one's seconds."""
    home = Path(tempfile.mkdtemp(dir=root))
    db = home / ".bot-bottle" / "db" / "bot-bottle.db"
    open_db(db).close()
    with as_host_at(home):  # the relay's HOME: its secrets, and the key the operator here decides with
        return _run(kind, rounds, home, db)


def _run(kind: str | None, rounds: int, home: Path, db: Path) -> tuple[int, list[float]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with RelayCredentials(db) as credentials:
        a = RelayEndpoint(url=url, token=credentials.mint("hostile-a"), bottle="hostile-a")
        b = RelayEndpoint(url=url, token=credentials.mint("honest-b"), bottle="honest-b")
    bottles = home / ".bot-bottle" / "relay" / "bottles"  # as bottle_relay_dir makes them, in this HOME
    a_file = write_endpoint_file(bottles / a.bottle, a)
    b_file = write_endpoint_file(bottles / b.bottle, b)
    relay = start_relay_process(home, port)
    honest = Honest(db, b_file)
    attack: subprocess.Popen[str] | None = None
    try:
        if kind is not None:
            attack = start_attack(kind, port, a_file)
            time.sleep(1.0)
        outcomes = [honest.round_trip() for _ in range(rounds)]
    finally:
        if attack is not None:
            stop_attack(attack)
        honest.close()
        stop_process(relay)
    return sum(ok for ok, _ in outcomes), [seconds for _, seconds in outcomes]


def main() -> None:
    """Print B's figures under each attack."""
    args = parser(__doc__.splitlines()[0]).parse_args()
    rounds = 5 if args.smoke else (args.runs or 50)
    root = work_dir(args)
    print(machine(root))
    print(f"{rounds} round trips of bottle B per attack; each attack in a process of its own\n")
    rows = []
    for kind in (None, *(KINDS[:1] if args.smoke else KINDS)):
        approved, seconds = run(kind, rounds, root)
        ms = [s * 1000 for s in seconds]
        rows.append([kind or "(none)", f"{approved}/{rounds}", f"{median(ms):.1f}", f"{percentile(ms, 99):.1f}",
                     f"{max(ms):.1f}"])
    print(table(["attack", "B approved", "B median ms", "B p99 ms", "B max ms"], rows))


if __name__ == "__main__":
    main()
