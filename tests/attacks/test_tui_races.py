"""The TUI under decisions made elsewhere: no keystroke records a decision on a proposal the operator did not see.

The operator's terminal is real (tmux, tests/helpers/terminal.py) and runs
``bot-bottle supervise`` in its own process; the decisions "elsewhere" are
made by this test's process (another operator's CLI, a standing rule) at
the worst moments: just before the operator's keys, just after, and while
a burst of keys meant for the proposal that left is still arriving. Every
time, every other proposal stays as it was.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot_bottle.cli.tui.app import GUARD_SEC
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_EGRESS_ALLOW, Response
from tests.helpers.support import REPO, TempDirTest, wait_until
from tests.helpers.terminal import Terminal

ELSEWHERE = "bob@elsewhere"
# What an operator types for one decision without looking up: approve with a note, take the default length,
# and say yes to a second question (a widening one); or reject with a reason.
APPROVE_BURST = ("a", "fine", "Enter", "Enter", "yes", "Enter")
REJECT_BURST = ("r", "too broad", "Enter")


class Desk:
    """One operator's terminal over a database of its own: 14 proposals from 4 bottles (every fifth a widening
    one), ``bot-bottle supervise`` in tmux, and another operator deciding in it from this test's process."""

    def __init__(self, test: TempDirTest, name: str) -> None:
        self.db = test.tmp / f"{name}.db"
        self.store = QueueStore(self.db)
        test.addCleanup(self.store.close)
        for number in range(14):
            host = "*.readthedocs.io" if number % 5 == 0 else f"host{number}.example"
            self.store.submit(f"web-{number % 4}", TOOL_EGRESS_ALLOW, f'{{"host": "{host}"}}', f"need {number}")
        command = (f"cd {shlex.quote(str(REPO))} && env HOME={shlex.quote(str(test.home))} "
                   f"{shlex.quote(sys.executable)} -m bot_bottle supervise --db {shlex.quote(str(self.db))}; "
                   "sleep 30")
        self.term = Terminal(test, command, width=160, height=40)

    def pending_ids(self) -> set[str]:
        return {p.id for p in self.store.pending()}

    def select_one(self) -> str:
        """Wait out the guard, make sure a row is selected, and return the whole id under the cursor."""
        time.sleep(GUARD_SEC + 0.3)
        if self.term.selected() is None:
            self.term.send("j")
            wait_until(lambda: self.term.selected() is not None, 10, what="a selected row")
        short = self.term.selected()
        assert short is not None
        return next(p for p in self.pending_ids() if p.startswith(short))

    def race(self, burst: tuple[str, ...], delay: float, *, open_first: bool = False,
             status: str = STATUS_APPROVED, also: int = 0) -> Race:
        """Decide the row under the cursor elsewhere and type ``burst`` ``delay`` seconds later (before, if < 0);
        what each proposal listed before came to, once the burst has done whatever it was going to do."""
        target = self.select_one()
        if open_first:
            self.term.send("Enter")
            self.term.wait_for("approving grants:")
        before = self.pending_ids()
        others = sorted(before - {target})[:also]  # more decided elsewhere at the same moment

        def elsewhere() -> None:
            for proposal_id in (target, *others):
                # Keys typed first may have decided the target, which the operator saw: the first decision wins.
                with contextlib.suppress(AlreadyDecided):
                    decide(proposal_id, status, "decided elsewhere", decided_by=ELSEWHERE, store=self.store)

        if delay < 0:
            self.term.send(*burst)
            time.sleep(-delay)
            elsewhere()
        else:
            timer = threading.Timer(delay, self.term.send, burst)
            elsewhere()
            timer.start()
            timer.join()
        time.sleep(GUARD_SEC + 0.6)  # whatever the burst was going to do, it has done
        self.term.send("Escape", "Escape")  # close any prompt still open, and the detail view
        time.sleep(0.3)
        return Race(target, delay, others, {p: self.store.response(p) for p in before})


@dataclass(frozen=True)
class Race:
    """One race as it ended: the proposal under the cursor, the delay of the keys, the others decided elsewhere
    at the same moment, and the decision (or None) of every proposal pending before it."""

    target: str
    delay: float
    others: list[str]
    responses: dict[str, Response | None]


