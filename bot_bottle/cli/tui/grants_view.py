"""The TUI's grants: how long an approval lasts (and whether to remember it) when deciding, and the grants view.

``ask_grant`` is the question the TUI asks after the note of an approval (or
the reason of a rejection): for how long, within the tool's maximum, and
whether the same decision stands for matching proposals (``+bottle``,
``+all``). ``GrantsView`` (key ``v``) lists what every bottle may do now,
soonest ending first, and ``RulesView`` (Tab from there) the standing rules
that decide for the operator; each revokes the one under the cursor (``x``,
with a reason).
"""

from __future__ import annotations

import curses
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot_bottle.cli.common import BOTTLE_COLUMNS, first_line
from bot_bottle.cli.in_force import (
    GrantsListed,
    grant_subjects,
    grants_listed,
    revoke_rule,
    rule_left,
    rule_scope,
    rule_subject,
    shown_record,
)
from bot_bottle.cli.render import TOOL_FROM_WIDTH
from bot_bottle.cli.tui.screen import CHECK_MS, ESCAPE, TerminalScreen
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.policy.lifetimes import DAY, LIFETIMES
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import REMEMBER_ALL, REMEMBER_BOTTLE, Proposal
from bot_bottle.standing import RuleInForce, approving_again, rules_in_force
from bot_bottle.text import terminal
from bot_bottle.timestamps import parse_duration, spell_duration, time_left, utc_now

GRANTS_KEYS = " ↑↓/jk move  x revoke (with a reason)  Tab rules  Esc/b back  q quit"
RULES_KEYS = " ↑↓/jk move  x revoke (with a reason)  Tab grants  Esc/b back  q quit"
BACK, SWITCH, QUIT = "back", "switch", "quit"  # how a list of what is in force was left
Item = TypeVar("Item")
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
            "+all (every bottle's); a duration after it: only that long; Enter alone: this one only, once: ")


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


