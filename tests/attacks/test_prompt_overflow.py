"""The TUI's confirmation of an approval showed the end of what approving grants, not its host or its methods.

A prompt (approve's note, the grant's length, the second ask, reject's
reason) draws what it is about above it: ``approve ID  bottle B  TOOL``,
then ``grants: HOST (METHODS; PATHS)``, then the cautions. Where those
took more rows than the screen had, the prompt kept the *last* rows. A
route of 64 long paths (as many as a route may name) filled them: on an
80x24 terminal, 'a' on the list asked 'approve 4b9d20c2; note (optional)'
under nothing but '/simple/p33xxx/ ... /simple/p62xxx/)', the bottle, the
host, the methods (DELETE, GET) and the first paths (/admin/) drawn out
of sight, and Enter, Enter approved them. The same at 40x12 with 31 short
paths. Now the start of each line is kept, and the longest is cut at its
end with a marker saying where it is whole (the detail view).
"""

from __future__ import annotations

import json
import shlex
import sys

from bot_bottle.queue_store import QueueStore
from bot_bottle.records import TOOL_EGRESS_ALLOW
from tests.helpers.support import REPO, TempDirTest
from tests.helpers.terminal import Terminal


class PromptOverflowTest(TempDirTest):
    def supervise(self, db: str, width: int, height: int) -> Terminal:
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(self.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(db)}; sleep 30")
        term = Terminal(self, command, width=width, height=height)
        term.wait_for("1 pending")
        return term

    def assert_whole_start(self, screen: str, short_id: str) -> None:
        flat = "".join(line.removeprefix("\u21aa ").rstrip() for line in screen.splitlines())
        self.assertIn(f"approve {short_id}", flat, screen)
        self.assertIn("bottle web-1", flat, screen)
        self.assertIn("grants: pypi.org (DELETE,GET; /admin/", flat, screen)

    def test_an_approvals_prompts_keep_the_host_and_methods_in_sight(self) -> None:
        for (width, height), paths in (((80, 24), [f"/simple/p{i:02d}" + "x" * 40 + "/" for i in range(63)]),
                                       ((40, 12), [f"/simple/p{i:02d}/" for i in range(30)])):
            with self.subTest(width=width, height=height):
                db = str(self.tmp / f"prompt-{width}.db")
                route = {"host": "pypi.org", "methods": ["GET", "DELETE"], "paths": [*paths, "/admin/"]}
                with QueueStore(db) as store:
                    proposal = store.submit("web-1", TOOL_EGRESS_ALLOW, json.dumps(route), "wheels")
                term = self.supervise(db, width, height)
                term.send("a")
                self.assert_whole_start(term.wait_for("note (optional)"), proposal.short_id)
                term.send("Enter")  # no note; then how long the grant stands, asked under the same lines
                self.assert_whole_start(term.wait_for("then:"), proposal.short_id)
                term.send("Escape")
                with QueueStore(db) as store:
                    self.assertIsNone(store.response(proposal.id), "nothing recorded")
