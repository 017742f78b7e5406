"""The operator's TUI: from a proposal's commit to the proposal on the operator's screen.

The TUI (``bot-bottle supervise``) runs in a real terminal, a tmux pane on a
private tmux server. This script files a proposal with a unique
justification, takes the time once its commit returns, and reads the pane
(``tmux capture-pane``) in a tight loop until the justification is on the
screen; then it rejects the proposal and waits until the row is gone before
the next sample. A read of the pane costs a few milliseconds (a tmux client
process), so the figures include up to one read's time on top of the TUI's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import REPO, machine, parser, percentile, table, work_dir

from bot_bottle.decisions import decide
from bot_bottle.queue_store import QueueStore

TARGET_P99_MS = 100


class Pane:
    """One tmux pane on a private server, running ``command``."""

    def __init__(self, tmux: str, command: str, env: dict[str, str]) -> None:
        self.tmux = tmux
        self.socket = f"bb-bench-{os.getpid()}"
        self.env = env
        self.run("new-session", "-d", "-s", "t", "-x", "160", "-y", "40", command)

    def run(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                              env=self.env, timeout=30).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def wait_for(self, present: str, *, gone: bool = False, timeout: float = 20) -> float:
        """The moment ``present`` is on the screen (or, with ``gone``, off it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (present in self.screen()) != gone:
                return time.monotonic()
        raise SystemExit(f"{present!r} never {'left' if gone else 'reached'} the screen:\n{self.screen()}")

    def close(self) -> None:
        self.run("kill-server")


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    tmux = shutil.which("tmux")
    if tmux is None:
        print("tmux is not installed: nothing to measure (Debian: apt-get install tmux)")
        return
    folder = work_dir(args)
    samples = 3 if args.smoke else 100
    db = folder / "tui.db"
    QueueStore(db).close()
    home = tempfile.mkdtemp(prefix="bb-bench-home-")
    env = {**os.environ, "HOME": home, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    pane = Pane(tmux, f"{sys.executable} -m bot_bottle supervise --db {db}", env)
    print(machine(folder))
    print(f"load average before: {os.getloadavg()[0]:.2f}\n")
    latencies = []
    try:
        with QueueStore(db) as store:
            pane.wait_for("bot-bottle")
            for number in range(samples):
                marker = f"probe-{number:04d}-arrived"
                proposal = store.submit("web-1", "egress-allow", f'{{"host": "p{number}.example"}}', marker)
                committed = time.monotonic()
                latencies.append(pane.wait_for(marker) - committed)
                decide(proposal.id, "rejected", "bench", decided_by="bench@host", store=store)
                pane.wait_for(marker, gone=True)
    finally:
        pane.close()
    ms = [v * 1000 for v in latencies]
    p99 = percentile(ms, 99)
    print(f"{samples} samples; milliseconds from the proposal's commit to its row on the TUI's screen")
    print(table(["p50", "p95", "p99", "max", f"p99 <= {TARGET_P99_MS}"],
                [[f"{percentile(ms, 50):.1f}", f"{percentile(ms, 95):.1f}", f"{p99:.1f}", f"{max(ms):.1f}",
                  "met" if p99 <= TARGET_P99_MS else "MISSED"]]))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
