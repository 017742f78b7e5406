"""``python3 -m tests``: the whole suite, its modules run side by side, each in a ``python3 -m unittest`` of its own.

Most of the suite's time is waiting that is the claim under test (a relay
client's retry window, a busy timeout, a grant cache's 5 s, a dashboard's
input guard) and real git, gitleaks, chromium and tmux processes: a plain
``python3 -m unittest`` keeps one core about half busy for 11 minutes. Run
as whole modules in parallel processes (each test sets its own ``HOME``,
so they cannot share one process), the suite takes about half that on two
cores. Every module still runs exactly as ``python3 -m unittest MODULE``
runs it; a failing module's whole output is printed, and the run ends with
unittest's own summary lines ("Ran N tests", "OK" or "FAILED (...)") and
every skip reason, counted across modules.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent

# The slowest modules start first, slowest first (as measured on 3.11, two at a time), so none of them is left
# running alone at the end; only the order depends on this, and a module not named here starts after these.
SLOW_FIRST = (
    "tests.cli.dashboard.test_inbox", "tests.sidecar.test_grants_in_sidecars", "tests.sidecar.git_gate.test_git_gate",
    "tests.relay.test_relay", "tests.attacks.test_relay_fairness", "tests.cli.dashboard.test_walk",
    "tests.attacks.test_sidecar_server", "tests.attacks.test_grants", "tests.sidecar.test_transport_contract",
    "tests.attacks.test_git_gate", "tests.cli.test_tui", "tests.attacks.test_relay",
    "tests.sidecar.git_gate.test_git_gate_grants", "tests.attacks.test_git_gate_bounds", "tests.cli.test_shell",
    "tests.cli.dashboard.test_browser", "tests.backends.test_container", "tests.text.test_display_integrity",
)
# A module that runs longer than this is stopped and counted as an error (the slowest takes about a minute).
MODULE_TIMEOUT_SEC = 900

_RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
_SUMMARY = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$", re.MULTILINE)
_SKIP_REASON = re.compile(r"^ +(\d+) {2}(.*)$")


@dataclass
class Outcome:
    """What one module's run reported."""

    module: str
    seconds: float
    returncode: int
    output: str
    ran: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # failures, errors, skipped, expected failures...
    skips: Counter[str] = field(default_factory=Counter)  # skip reason -> how many

    @property
    def ok(self) -> bool:
        """True if the module ran and passed."""
        return self.returncode == 0 and self.ran > 0 and not self.counts["failures"] and not self.counts["errors"]


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


def parse(module: str, seconds: float, returncode: int, output: str) -> Outcome:
    """Read unittest's summary and the suite's skip reasons (tests/__init__.py) out of one module's output."""
    outcome = Outcome(module, seconds, returncode, output)
    ran = _RAN.findall(output)
    outcome.ran = int(ran[-1]) if ran else 0
    summary = _SUMMARY.findall(output)
    if summary:
        for part in filter(None, (summary[-1][1] or "").split(", ")):
            name, _, count = part.partition("=")
            outcome.counts[name] += int(count)
    if returncode != 0 and not outcome.counts["failures"] and not outcome.counts["errors"]:
        outcome.counts["errors"] += 1  # it died, hung or could not import: count it, never pass it
    in_skips = False
    for line in output.splitlines():
        if line.startswith("skipped ") and line.endswith(" test(s):"):
            in_skips = True
            continue
        match = _SKIP_REASON.match(line) if in_skips else None
        if match is None:
            in_skips = False
            continue
        outcome.skips[match.group(2)] += int(match.group(1))
    return outcome


def run_module(module: str, extra: list[str]) -> Outcome:
    """Run one module as ``python3 -m unittest`` does, from the repository root; what it reported."""
    start = time.monotonic()
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        process = subprocess.Popen([sys.executable, "-m", "unittest", *extra, module], cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            returncode = process.wait(MODULE_TIMEOUT_SEC)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            returncode = process.wait()
            log.write(f"\npython3 -m tests: {module} still ran after {MODULE_TIMEOUT_SEC} s; stopped\n")
        log.seek(0)
        output = log.read()
    return parse(module, time.monotonic() - start, returncode, output)


def default_jobs() -> int:
    """Two modules at a time per two cores, at least two and at most four (browsers and git in each)."""
    return max(2, min(4, os.cpu_count() or 2))


def main(argv: list[str] | None = None) -> int:
    """Run the suite's modules side by side; 0 if every one passed."""
    parser = argparse.ArgumentParser(
        prog="python3 -m tests",
        description="Run the test suite with its modules side by side, each in a 'python3 -m unittest MODULE' of "
                    "its own; a failing module's whole output is printed, then unittest's summary over them all.",
        epilog="examples:\n  python3 -m tests\n  python3 -m tests -j 3 tests.relay tests.audit.test_proof\n"
               "  python3 -m unittest tests.audit.test_proof   (one module, as before)\n\n"
               "exit status: 0 when every module passed, 1 when any failed, 2 for bad arguments",
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
    pending = list(modules)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    start = time.monotonic()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                module = pending.pop(0)
            outcome = run_module(module, ["-v"] if args.verbose else [])
            with lock:
                outcomes.append(outcome)
                status = "ok" if outcome.ok else "FAILED"
                print(f"{outcome.seconds:6.1f} s  {status:6s}  {module} ({outcome.ran} tests)", flush=True)
                if args.verbose or not outcome.ok:
                    print(outcome.output, flush=True)

    print(f"python3 -m tests: {len(modules)} modules, {args.jobs} at a time ({sys.version.split()[0]})", flush=True)
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(args.jobs, len(modules)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report(outcomes, time.monotonic() - start)


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
    details = ", ".join(f"{name}={count}" for name, count in sorted(counts.items()) if count)
    print()
    print(("FAILED" if failed else "OK") + (f" ({details})" if details else ""))
    if failed:
        print("failed modules (run one alone: python3 -m unittest MODULE):\n" + "\n".join(f"  {m}" for m in failed))
    if skips:
        print(f"skipped {sum(skips.values())} test(s):")
        for reason, count in skips.most_common():
            print(f"  {count:3d}  {reason}")
    return 1 if failed else 0
