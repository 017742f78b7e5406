"""An approval that comes after the scan's time ran out (hostile review 50).

After an approval the gate takes its lock again and compares the repository's
refs with those it judged; that listing ran within the scan's deadline
(--max-seconds, counted from the hook's start), which an operator deciding at
a person's pace had outlived: the approved push was refused as a scan that
'did not finish', and the agent told to push fewer objects. The listing after
the wait has a deadline of its own.
"""

from __future__ import annotations

import time

from bot_bottle.decisions import decide
from bot_bottle.records import STATUS_APPROVED
from bot_bottle.sidecar.git_gate.limits import Limits
from tests.helpers.git_remote import SECRET_ALLOWED, GateCase
from tests.helpers.support import wait_until


class LateApprovalTest(GateCase):
    """The operator takes longer than --max-seconds to approve."""

    def test_an_approval_after_the_scan_deadline_lets_the_push_through(self) -> None:
        self.hook(timeout=60, limits=Limits(max_seconds=4))
        held = self.commit("fixture.py", f'key = "{SECRET_ALLOWED}"  # gitleaks:allow\n')
        waiting = self.start_push(f"{held}:refs/heads/held")
        proposal = self.wait_for_proposal()
        time.sleep(5)  # past the scan's 4 s, counted from the hook's start
        decide(proposal, STATUS_APPROVED, "a fixture", store=self.store)
        _, err = waiting.communicate(timeout=120)
        self.assertEqual(waiting.returncode, 0, err)
        self.assertIn("push accepted: the operator approved", err)
        wait_until(lambda: self.remote_head("held") == held, 10, what="the held branch")
