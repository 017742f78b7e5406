"""A routes file of many hosts held to several standing rejections: each host is read once, not once a rule.

The ``[rejected]`` caution compares each host a routes file names with each standing rejection in force for its
bottle (``policy.approval.rejected_cautions``), and ``subjects.rule_overlaps`` read the host's every form (its
IPv4 readings, the addresses it spells) again for each rule, and the rule's for each host: a 1 MiB file of 45,000
hosts took 1.7 s against one rejection and 8.4 s against five in one process ('proposals show': 7.8 s and 18 s,
measured by hostile review 70), at the first look of each screen and again whenever a rule was made or ended.
Each host's and rule's reading is now remembered (``subjects._host_keys``). Counted here, not timed: the readings
made for a file of H hosts against R rules are H + R, where they were about 2 x H x R.
"""

from __future__ import annotations

from unittest import mock

from bot_bottle.policy import subjects
from bot_bottle.policy.approval import Rejection, rejected_cautions
from tests.helpers.support import TempDirTest

HOSTS = 3000
RULES = 6


class RoutesRejectedReadingsTest(TempDirTest):
    def test_each_host_is_read_once_whatever_the_number_of_rejections(self) -> None:
        text = "routes:\n" + "".join(f"- h{i}.example{i % 97}.com\n" for i in range(HOSTS)) + "- static.r3.crates.io\n"
        rejections = [Rejection(f"{count:08x}" + "0" * 24, {"host": f"*.r{count}.crates.io", "methods": [],
                                                             "paths": []}, True, "web-1") for count in range(RULES)]
        getattr(subjects._host_keys, "cache_clear", lambda: None)()  # (no cache before the fix)
        with mock.patch.object(subjects, "spelled_addresses", wraps=subjects.spelled_addresses) as read:
            cautions = rejected_cautions(text, "web-1", rejections)
        self.assertEqual([caution.kind for caution in cautions], ["rejected"])
        self.assertIn(f"which standing rejection {3:08x} rejects for web-1", cautions[0].text)
        # BROKE before: about 2 x 3,001 x 6 readings, each host's forms read again for every rule.
        self.assertLessEqual(read.call_count, HOSTS + 1 + RULES)
