"""An operator works through 30 proposals from 5 bottles by keyboard in real Chromium, while another operator
(a real `bot-bottle proposals` process) decides some of the same ones: every decision recorded from the page is
on the proposal the page showed, after what approving it grants and before the agent's words."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

from bot_bottle.records import (
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    Proposal,
)
from tests.helpers.dashboard import BrowserCase
from tests.helpers.support import REPO, wait_until

BOTTLES = ("web-1", "web-2", "build-7", "api-3", "docs-4")
ELSEWHERE = "bob@elsewhere"


def payload(number: int) -> tuple[str, str, str | None]:
    """The tool, payload and current file of proposal ``number``: every tool, widening ones, look-alikes."""
    kind = number % 6
    if kind == 0:
        return TOOL_EGRESS_ALLOW, json.dumps({"host": f"docs{number}.python.org", "paths": ["/3/"]}), None
    if kind == 1:
        return TOOL_EGRESS_ALLOW, json.dumps({"host": "*.readthedocs.io" if number % 12 == 1 else
                                              f"*.mirror{number}.example"}), None
    if kind == 2:
        return (TOOL_EGRESS_BLOCK, f"routes:\n- a.example\n- h{number}.example\n" + ("- pypi\u2024org\n"
                                                                                    if number == 8 else ""),
                "routes:\n- a.example\n")
    if kind == 3:
        return TOOL_GITLEAKS_ALLOW, json.dumps({"pushed": [{"ref": "refs/heads/main"}], "findings": [
            {"ref": "refs/heads/main", "commit": f"{number:040x}", "file": f"tests/fixture{number}.pem", "line": 3,
             "rule": "private-key", "line_text": "****"}]}), None
    if kind == 4:
        return TOOL_EGRESS_TOKEN_ALLOW, json.dumps({"host": "api.github.com", "method": "POST", "path": "/repos",
                                                    "detector": "github-pat", "value_length": 40, "snippet": "****",
                                                    "fingerprint": f"{number:064x}"}), None
    return TOOL_EGRESS_ALLOW, json.dumps({"host": f"pypi{number}.org", "methods": ["GET"]}), None


class WorkThroughTest(BrowserCase):
    def decide_elsewhere(self, proposal_id: str) -> None:
        """Another operator's decision, from a process of its own."""
        result = subprocess.run([sys.executable, "-m", "bot_bottle", "proposals", "reject", proposal_id, "--reason",
                                 "not now", "--db", str(self.path)], cwd=REPO, capture_output=True, text=True,
                                timeout=60, env={"HOME": str(self.home), "USER": "bob", "PATH": "/usr/bin:/bin"})
        self.assertEqual(result.returncode, 0, result.stderr)

    def page(self) -> dict[str, object]:
        return dict(self.browser.script(
            "const grant = document.querySelector('[data-part=grant]');"
            "const agent = document.querySelector('[data-part=agent]');"
            "return {id: document.body.dataset.id || null, page: document.body.dataset.page,"
            " forms: !!document.querySelector('#approve button.send:not([disabled])'),"
            " grantFirst: !!(grant && agent && grant.compareDocumentPosition(agent)"
            "   & Node.DOCUMENT_POSITION_FOLLOWING),"
            " grant: grant ? grant.textContent : '', text: document.body.innerText}"))

    def left_page(self, round_: int) -> None:
        """Wait for the page of round ``round_`` to be replaced by the next one (the keys sent move on), a few
        seconds at most: if it stays, the loop looks at the page as it is, as it would after a fixed pause."""
        with contextlib.suppress(AssertionError):
            wait_until(lambda: self.browser.script("return window.__walkRound") != round_, 5, interval=0.02,
                       what="the next page")

    def test_thirty_proposals_from_five_bottles_by_keyboard(self) -> None:
        filed: list[Proposal] = []
        for number in range(30):
            tool, document, current = payload(number)
            filed.append(self.store.submit(BOTTLES[number % 5], tool, document, f"because {number}\nroute:\n  *",
                                           current_file=current))
        by_id = {p.id: p for p in filed}
        self.log_in()
        self.browser.do("wait_text", text="30 pending from 5 bottle(s)")
        self.settle()
        self.browser.keys("j", "Enter")
        seen: dict[str, str] = {}  # what the page showed, by id: what approving grants
        intended: dict[str, str] = {}  # the decisions typed on a page showing that proposal
        # Moments to race: another operator decides the proposal on screen just before the keys, or the next
        # one just before the decision is sent (so the page that follows is one already decided).
        race_current = {3, 11, 19}
        race_next = {7, 15}
        rounds = 0
        while rounds < 60:
            rounds += 1
            wait_until(lambda: self.page()["page"] in ("proposal", "inbox"), 20, what="a proposal's page")
            state = self.page()
            if state["page"] == "inbox":
                break
            current = str(state["id"])
            self.browser.script("window.__walkRound = arguments[0]", rounds)
            self.assertTrue(state["grantFirst"], "what approving grants comes before the agent's words")
            seen[current] = str(state["grant"])
            self.settle()
            if not state["forms"]:  # decided elsewhere already: on to the next
                self.browser.keys("j")
                self.left_page(rounds)
                continue
            proposal = by_id[current]
            step = len(intended)
            if step in race_current:
                self.decide_elsewhere(current)
            following = self.browser.script("return document.body.dataset.next || null")
            approve = step % 4 != 3
            intended[current] = "approved" if approve else "rejected"
            self.browser.keys("a" if approve else "r", f"looked at {proposal.short_id}")
            if step in race_next and following:
                self.decide_elsewhere(following.rsplit("/", 1)[1])
            self.browser.keys("Ctrl+Enter")
            if approve and "widens" in str(state["grant"]) + str(state["text"]).split("What the proposal holds")[0]:
                confirm = self.browser.do("wait_text", text="It reaches more than it reads as", timeout=10) \
                    if step not in race_current else ""
                if confirm:
                    self.assertIn(proposal.short_id, confirm)
                    self.settle()
                    self.browser.keys("a", "Enter")
            if step in race_current:
                # The page learnt of it first (its forms went away), or the server refused the decision.
                wait_until(lambda: "not recorded" in str(self.page()["text"]) or not self.page()["forms"], 10,
                           what="the decision elsewhere to show")
                self.settle()
                self.browser.keys("j")
            self.left_page(rounds)
        self.assertEqual(self.store.pending(), [], "every proposal was decided")
        mine = 0
        for proposal in filed:
            response = self.store.response(proposal.id)
            assert response is not None
            with self.subTest(proposal=proposal.short_id):
                if response.decided_by == ELSEWHERE or response.decided_by.startswith("bob"):
                    continue
                mine += 1
                self.assertTrue(response.decided_by.endswith("(dashboard)"))
                self.assertIn(proposal.id, seen, "decided from a page that never showed it")
                self.assertEqual(response.status, intended[proposal.id])
        self.assertEqual(mine, 30 - len(race_current) - len(race_next))
