"""``python3 -m tests``: the whole suite, its modules run side by side, each in a process of its own.

Most of the suite's time is waiting that is the claim under test (a relay
client's retry window, a busy timeout, a grant cache's 5 s, a dashboard's
input guard) and real git, gitleaks, chromium and tmux processes: a plain
``python3 -m unittest`` keeps one core about half busy for a quarter of an hour. Run
as whole modules in parallel processes (each test sets its own ``HOME``,
so they cannot share one process), three at a time on two cores, the
suite takes about 6 minutes (9 two at a time, 5 four at a time: measured
with every outside tool, 3.11). Each module runs in ``unittest.main`` as ``python3 -m unittest
MODULE`` runs it, and hands its counts back from its ``TestResult`` in a
file of its own (``run_child``), never as text a test could print too: a
module that dies, hangs, is interrupted or ran nothing has no counts to
hand back and is a failure. A failing module's whole output is printed,
and the run ends with unittest's own summary lines ("Ran N tests", "OK" or
"FAILED (...)", which ``.ci/run`` reads) and every skip reason, counted
across modules.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent

# The slowest modules start first, slowest first (as measured on 3.11, two at a time), so none of them is left
# running alone at the end; only the order depends on this, and a module not named here starts after these, in
# the order of their names. The container tests lead: 12 s with podman's cache warm, about 90 s on a machine's
# first run (debootstrap). The last few named (10-15 s each) would otherwise start among the last, by name.
SLOW_FIRST = (
    "tests.backends.test_container", "tests.cli.dashboard.test_inbox", "tests.cli.test_tui",
    "tests.attacks.test_sidecar_server", "tests.sidecar.test_grants_in_sidecars", "tests.relay.test_relay",
    "tests.attacks.test_relay_fairness", "tests.cli.dashboard.test_walk", "tests.sidecar.git_gate.test_git_gate",
    "tests.cli.test_shell", "tests.attacks.test_grants", "tests.sidecar.test_transport_contract",
    "tests.attacks.test_relay", "tests.attacks.test_git_gate", "tests.test_queue_processes",
    "tests.sidecar.test_server", "tests.sidecar.git_gate.test_git_gate_grants", "tests.test_wal_processes",
    "tests.text.test_display_integrity", "tests.test_packaging", "tests.attacks.test_forged_rules",
    "tests.attacks.test_git_gate_bounds", "tests.cli.dashboard.test_browser",
)
# A module that runs longer than this is stopped and counted as an error (the slowest takes about a minute).
MODULE_TIMEOUT_SEC = 900
# The counts a module hands back, in unittest's words and order.
COUNTED = ("failures", "errors", "skipped", "expected failures", "unexpected successes")


@dataclass
class Outcome:
    """What one module's run reported (``counts`` as unittest names them; ``ran`` as its "Ran N" says)."""

    module: str
    seconds: float
    returncode: int
    output: str
    ran: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    skips: Counter[str] = field(default_factory=Counter)  # skip reason -> how many
    reported: bool = False  # it handed back its counts (it did not die, hang or get stopped first)

    @property
    def ok(self) -> bool:
        """True if the module ran something, handed back its counts, and passed."""
        return (self.reported and self.returncode == 0 and (self.ran > 0 or self.counts["skipped"] > 0)
                and not self.counts["failures"] and not self.counts["errors"]
                and not self.counts["unexpected successes"])


def discover(names: list[str]) -> list[str]:
    """The test modules to run: every ``tests/**/test_*.py``, or those under the dotted ``names`` given."""
    found = sorted(".".join(path.relative_to(REPO).with_suffix("").parts) for path in TESTS.rglob("test_*.py")
                   if "helpers" not in path.relative_to(TESTS).parts)
    if names:
        chosen = [module for module in found if any(module == name or module.startswith(name + ".")
                                                      for name in names)]
        unknown = [name for name in names if not any(m == name or m.startswith(name + ".") for m in found)]
        if unknown:
            raise ValueError(f"no test module is or is under {', '.join(unknown)}")
        found = chosen
    rank = {module: index for index, module in enumerate(SLOW_FIRST)}
    return sorted(found, key=lambda module: rank.get(module, len(rank)))


