"""Shared helpers of the benchmark scripts: the machine, statistics, tables, and the --smoke switch.

Benchmarks are scripts a person runs (``bench/run``), not tests: they print
figures and assert nothing about speed. ``--smoke`` makes each one run for a
second or two, only to show that it still works (``.ci/run`` does that).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bot_bottle.filesystems import filesystem_of  # noqa: E402 - after the path is set


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true", help="run for seconds only, to check the script works")
    p.add_argument("--runs", type=int, default=None, help="repetitions to take the median of")
    p.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a temp dir)")
    return p


def work_dir(args: argparse.Namespace) -> Path:
    """The directory the benchmark's databases go in (the filesystem under test)."""
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="bb-bench-", dir=args.dir))
    return Path(tempfile.mkdtemp(prefix="bb-bench-", dir=os.environ.get("BENCH_DIR") or None))


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(where: Path) -> str:
    """One paragraph naming the machine: CPU, cores, Python, SQLite, the filesystem under ``where``."""
    entry = filesystem_of(where)
    fs = f"{entry.fstype} ({entry.source})" if entry else "unknown"
    return (f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"SQLite {sqlite3.sqlite_version}; filesystem {fs} at {where}\n{load()} at the start")


def load() -> str:
    """The load averages now: the machine is shared, so every run says how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} cores)"


def median(values: Sequence[float]) -> float:
    """The median (0 for no values)."""
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile by nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(r)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def as_host_at(home: Path | str) -> Iterator[None]:
    """HOME set to ``home`` for the block: a relay's credentials are minted where that relay keeps its secrets
    (``~/.bot-bottle/relay/``), as ``prepare`` does for the relay of the same user."""
    before = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = before
