"""The supervise server against the official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned)."""

from __future__ import annotations

from bot_bottle.sidecar.launcher import spawn
from tests.helpers.conformance import APPLICABLE, assert_conformant, expected_failures
from tests.helpers.support import REPO, TempDirTest


class ConformanceTest(TempDirTest):
    def test_the_official_suite_against_the_server(self) -> None:
        """Every scenario of the suite: initialize, ping, tools-list and DNS-rebinding protection pass each check;
        the ones that do not apply to a tools-only, stateless server fail as .ci/conformance lists them."""
        server, url = spawn("conformance", self.tmp / "c.db", "--wait-seconds", "5")
        self.addCleanup(lambda: (server.terminate(), server.communicate(timeout=20)))
        assert_conformant(self, url, self.tmp / "results")

    def test_the_readme_says_which_scenarios_do_not_apply(self) -> None:
        """Each scenario the suite may fail here is named in the README (with why), and no applicable one is."""
        readme = (REPO / "README.md").read_text()
        section = readme[readme.index("## The MCP conformance suite"):]
        section = section[:section.index("\n## ", 1)]
        for scenario in expected_failures():
            self.assertIn(f"`{scenario}`", section)
        for scenario in APPLICABLE:
            self.assertIn(f"`{scenario}`", section)
        self.assertEqual(len(set(expected_failures())), 28)