class _InForceView(Generic[Item]):
    """A list of what is in force in the TUI (grants, or standing rules), with a revoke key; drawn with the TUI's
    sanitizing screen. A subclass says what it lists (``read``), how a row reads (``row``) and how one ends."""

    noun = ""
    keys = ""
    heading = ""  # the names of ``row``'s columns, over them, as the list of proposals has its own
    width = 80  # the screen's, as ``draw`` last read it: a row may leave a column out where it is narrow

    def __init__(self, tui: TerminalScreen, store: GrantStore, decided_by: str) -> None:
        self.tui = tui
        self.store = store
        self.decided_by = decided_by
        self.items: list[Item] = []
        self.selected = 0
        self.top = 0  # the first item on the screen
        self.message = ""

    def read(self) -> list[Item]:
        """What is in force now, in the order listed."""
        raise NotImplementedError

    def row(self, item: Item, now: str) -> str:
        """One item's row, raw (the screen sanitizes it)."""
        raise NotImplementedError

    def heading_at(self, width: int) -> str:
        """``heading`` as a screen ``width`` columns wide shows it (``row`` at that width)."""
        return self.heading

    def bottle_cell(self, bottle: str) -> str:
        """A row's bottle column: ``bottle`` in ``BOTTLE_COLUMNS``, cut with a mark where longer (a slug may be 64
        characters, and one pushed the row's grant off the screen), as the command line's tables cut it."""
        cut = bottle if len(bottle) <= BOTTLE_COLUMNS else bottle[: BOTTLE_COLUMNS - 1] + self.tui.cut_marker
        return f"{cut:<{BOTTLE_COLUMNS}}"

    def named(self, item: Item) -> str:
        """The item as the revoke question names it."""
        raise NotImplementedError

    def end(self, item: Item, reason: str) -> str:
        """Revoke ``item`` with ``reason`` (audited); what to tell the operator. Raises ``BotBottleError``."""
        raise NotImplementedError

    def note(self, item: Item) -> str:
        """What the status line says of the item under the cursor when nothing else is said ("": nothing)."""
        return ""

    def load(self) -> None:
        """Read what is in force now."""
        try:
            self.items = self.read()
        except BotBottleError as exc:
            self.message = f"cannot read the {self.noun}s: {exc}"
            self.items = []
        self.selected = min(self.selected, max(0, len(self.items) - 1))

    def draw(self) -> None:
        """The items, one row each, the one under the cursor reversed; the status line and the keys."""
        tui = self.tui
        screen = tui.screen
        screen.erase()
        height, width = screen.getmaxyx()
        self.width = width
        now = utc_now()
        tui.put(0, 0, f" bot-bottle supervise: {len(self.items)} {self.noun}(s) in force".ljust(width),
                curses.A_REVERSE)
        if not self.items:
            tui.put(2, 2, f"no {self.noun}s in force")
        else:
            tui.put(1, 0, self.heading_at(width), curses.A_BOLD)
        rows = max(1, height - 4)  # scrolled so that the one under the cursor is on the screen
        self.top = min(self.selected, max(self.top, self.selected - rows + 1))
        for row, item in enumerate(self.items[self.top: self.top + rows], start=2):
            line = terminal.line(self.row(item, now))
            tui.put(row, 0, terminal.pad(terminal.fit(line, width), width),
                    curses.A_REVERSE if self.top + row - 2 == self.selected else 0)
        tui.put(height - 2, 0, self.message or (self.note(self.items[self.selected]) if self.items else ""))
        tui.put(height - 1, 0, tui.key_line(self.keys, width), curses.A_REVERSE)
        screen.refresh()

    def run(self) -> str:
        """Show the list until Esc/b (``BACK``), Tab (``SWITCH``: to the other list) or q (``QUIT``)."""
        self.load()
        screen = self.tui.screen
        try:
            while True:
                self.draw()
                screen.timeout(-1)  # again each time: a revoke's prompt leaves the TUI's short timeout behind it
                key = screen.get_wch()
                if key in ("q", "Q"):
                    return QUIT
                if key in (ESCAPE, "b", curses.KEY_LEFT):
                    return BACK
                if key == "\t":
                    return SWITCH
                self.message = ""
                if key in (curses.KEY_UP, "k"):
                    self.selected = max(0, self.selected - 1)
                elif key in (curses.KEY_DOWN, "j"):
                    self.selected = min(max(0, len(self.items) - 1), self.selected + 1)
                elif key == "x" and self.items:
                    self.revoke(self.items[self.selected])
        finally:
            screen.timeout(CHECK_MS)

    def revoke(self, item: Item) -> None:
        """Ask for a reason, naming the item; revoke it (audited), or say why not."""
        reason = self.tui.prompt(f"revoke {self.named(item)}; reason: ", backdrop=self.draw)
        if not reason or not reason.strip():
            self.message = "revoke cancelled: a reason is required"
            return
        try:
            self.message = self.end(item, reason)
        except BotBottleError as exc:
            self.message = str(exc)
        self.load()


