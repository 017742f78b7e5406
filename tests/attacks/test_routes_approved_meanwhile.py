"""A routes file approved for the bottle while another decision on it is on its way to the database.

Hostile review 52: ``proposals approve --digest D`` (and the TUI's and the
dashboard's forms) held what approving a routes file adds to what it read
before the deciding transaction. Another routes approval that committed in
between (another operator, another screen, a standing rule the keeper
applied to a file the agent filed at that moment) changed what the file is
read against, and the approval was recorded anyway: the digest printed when
it read "adds c.example" approved a file that put back the host the other
approval dropped. The other approval is held inside its transaction here
(a real second process, paused there) so the window is wide enough to hit.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout, suppress
from unittest import mock

from bot_bottle.cli import main, proposals_decide
from bot_bottle.decisions import decide
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_BLOCK
from tests.cli.test_proposals_cmds import CliTestCase, TerminalOutput
from tests.helpers.support import REPO

WITH_EVIL = "routes:\n- a.com\n- evil-exfil.example.net\n"

# A host process approving a routes file, paused inside its transaction until told to go on (a line on stdin).
_SLOW_APPROVAL = r'''
import sys
from bot_bottle import decisions
from bot_bottle.queue_store import QueueStore
real = decisions.end_replaced_routes_in
def paused(*args, **kwargs):
    print("inside", flush=True)
    sys.stdin.readline()
    return real(*args, **kwargs)
decisions.end_replaced_routes_in = paused
decisions.decide(sys.argv[2], "approved", store=QueueStore(sys.argv[1]))
print("committed", flush=True)
'''


class ApprovedInBetweenTest(CliTestCase):
    def setUp(self) -> None:
        super().setUp()
        first = self.store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL, "x", current_file="routes:\n- a.com\n")
        decide(first.id, STATUS_APPROVED, store=self.store)
        self.adding = self.store.submit("web-1", TOOL_EGRESS_BLOCK, WITH_EVIL + "- c.example\n", "add c",
                                        current_file=WITH_EVIL)
        self.dropping = self.store.submit("web-1", TOOL_EGRESS_BLOCK, "routes:\n- a.com\n", "drop it",
                                          current_file=WITH_EVIL)

    def paused_approval(self) -> subprocess.Popen[str]:
        """The dropping file's approval, by another host process, paused inside its transaction."""
        other = subprocess.Popen([sys.executable, "-c", _SLOW_APPROVAL, str(self.store.db.path), self.dropping.id],
                                 cwd=REPO, env={**os.environ, "HOME": str(self.home)}, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        self.addCleanup(other.wait, 30)
        assert other.stdout is not None
        self.assertEqual(other.stdout.readline().strip(), "inside")
        return other

    def test_a_digest_read_before_approves_nothing_after(self) -> None:
        shown = json.loads(self.cli("proposals", "show", self.adding.id, "--json")[1])
        self.assertIn("routes file: adds c.example", json.dumps(shown))
        other = self.paused_approval()
        # The operator's script, in its own process: it reads before the other commits, and waits on its lock.
        script = subprocess.Popen([sys.executable, "-m", "bot_bottle", "proposals", "approve", self.adding.short_id,
                                   "--digest", shown["digest"]], cwd=REPO, env={**os.environ, "HOME": str(self.home)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(script.wait, 30)
        with suppress(subprocess.TimeoutExpired):
            script.wait(3)  # it read and checked the digest, then waits for the write lock
        out, _ = other.communicate("go\n", timeout=30)
        self.assertEqual(out.strip(), "committed")
        stdout, stderr = script.communicate(timeout=30)
        self.assertEqual(script.returncode, 1, stdout + stderr)
        # (Refused by the deciding transaction; on a machine so slow that the command read only after the other
        # committed, by the digest's own check, in its words: either way, nothing recorded.)
        self.assertRegex(stderr, "the routes file on record for web-1 changed|the one on record for its "
                         "bottle changed since")
        self.assertIsNone(self.store.response(self.adding.id))
        self.assertEqual(self.store.response(self.dropping.id).status, STATUS_APPROVED)  # type: ignore[union-attr]

    def test_a_rejection_is_not_held_to_it(self) -> None:
        other = self.paused_approval()
        script = subprocess.Popen([sys.executable, "-m", "bot_bottle", "proposals", "reject", self.adding.short_id,
                                   "--reason", "no"], cwd=REPO, env={**os.environ, "HOME": str(self.home)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(script.wait, 30)
        with suppress(subprocess.TimeoutExpired):
            script.wait(1.5)
        other.communicate("go\n", timeout=30)
        stdout, stderr = script.communicate(timeout=30)
        self.assertEqual(script.returncode, 0, stdout + stderr)
        self.assertEqual(self.store.response(self.adding.id).status, STATUS_REJECTED)  # type: ignore[union-attr]

    def test_a_question_answered_after_another_approval_records_nothing(self) -> None:
        """On a terminal the command shows what approving adds and asks: the other approval lands while the
        operator reads (no race at all: the question waits for as long as they take), and 'yes' approved what
        the question no longer described."""
        asked: list[str] = []

        def answered_late(question: str, why_typed: str = "") -> bool:
            asked.append(question)
            decide(self.dropping.id, STATUS_APPROVED, store=self.store)  # from another screen, meanwhile
            return True

        terminal, errors = TerminalOutput(), io.StringIO()
        with mock.patch.object(proposals_decide, "confirm", answered_late), \
                mock.patch.object(sys.stdin, "isatty", return_value=True), \
                redirect_stdout(terminal), redirect_stderr(errors):
            code = main(["proposals", "approve", self.adding.short_id])
        out, err = terminal.getvalue(), errors.getvalue()
        self.assertEqual(len(asked), 1)
        self.assertIn("routes file: adds c.example", out)
        self.assertEqual(code, 1, out + err)
        self.assertIn("the routes file on record for web-1 changed (another approved, or it was revoked) since", err)
        self.assertIsNone(self.store.response(self.adding.id))

    def test_one_commands_own_approvals_change_no_reading(self) -> None:
        """Two routes files of one bottle approved in one command, each as its digest read it: the first one
        recorded does not refuse the second (each is held to what it read before either is recorded)."""
        digests = [json.loads(self.cli("proposals", "show", each.id, "--json")[1])["digest"]
                   for each in (self.adding, self.dropping)]
        code, out, err = self.cli("proposals", "approve", self.adding.short_id, self.dropping.short_id,
                                  "--digest", digests[0], "--digest", digests[1])
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual(self.store.response(self.dropping.id).status, STATUS_APPROVED)  # type: ignore[union-attr]
