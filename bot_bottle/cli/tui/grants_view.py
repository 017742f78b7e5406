"""The TUI's grants: how long an approval lasts (and whether to remember it) when deciding, and the grants view.

``ask_grant`` is the question the TUI asks after the note of an approval (or
the reason of a rejection): for how long, within the tool's maximum, and
whether the same decision stands for matching proposals (``+bottle``,
``+all``). ``GrantsView`` (key ``v``) lists what every bottle may do now,
soonest ending first, and revokes the one under the cursor (``x``, with a
reason).
"""

from __future__ import annotations

import curses
from dataclasses import dataclass

from bot_bottle.cli.tui.screen import CHECK_MS, ESCAPE, TerminalScreen
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import shown_subject
from bot_bottle.policy.lifetimes import DAY, LIFETIMES
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import REMEMBER_ALL, REMEMBER_BOTTLE, Proposal
from bot_bottle.standing import approving_again
from bot_bottle.text import terminal
from bot_bottle.timestamps import parse_duration, spell_duration, time_left, utc_now

GRANTS_KEYS = " ↑↓/jk move  x revoke (with a reason)  Esc/b back  q quit"
_REMEMBER_WORDS = {"+bottle": REMEMBER_BOTTLE, "+all": REMEMBER_ALL}


@dataclass(frozen=True)
class GrantChoice:
    """What the operator chose: a grant's (or a standing rejection's) length in seconds, and a rule's scope."""

    seconds: int | None
    remember: str | None


def grant_question(proposal: Proposal, approving: bool) -> str:
    """The question asked after the note: for how long, and whether to remember (``+bottle``, ``+all``)."""
    life = LIFETIMES[proposal.tool]
    if approving:
        # Examples the answer may give: within this tool's maximum (a token's is 7d, so not 30d).
        examples = "8h, 30d" if life.maximum >= 30 * DAY else "1h, 2d"
        return (f"{proposal.short_id} for how long? Enter: {spell_duration(life.default)} (at most "
                f"{spell_duration(life.maximum)}; {examples} or a time); add +bottle or +all to approve the same "
                "again until then: ")
    return (f"{proposal.short_id}: always reject this and every ask for any of it: +bottle (this bottle's) or "
            "+all (every bottle's); a duration after it: only that long: ")


def parse_grant_choice(answer: str) -> GrantChoice:
    """The operator's answer to ``grant_question``: words ``+bottle``/``+all`` and at most one duration or time."""
    remember: str | None = None
    spelled: list[str] = []
    for word in answer.split():
        if word.lower() in _REMEMBER_WORDS:
            remember = _REMEMBER_WORDS[word.lower()]
        else:
            spelled.append(word)
    if len(spelled) > 1:
        raise ValidationError("for", f"give one duration, not {' '.join(spelled)[:40]!r}")
    seconds = parse_duration("for", spelled[0]) if spelled else None
    return GrantChoice(seconds, remember)


class GrantsView:
    """The list of live grants in the TUI, with a revoke key; drawn with the TUI's sanitizing screen."""

    def __init__(self, tui: TerminalScreen, store: GrantStore, decided_by: str) -> None:
        self.tui = tui
        self.store = store
        self.decided_by = decided_by
        self.grants: list[Grant] = []
        self.selected = 0
        self.message = ""

    def load(self) -> None:
        """Read the grants in force now."""
        try:
            self.grants = self.store.listing()
        except BotBottleError as exc:
            self.message = f"cannot read the grants: {exc}"
            self.grants = []
        self.selected = min(self.selected, max(0, len(self.grants) - 1))

    def draw(self) -> None:
        """The grants, one row each: bottle, tool, what it grants, the time left, who decided."""
        tui = self.tui
        screen = tui.screen
        screen.erase()
        height, width = screen.getmaxyx()
        now = utc_now()
        tui.put(0, 0, f" bot-bottle supervise: {len(self.grants)} grant(s) in force".ljust(width),
                curses.A_REVERSE)
        if not self.grants:
            tui.put(2, 2, "no grants in force")
        for row, grant in enumerate(self.grants[: max(0, height - 3)], start=1):
            left = time_left(now, grant.ends_at)
            by = f"rule {grant.rule_id[:8]}" if grant.rule_id else grant.decided_by
            line = terminal.line(f"{grant.short_id}  {grant.queue_key:<16} {grant.tool:<18} {left:>6}  "
                                 f"{shown_subject(grant.tool, grant.subject_value)}  ({by})")
            tui.put(row, 0, terminal.pad(terminal.fit(line, width), width),
                    curses.A_REVERSE if row - 1 == self.selected else 0)
        tui.put(height - 2, 0, self.message)
        tui.put(height - 1, 0, GRANTS_KEYS.ljust(width - 1), curses.A_REVERSE)
        screen.refresh()

    def run(self) -> bool:
        """Show the grants until Esc/b (True) or q (False: quit the TUI)."""
        self.load()
        screen = self.tui.screen
        try:
            while True:
                self.draw()
                screen.timeout(-1)  # again each time: a revoke's prompt leaves the TUI's short timeout behind it
                key = screen.get_wch()
                if key in ("q", "Q"):
                    return False
                if key in (ESCAPE, "b", curses.KEY_LEFT):
                    return True
                if key in (curses.KEY_UP, "k"):
                    self.selected = max(0, self.selected - 1)
                elif key in (curses.KEY_DOWN, "j"):
                    self.selected = min(max(0, len(self.grants) - 1), self.selected + 1)
                elif key == "x" and self.grants:
                    self.revoke(self.grants[self.selected])
        finally:
            screen.timeout(CHECK_MS)

    def revoke(self, grant: Grant) -> None:
        """Ask for a reason, naming the grant; revoke it (audited), or say why not."""
        reason = self.tui.prompt(
            f"revoke {grant.short_id} ({grant.queue_key}, {describe_subject(grant.tool, grant.subject_value)}); "
            "reason: ", backdrop=self.draw)
        if not reason or not reason.strip():
            self.message = "revoke cancelled: a reason is required"
            return
        try:
            revoked = self.store.revoke(grant.id, reason, revoked_by=self.decided_by)
            again = approving_again(self.store, revoked)
            # Said at once, where the revocation is: else the rule's next approval undoes it without a word.
            self.message = (f"revoked {grant.short_id}, but rule {again.short_id} still approves the same again "
                            f"at the next ask: 'rules revoke {again.short_id}' ends it" if again else
                            f"revoked {grant.short_id}: its sidecar refuses it within 5 s")
        except BotBottleError as exc:
            self.message = str(exc)
        self.load()