def run_child(module: str, counts_path: str, verbose: bool) -> None:
    """In the module's own process: run it as ``python3 -m unittest MODULE`` does; its counts to ``counts_path``."""
    program = unittest.main(module=None, argv=["python3 -m unittest", *(["-v"] if verbose else []), module],
                            exit=False)
    result = program.result
    document = {"ran": result.testsRun, "failures": len(result.failures), "errors": len(result.errors),
                "skipped": [reason for _, reason in result.skipped],
                "expected failures": len(result.expectedFailures),
                "unexpected successes": len(result.unexpectedSuccesses)}
    Path(counts_path).write_text(json.dumps(document), encoding="utf-8")
    sys.exit(0 if result.wasSuccessful() else 1)


def outcome_of(module: str, seconds: float, returncode: int, output: str, counts: str | None) -> Outcome:
    """One module's outcome from its exit status and the counts it handed back (None or junk: it never did)."""
    outcome = Outcome(module, seconds, returncode, output)
    try:
        document = json.loads(counts) if counts else None
        if isinstance(document, dict):
            outcome.ran = int(document["ran"])
            for name in COUNTED:
                value = document[name]
                outcome.counts[name] = len(value) if name == "skipped" else int(value)
            outcome.skips.update(str(reason) for reason in document["skipped"])
            outcome.reported = True
    except (ValueError, KeyError, TypeError):
        outcome.reported = False
    if not outcome.reported or (returncode != 0 and not outcome.counts["failures"] and not outcome.counts["errors"]):
        outcome.counts["errors"] += 1  # it died, hung, was stopped or could not import: counted, never passed
    elif outcome.ran == 0 and not outcome.counts["skipped"]:
        outcome.counts["errors"] += 1  # it ran nothing: a module whose tests were lost is not a pass
    return outcome


