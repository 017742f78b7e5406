"""``python3 -m tests`` (tests/helpers/parallel.py): every module's result counted, a failure never read as a pass."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
import unittest

from tests.helpers.parallel import REPO, SLOW_FIRST, discover, parse, report
from tests.helpers.support import TempDirTest

MIXED = textwrap.dedent("""
    import unittest

    class Mixed(unittest.TestCase):
        def test_passes(self):
            pass

        def test_fails(self):
            self.assertEqual(1, 2)

        def test_errors(self):
            raise RuntimeError("boom")

        @unittest.skip("no frobnicator here")
        def test_skips(self):
            pass
""")


class ParseTest(TempDirTest):
    def run_unittest(self, source: str) -> subprocess.CompletedProcess[str]:
        (self.tmp / "test_sample.py").write_text(source)
        return subprocess.run([sys.executable, "-m", "unittest", "test_sample"], cwd=self.tmp,
                              capture_output=True, text=True, timeout=60)

    def test_a_real_run_is_counted_as_unittest_counts_it(self) -> None:
        result = self.run_unittest(MIXED)
        outcome = parse("test_sample", 1.0, result.returncode, result.stdout + result.stderr)
        # What unittest said it ran: 3.12.1 leaves the skipped test out of "Ran N", 3.11 and 3.13 count it.
        self.assertIn(f"Ran {outcome.ran} tests in ", result.stderr)
        self.assertIn(outcome.ran, (3, 4))
        self.assertEqual((outcome.counts["failures"], outcome.counts["errors"], outcome.counts["skipped"]),
                         (1, 1, 1))
        self.assertFalse(outcome.ok)

    def test_a_passing_run_is_ok(self) -> None:
        result = self.run_unittest("import unittest\nclass T(unittest.TestCase):\n    def test_a(self): pass\n")
        self.assertTrue(parse("test_sample", 1.0, result.returncode, result.stderr).ok)

    def test_a_module_that_died_or_did_not_import_is_an_error(self) -> None:
        died = parse("m", 1.0, -9, "....")  # killed before its summary
        self.assertFalse(died.ok)
        self.assertEqual(died.counts["errors"], 1)
        broken = self.run_unittest("import no_such_module_anywhere\n")
        outcome = parse("test_sample", 1.0, broken.returncode, broken.stderr)
        self.assertFalse(outcome.ok)
        self.assertGreaterEqual(outcome.counts["errors"], 1)
        self.assertFalse(parse("m", 1.0, 0, "Ran 0 tests in 0.000s\n\nOK\n").ok, "a module with no tests ran nothing")

    def test_the_summary_adds_every_module_up_and_one_failure_fails_the_run(self) -> None:
        passing = parse("a", 2.0, 0, "Ran 7 tests in 2s\n\nOK (skipped=2)\n")
        failing = parse("b", 1.0, 1, "Ran 4 tests in 1s\n\nFAILED (failures=1, errors=1, skipped=1)\n")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = report([passing, failing], 3.0)
        self.assertEqual(status, 1)
        self.assertIn("Ran 11 tests in 3.000s", printed.getvalue())
        self.assertIn("FAILED (errors=1, failures=1, skipped=3)", printed.getvalue())
        self.assertIn("  b\n", printed.getvalue())
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(report([passing], 2.0), 0)

    def test_the_suites_skip_reasons_are_read(self) -> None:
        output = "Ran 3 tests in 1s\n\nOK (skipped=3)\nskipped 3 test(s):\n    2  tmux is not installed\n" \
                 "    1  no browser\n"
        outcome = parse("m", 1.0, 0, output)
        self.assertEqual(dict(outcome.skips), {"tmux is not installed": 2, "no browser": 1})


class RunnerTest(unittest.TestCase):
    def test_every_module_is_found_once(self) -> None:
        modules = discover([])
        self.assertEqual(len(modules), len(set(modules)))
        self.assertIn("tests.test_suite_runner", modules)
        self.assertIn("tests.cli.dashboard.test_walk", modules)
        self.assertFalse([m for m in modules if ".helpers." in m])
        self.assertEqual([m for m in SLOW_FIRST if m not in modules], [], "a module renamed or gone")
        self.assertEqual(modules[:len(SLOW_FIRST)], list(SLOW_FIRST), "the slowest start first")
        self.assertEqual(discover(["tests.audit"]), sorted(m for m in modules if m.startswith("tests.audit.")))

    def test_a_run_ends_with_unittests_summary_and_a_failure_fails_it(self) -> None:
        ran = subprocess.run([sys.executable, "-m", "tests", "tests.audit.test_anchor_sync"], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(ran.returncode, 0, ran.stdout + ran.stderr)
        self.assertRegex(ran.stdout, r"(?m)^Ran [1-9][0-9]* tests in [0-9.]+s \(1 modules, ")
        self.assertRegex(ran.stdout, r"(?m)^OK$")
        bad = subprocess.run([sys.executable, "-m", "tests", "no.such.module"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no test module is or is under no.such.module", bad.stderr)
