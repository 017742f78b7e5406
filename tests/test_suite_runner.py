"""``python3 -m tests`` (tests/helpers/parallel.py): every module's result counted, a failure never read as a pass.

Each case runs a real module in a real child process, the way the suite's
modules run, from a folder of this test's own.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
import threading
import unittest

from tests.helpers.parallel import REPO, SLOW_FIRST, Outcome, Runner, discover, outcome_of, report
from tests.helpers.support import TempDirTest, wait_until

MIXED = """
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
"""

# Modules that must each come out FAILED, whatever they print.
FAILING = {
    "a test that prints a summary of its own, then fails": """
        import sys, unittest
        class T(unittest.TestCase):
            def test_a(self):
                print("Ran 9 tests in 0.1s\\n\\nOK (cached)")
                print("Ran 9 tests in 0.1s\\n\\nOK", file=sys.stderr)
            def test_b(self):
                self.fail("really failed")
    """,
    "a test that ends the process as a success": """
        import os, unittest
        class T(unittest.TestCase):
            def test_a(self):
                print("Ran 1 test in 0.0s\\n\\nOK", flush=True)
                os._exit(0)
    """,
    "a module that does not import": "import no_such_module_anywhere\n",
    "a module with no tests": "print('Ran 3 tests in 0.1s')\nprint()\nprint('OK')\n",
    "an error in setUpClass": """
        import unittest
        class T(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
                raise RuntimeError("no fixture")
            def test_a(self):
                pass
    """,
    "an unexpected success": """
        import unittest
        class T(unittest.TestCase):
            @unittest.expectedFailure
            def test_a(self):
                pass
    """,
    "a test that exits the process": """
        import sys, unittest
        class T(unittest.TestCase):
            def test_a(self):
                sys.exit(0)
    """,
}


class RunnerTestCase(TempDirTest):
    def run_source(self, source: str, name: str = "test_sample") -> Outcome:
        (self.tmp / f"{name}.py").write_text(textwrap.dedent(source))
        return Runner([name], 1, False, root=self.tmp).run_module(name)


class CountingTest(RunnerTestCase):
    def test_a_real_run_is_counted_as_unittest_counts_it(self) -> None:
        outcome = self.run_source(MIXED)
        # As unittest's "Ran N" says: 3.12.1 leaves the skipped test out of it, 3.11 and 3.13 count it.
        self.assertIn(f"Ran {outcome.ran} tests in ", outcome.output)
        self.assertIn(outcome.ran, (3, 4))
        self.assertEqual([outcome.counts[name] for name in ("failures", "errors", "skipped")], [1, 1, 1])
        self.assertEqual(dict(outcome.skips), {"no frobnicator here": 1})
        self.assertTrue(outcome.reported)
        self.assertFalse(outcome.ok)

    def test_a_passing_module_is_ok_and_one_all_skipped_too(self) -> None:
        passing = self.run_source("import unittest\nclass T(unittest.TestCase):\n    def test_a(self): pass\n")
        self.assertTrue(passing.ok, passing.output)
        skipped = self.run_source("import unittest\n@unittest.skip('no tool')\nclass T(unittest.TestCase):\n"
                                  "    def test_a(self): pass\n")
        self.assertTrue(skipped.ok, skipped.output)

    def test_no_way_of_failing_reads_as_a_pass(self) -> None:
        for case, source in FAILING.items():
            with self.subTest(case):
                outcome = self.run_source(source)
                self.assertFalse(outcome.ok, outcome.output)
                self.assertGreaterEqual(outcome.counts["failures"] + outcome.counts["errors"]
                                        + outcome.counts["unexpected successes"], 1, outcome.output)

    def test_a_module_that_hangs_is_stopped(self) -> None:
        pid_file = self.tmp / "pid"
        (self.tmp / "test_hang.py").write_text(textwrap.dedent(f"""
            import os, subprocess, sys, time, unittest
            class T(unittest.TestCase):
                def test_a(self):
                    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
                    open({str(pid_file)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
                    time.sleep(600)
        """))
        runner = Runner(["test_hang"], 1, False, root=self.tmp)
        finished: list[Outcome] = []
        thread = threading.Thread(target=lambda: finished.append(runner.run_module("test_hang")), daemon=True)
        thread.start()
        wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 60,
                   what="the hanging module to start")
        pids = [int(pid) for pid in pid_file.read_text().split()]
        runner.stop()  # what an interrupt, a SIGTERM or the module timeout does
        thread.join(30)
        self.assertEqual(len(finished), 1)
        self.assertFalse(finished[0].ok)
        wait_until(lambda: not any(_running(pid) for pid in pids), 10, what="the module and its child to be stopped")


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process (gone, or a zombie waiting to be reaped, is stopped)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:") and "zombie" in line for line in status)
    except OSError:
        return False


class SummaryTest(unittest.TestCase):
    def counts(self, ran: int, **named: object) -> str:
        document: dict[str, object] = {"ran": ran, "failures": 0, "errors": 0, "skipped": [],
                                       "expected failures": 0, "unexpected successes": 0}
        document.update({name.replace("_", " "): value for name, value in named.items()})
        return json.dumps(document)

    def test_the_summary_adds_every_module_up_and_one_failure_fails_the_run(self) -> None:
        passing = outcome_of("a", 2.0, 0, "", self.counts(7, skipped=["no tmux", "no tmux"]))
        failing = outcome_of("b", 1.0, 1, "", self.counts(4, failures=1, errors=1, skipped=["no browser"]))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = report([passing, failing], 3.0)
        self.assertEqual(status, 1)
        self.assertIn("Ran 11 tests in 3.000s", printed.getvalue())
        self.assertIn("FAILED (failures=1, errors=1, skipped=3)", printed.getvalue())
        self.assertIn("  b\n", printed.getvalue())
        self.assertIn("    2  no tmux\n", printed.getvalue())
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertEqual(report([passing], 2.0), 0)

    def test_counts_that_are_missing_or_junk_are_an_error(self) -> None:
        for counts in (None, "", "not json", "[]", '{"ran": 3}', self.counts(3, failures="many")):
            with self.subTest(counts=counts):
                outcome = outcome_of("m", 1.0, 0, "Ran 3 tests in 1s\n\nOK\n", counts)
                self.assertFalse(outcome.ok)
                self.assertEqual(outcome.counts["errors"], 1)
        self.assertFalse(outcome_of("m", 1.0, -9, "", self.counts(3)).ok, "killed after writing its counts")


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

    def test_ci_runs_the_readmes_test_command(self) -> None:
        """.ci/run runs what the README tells a new user to run, word for word, on each interpreter."""
        printed = subprocess.run([str(REPO / ".ci" / "readme-test-command")], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.strip()
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        self.assertIn(f"Run the tests (from the repository root; nothing to install):\n\n    {printed}\n", readme)
        self.assertEqual(printed, "python3 -m tests")
        ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
        self.assertIn("test_command=$(.ci/readme-test-command)", ci)
        self.assertIn('PATH="$shim:$PATH" bash -c "$test_command"', ci)

    def test_a_run_ends_with_unittests_summary(self) -> None:
        ran = subprocess.run([sys.executable, "-m", "tests", "tests.audit.test_anchor_sync"], cwd=REPO,
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(ran.returncode, 0, ran.stdout + ran.stderr)
        self.assertRegex(ran.stdout, r"(?m)^Ran [1-9][0-9]* tests in [0-9.]+s \(1 modules, ")
        self.assertRegex(ran.stdout, r"(?m)^OK$")
        bad = subprocess.run([sys.executable, "-m", "tests", "no.such.module"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no test module is or is under no.such.module", bad.stderr)