class Runner:
    """Runs modules in child processes, ``jobs`` at a time; can stop every one of them (``stop``)."""

    def __init__(self, modules: list[str], jobs: int, verbose: bool, root: Path = REPO) -> None:
        self.pending = list(modules)
        self.root = root  # where the modules are imported from (the repository; a test's own folder)
        self.jobs = jobs
        self.verbose = verbose
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._stopped = False

    def run_module(self, module: str) -> Outcome:
        """Run one module in a process of its own, from the repository root; what it reported."""
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bb-tests-") as scratch:
            counts_path = Path(scratch) / "counts.json"
            log_path = Path(scratch) / "output.txt"
            with open(log_path, "wb") as log:
                command = [sys.executable, "-m", "tests.helpers.parallel", "--child", str(counts_path),
                           *(["-v"] if self.verbose else []), module]
                # Unbuffered: a test's own prints stay where it made them, before unittest's summary.
                env = {**os.environ, "PYTHONUNBUFFERED": "1"}
                if self.root != REPO:  # the runner itself from the repository, the modules from the root
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))
                process = subprocess.Popen(command, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True, env=env)
                with self._lock:
                    if self._stopped:
                        _kill(process)
                    self._running.add(process)
                try:
                    returncode = process.wait(MODULE_TIMEOUT_SEC)
                except subprocess.TimeoutExpired:
                    _kill(process)
                    returncode = process.wait()
                    log.write(f"\npython3 -m tests: {module} still ran after {MODULE_TIMEOUT_SEC} s; "
                              "stopped\n".encode())
                finally:
                    with self._lock:
                        self._running.discard(process)
            output = log_path.read_text(encoding="utf-8", errors="replace")
            counts = counts_path.read_text(encoding="utf-8") if counts_path.exists() else None
        return outcome_of(module, time.monotonic() - start, returncode, output, counts)

    def worker(self) -> None:
        """Take modules until none is left (or the run is stopped); record and print each one's outcome."""
        while True:
            with self._lock:
                if self._stopped or not self.pending:
                    return
                module = self.pending.pop(0)
            try:
                outcome = self.run_module(module)
            except Exception as exc:  # the runner could not run it: that module failed, the others go on
                outcome = Outcome(module, 0.0, -1, f"python3 -m tests could not run {module}: {exc!r}\n")
                outcome.counts["errors"] += 1
            with self._lock:
                self.outcomes.append(outcome)
                status = "ok" if outcome.ok else "FAILED"
                skipped = f", {outcome.counts['skipped']} skipped" if outcome.counts["skipped"] else ""
                print(f"{outcome.seconds:6.1f} s  {status:6s}  {module} ({outcome.ran} tests{skipped})", flush=True)
                if self.verbose or not outcome.ok:
                    print(outcome.output, flush=True)

    def stop(self) -> None:
        """Start nothing more and kill every module still running (each with its own processes)."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # its session: the relays, browsers and git it started


def default_jobs() -> int:
    """One module more than there are cores, at least three and at most six (browsers and git in each).

    A module mostly waits (above), so one per core leaves the cores idle;
    the fourth at a time on two cores saved a tenth more and added a sixth
    to every module's time, so the timing claims would run closer to their
    margins for little.
    """
    return max(3, min(6, (os.cpu_count() or 2) + 1))


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the suite's modules side by side; 0 if every one passed, 1 if any failed, 130 if interrupted."""
    parser = argparse.ArgumentParser(
        prog="python3 -m tests",
        description="Run the test suite with its modules side by side, each in a process of its own as "
                    "'python3 -m unittest MODULE' runs it; a failing module's whole output is printed, then "
                    "unittest's summary over them all.",
        epilog="examples:\n  python3 -m tests\n  python3 -m tests -j 3 tests.relay tests.audit.test_proof\n"
               "  python3 -m unittest tests.audit.test_proof   (one module, as before)\n\n"
               "exit status: 0 when every module passed, 1 when any failed, 2 for bad arguments, 130 when "
               "interrupted (every module still running is stopped)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-j", "--jobs", type=int, default=default_jobs(),
                        help="modules run at once (default: %(default)s here)")
    parser.add_argument("-v", "--verbose", action="store_true", help="each module's own output, as it ends")
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help="dotted test modules or packages to run (default: all of tests/)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        modules = discover(args.modules)
    except ValueError as exc:
        parser.error(str(exc))
    runner = Runner(modules, args.jobs, args.verbose)
    start = time.monotonic()
    print(f"python3 -m tests: {len(modules)} modules, {args.jobs} at a time ({sys.version.split()[0]})", flush=True)
    threads = [threading.Thread(target=runner.worker, daemon=True) for _ in range(min(args.jobs, len(modules)))]
    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        runner.stop()
        for thread in threads:
            thread.join(10)
        print(f"python3 -m tests: interrupted; {len(runner.outcomes)} of {len(modules)} modules finished, "
              "the ones still running were stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    for module in sorted(set(modules) - {outcome.module for outcome in runner.outcomes}):
        runner.outcomes.append(Outcome(module, 0.0, -1, "never run", counts=Counter(errors=1)))
    return report(runner.outcomes, time.monotonic() - start)


def report(outcomes: list[Outcome], seconds: float) -> int:
    """unittest's summary over every module (as ``.ci/run`` reads it), the failed ones, the skips; the exit status."""
    counts: Counter[str] = Counter()
    skips: Counter[str] = Counter()
    for outcome in outcomes:
        counts.update(outcome.counts)
        skips.update(outcome.skips)
    failed = sorted(outcome.module for outcome in outcomes if not outcome.ok)
    print("-" * 70)
    busy = sum(outcome.seconds for outcome in outcomes)
    print(f"Ran {sum(outcome.ran for outcome in outcomes)} tests in {seconds:.3f}s "
          f"({len(outcomes)} modules, {busy:.0f} s of module time)")
    details = ", ".join(f"{name}={counts[name]}" for name in COUNTED if counts[name])
    print()
    print(("FAILED" if failed else "OK") + (f" ({details})" if details else ""))
    if failed:
        print("failed modules (run one alone: python3 -m unittest MODULE):\n" + "\n".join(f"  {m}" for m in failed))
    if skips:
        print(f"skipped {sum(skips.values())} test(s):")
        for reason, count in skips.most_common():
            print(f"  {count:3d}  {reason}")
    return 1 if failed else 0


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    run_child(sys.argv[-1], sys.argv[2], "-v" in sys.argv[3:-1])