class DecidedUnderTheKeysTest(TempDirTest):
    def setUp(self) -> None:
        super().setUp()
        self.desk = Desk(self, "races")
        self.term = self.desk.term
        self.store = self.desk.store
        self.term.wait_for("14 pending")

    def assert_nothing_else_decided(self, race: Race) -> None:
        for proposal_id, response in race.responses.items():
            with self.subTest(proposal=proposal_id[:8]):
                if proposal_id in race.others or (proposal_id == race.target and race.delay >= 0):
                    assert response is not None
                    self.assertEqual(response.decided_by, ELSEWHERE)
                elif proposal_id == race.target:
                    self.assertIsNotNone(response)  # by the operator, who saw it, or elsewhere
                else:
                    self.assertIsNone(response, "a proposal the operator never saw under the cursor was decided")

    def at_once(self, *races: Callable[[Desk], Race]) -> list[tuple[Desk, Race]]:
        """Run each race on a desk of its own, all at the same time (each is mostly waiting out the guard), the
        first on this test's desk; the desks and their races, in order."""
        desks = [self.desk, *(Desk(self, f"races-{n}") for n in range(1, len(races)))]
        for desk in desks[1:]:
            desk.term.wait_for("14 pending")
        outcomes: list[Race | BaseException | None] = [None] * len(races)

        def run(at: int) -> None:
            try:
                outcomes[at] = races[at](desks[at])
            except BaseException as exc:  # re-raised in the test's own thread below
                outcomes[at] = exc

        threads = [threading.Thread(target=run, args=(at,)) for at in range(len(races))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        results: list[tuple[Desk, Race]] = []
        for desk, outcome in zip(desks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            assert outcome is not None, "a race did not end"
            results.append((desk, outcome))
        return results

    def test_a_burst_for_a_proposal_decided_elsewhere_decides_nothing_else(self) -> None:
        """Approve and reject bursts, typed before, as, just after and well after the decision elsewhere.

        Each case on a terminal and database of its own, the seven at once: each is mostly the guard waited
        out, and what one operator's keys do cannot reach another's database."""
        cases = [(APPROVE_BURST, -0.05), (APPROVE_BURST, 0.0), (APPROVE_BURST, 0.15), (APPROVE_BURST, 1.5),
                 (REJECT_BURST, 0.0), (REJECT_BURST, 0.3), (REJECT_BURST, -0.05)]
        results = self.at_once(*(lambda desk, burst=burst, delay=delay: desk.race(burst, delay)
                                 for burst, delay in cases))
        for (burst, delay), (desk, race) in zip(cases, results, strict=True):
            with self.subTest(keys=burst[0], delay=delay):
                self.assert_nothing_else_decided(race)
                desk.term.wait_for(f"{len(desk.pending_ids())} pending")

    def test_from_the_detail_view_and_with_several_decided_at_once(self) -> None:
        """The proposal open in the detail view decided elsewhere (with its neighbours), under approve keys.

        The three cases at once, each on a terminal and database of its own."""
        results = self.at_once(
            lambda desk: desk.race(APPROVE_BURST, 0.05, open_first=True),
            lambda desk: desk.race(APPROVE_BURST, 0.1, also=2, status=STATUS_REJECTED),
            lambda desk: desk.race(REJECT_BURST, 0.0, open_first=True, also=1),
        )
        for (desk, race), left in zip(results, (13, 11, 12), strict=True):
            self.assert_nothing_else_decided(race)
            desk.term.wait_for(f"{left} pending")

    def test_the_prompt_names_the_proposal_it_decides(self) -> None:
        """Each question of a decision names the proposal's short id, bottle, tool and what approving grants."""
        target = self.desk.select_one()
        self.term.send("a")
        screen = self.term.wait_for("note (optional)")
        self.assertIn(f"approve {target[:8]}  bottle ", screen)
        self.assertIn("grants: ", screen)
        self.term.send("ok", "Enter")
        screen = self.term.wait_for("for how long?")
        self.assertIn(f"approve {target[:8]}", screen)
        self.term.send("Escape")
        self.term.wait_for("approve cancelled")
        self.assertIsNone(self.store.response(target))
