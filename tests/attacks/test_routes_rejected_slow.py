"""A routes file of many hosts held to several standing rejections: each host's reading was made once a rule.

The ``[rejected]`` caution compares each host a routes file names with each standing rejection in force for its
bottle (``policy.approval.rejected_cautions``), and ``subjects.rule_overlaps`` read the host's every form (its
IPv4 readings, the addresses it spells) again for each rule, and the rule's for each host: a 1 MiB file of 45,000
hosts took 1.7 s against one rejection and 8.4 s against five in-process ('proposals show': 7.8 s and 18 s), at
the first look of each screen (the TUI's refresh, the dashboard's page, 'proposals list'), and again whenever a
rule was made or ended. Each host's and rule's reading is now remembered (``subjects._host_keys``): six
rejections cost 'proposals show' 9.3 s where one cost 6.7 s.
"""

from __future__ import annotations

import json
import time

from bot_bottle.cli.launch_routes import record_launch_routes
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_BLOCK
from tests.helpers.support import TempDirTest

RULES = 6


class RoutesRejectedSlowTest(TempDirTest):
    def test_many_rejections_cost_about_as_much_as_one(self) -> None:
        store = QueueStore(None)
        self.addCleanup(store.close)
        record_launch_routes(store, "web-1", "routes:\n- pypi.org\n")
        text = "routes:\n" + "".join(f"- h{i}.example{i % 97}.com\n" for i in range(45000))
        proposal = store.submit("web-1", TOOL_EGRESS_BLOCK, text, "mirrors", current_file="routes:\n- pypi.org\n")
        timings = []
        for count in range(RULES):
            said = self.run_cli("rules", "add", "--bottle", "web-1", "--host", f"*.r{count}.crates.io", "--reject",
                                "--json")
            self.assertEqual(said.returncode, 0, said.stderr)
            if count in (0, RULES - 1):
                started = time.monotonic()
                shown = self.run_cli("proposals", "show", proposal.id, "--json")
                timings.append(time.monotonic() - started)
                self.assertEqual(shown.returncode, 0, shown.stderr)
                self.assertNotIn("rejected", [each["kind"] for each in json.loads(shown.stdout)["grants"]["warnings"]])
        one, many = timings
        self.assertLess(many, one * 1.5 + 1, f"{RULES} rejections took {many:.1f} s, one {one:.1f} s")