class GrantsView(_InForceView[Grant]):
    """The grants in force, soonest ending first: bottle, tool, time left, what each grants, who decided."""

    noun = "grant"
    keys = GRANTS_KEYS
    heading = f"{'ID':<8}  {'BOTTLE':<16} {'TOOL':<18} {'LEFT':>6}  GRANTS  (BY)"

    def heading_at(self, width: int) -> str:
        """Narrower than ``TOOL_FROM_WIDTH``, without the tool, as each row (what it grants says the tool)."""
        return self.heading if width >= TOOL_FROM_WIDTH else f"{'ID':<8}  {'BOTTLE':<16} {'LEFT':>6}  GRANTS  (BY)"

    def __init__(self, tui: TerminalScreen, store: GrantStore, decided_by: str) -> None:
        super().__init__(tui, store, decided_by)
        self.subjects: dict[str, str] = {}  # what each grant grants, in words, by id: read with the grants
        self.listed = GrantsListed([], frozenset(), {})  # where the audit log disagrees with their rows: read too

    def read(self) -> list[Grant]:
        """The grants in force now, soonest ending first, and where the audit log disagrees with their rows
        (``grants_listed``), and what each grants in words (``grant_subjects``)."""
        self.listed = grants_listed(self.store)
        self.subjects = grant_subjects(self.store, self.listed.grants)
        return self.listed.grants

    def row(self, item: Grant, now: str) -> str:
        """Id, bottle, tool, time left, what it grants (badges first), and who decided (a rule or a person)."""
        item = shown_record(item)
        by = f"rule {item.rule_id[:8]}" if item.rule_id else item.decided_by
        tool = f"{item.tool:<18} " if self.width >= TOOL_FROM_WIDTH else ""  # narrower, the room is the grant's
        # Cut as the rules view cuts its bottles: a 64-character slug pushed what the grant lets through off the row.
        return (f"{item.short_id}  {self.bottle_cell(item.queue_key)} {tool}{time_left(now, item.ends_at):>6}  "
                f"{self.listed.mark(item)}{self.subjects[item.id]}  ({by})")

    def named(self, item: Grant) -> str:
        """The grant's id, bottle and subject."""
        item = shown_record(item)
        said = self.subjects[item.id]  # as its row says
        return f"{item.short_id} ({item.queue_key}, {said})"

    def note(self, item: Grant) -> str:
        """Where the audit log and the grant's row disagree, what each says."""
        note = self.listed.note(item)
        return f"grant {shown_record(item).short_id}: {note}" if note else ""

    def end(self, item: Grant, reason: str) -> str:
        """Revoke the grant, and say whether a standing rule approves the same again at the next ask."""
        revoked = self.store.revoke(item.id, reason, revoked_by=self.decided_by)
        again = approving_again(self.store, revoked)
        # Said at once, where the revocation is: else the rule's next approval undoes it without a word.
        return (f"revoked {item.short_id}, but rule {again.short_id} still approves the same again at the next "
                "ask: Tab lists the rules, where x ends it" if again else
                f"revoked {item.short_id}: its sidecar refuses it within 5 s")


class RulesView(_InForceView[RuleInForce]):
    """The standing rules in force as they decide (``standing.rules_in_force``), newest first: bottle, effect,
    time left, what each decides on; one the file and the audit log disagree about is marked and said."""

    noun = "rule"
    keys = RULES_KEYS
    heading = f"{'ID':<8}  {'BOTTLE':<16} {'EFFECT':<7} {'LEFT':>8}  DECIDES ON  (NOTES)"

    def read(self) -> list[RuleInForce]:
        """The rules in force now, as the keeper decides with them, and the file's rows that decide nothing."""
        return rules_in_force(self.store)

    def row(self, item: RuleInForce, now: str) -> str:
        """Id, bottles, effect, time left, a mark where the log and the file disagree, the subject, the notes."""
        rule = shown_record(item.rule)
        mark = "[decides nothing] " if not item.decides else "[kept by the log] " if item.note else \
            "[!] " if item.unconfirmed else ""
        notes = f"  ({first_line(rule.notes)})" if rule.notes else ""
        scope = rule_scope(rule)  # cut: a long one (a row a sidecar wrote) pushed the mark off the screen
        return (f"{rule.short_id}  {self.bottle_cell(scope)} {rule.effect:<7} {rule_left(rule, now):>8}  "
                f"{mark}{rule_subject(rule)}{notes}")

    def named(self, item: RuleInForce) -> str:
        """The rule's id, bottles, effect and subject."""
        rule = shown_record(item.rule)
        return (f"rule {rule.short_id} ({rule_scope(rule)}: {rule.effect} "
                f"{describe_subject(rule.tool, rule.subject_value)})")

    def end(self, item: RuleInForce, reason: str) -> str:
        """Revoke the rule as the keeper decides with it (``in_force.revoke_rule``)."""
        return revoke_rule(self.store, item.rule.id, reason, revoked_by=self.decided_by).told(
            "Tab lists the grants, where x ends one")

    def note(self, item: RuleInForce) -> str:
        """Where the file and the audit log disagree about the rule, what each says; else what it leaves to you."""
        said = item.note or item.unconfirmed
        return f"rule {shown_record(item.rule).short_id}: {said}" if said else ""


def in_force_views(tui: TerminalScreen, store: GrantStore, decided_by: str) -> bool:
    """The grants view, and the rules view Tab switches to (and back), until Esc/b (True) or q (False: quit)."""
    views: tuple[_InForceView[Any], _InForceView[Any]] = (GrantsView(tui, store, decided_by),
                                                           RulesView(tui, store, decided_by))
    shown = 0
    while True:
        left = views[shown].run()
        if left != SWITCH:
            return left == BACK
        shown = 1 - shown
