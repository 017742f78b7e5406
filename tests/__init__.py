"""bot-bottle's tests. ``python3 -m tests`` runs them all, two modules at a time (about 6 minutes on 2 cores;
``tests/helpers/parallel.py``); ``python3 -m unittest`` runs them in one process (about 11).

A plain run prints skip reasons only with ``-v``; a test skipped for want of
an outside tool (tmux, chromium, gitleaks, podman...) is easy to miss that
way. So the first import of this package records every skip and, when the
run ends, prints one line per reason after unittest's own summary.
"""

from __future__ import annotations

import atexit
import sys
import unittest
from collections import Counter

_SKIPPED: Counter[str] = Counter()
_add_skip = unittest.TestResult.addSkip


def _noting_skip(result: unittest.TestResult, test: unittest.TestCase, reason: str) -> None:
    _SKIPPED[reason] += 1
    _add_skip(result, test, reason)


def _say_skips() -> None:
    if not _SKIPPED:
        return
    total = sum(_SKIPPED.values())
    lines = [f"skipped {total} test(s):"] + [f"  {count:3d}  {reason}" for reason, count in _SKIPPED.most_common()]
    print("\n".join(lines), file=sys.stderr)


if not getattr(unittest.TestResult.addSkip, "bot_bottle_noting", False):
    _noting_skip.bot_bottle_noting = True  # type: ignore[attr-defined]
    unittest.TestResult.addSkip = _noting_skip  # type: ignore[method-assign]
    atexit.register(_say_skips)
