"""``bot-bottle supervise``: the operator's terminal UI over every bottle's pending proposals.

A list (oldest first, ``cli.inbox``) that refreshes itself about once a
second and marks with ``*`` what arrived since your last keypress; each row
says what approving grants, with a badge when it warrants a second look,
before the agent's words. A detail view shows the same first, then the diff
(or the report), then the justification (bounded; ``J`` shows all). The keys
to decide, ``a`` approve, ``m`` modify in ``$EDITOR``, ``r`` reject, ask
through ``tui.deciding``, whose prompts name the proposal.

No key decides by accident: keys typed within ``GUARD_SEC`` after the
proposal under the cursor changed by anything but the operator's own move
(decided elsewhere, a new one where the list was empty, the next one after
a decision) are dropped with a message, and more are dropped until the
operator pauses; when the selected proposal is decided elsewhere the cursor
selects nothing until ``j``/``k``; a decision holds the proposal to what
was listed (``Inbox.current``).
"""

from __future__ import annotations

import contextlib
import curses
import time
from typing import Any

from bot_bottle.bottles import BottleOverview, BottleStore
from bot_bottle.cli.inbox import ANY_CAUTION, Entry, Filters, Inbox, expired_line, inbox_title, log_warning
from bot_bottle.cli.render import describe, inbox_heading, inbox_row
from bot_bottle.cli.tui.deciding import Deciding
from bot_bottle.cli.tui.grants_view import in_force_views
from bot_bottle.cli.tui.notify import notify_environment, start_notify
from bot_bottle.cli.tui.screen import (
    CHECK_MS,
    DETAIL_KEYS,
    ENTER_KEYS,
    ESCAPE,
    FIRST_KEYS,
    LAST_KEYS,
    LIST_KEYS,
    REFRESH_MS,
    REPORT_KEYS,
    UNAVAILABLE,
    TerminalScreen,
    key_name,
    scroll_moves,
)
from bot_bottle.decisions import default_decider
from bot_bottle.errors import BotBottleError, DatabaseReplaced, NotFound
from bot_bottle.file_watch import FileWatch
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import Approval
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import Proposal
from bot_bottle.standing import describe_failure, keep, rules_version, unproven_line
from bot_bottle.text import terminal
from bot_bottle.text.terminal import Line
from bot_bottle.timestamps import utc_now

# Keys typed this soon after the proposal under the cursor changed (not by the operator's own move) are dropped:
# longer than a keystroke already on its way, shorter than reading a row.
GUARD_SEC = 0.8
DECISION_KEYS = ("a", "m", "r", "R")
GRANTS_KEY = "v"


LIST_ROWS_FROM = 5  # the rows a terminal needs to draw one list row: title, columns' names, the row, message, keys


class SuperviseTUI(TerminalScreen):
    """The curses application. ``run`` returns when the operator quits."""

    def __init__(
        self, screen: Any, store: QueueStore, message: str = "", *, bell: bool = False, notify: str | None = None
    ) -> None:
        super().__init__(screen)
        self.store = store
        self.bell = bell
        self.notify = notify or None
        self.loaded = False
        self.inbox = Inbox(store)
        self.filters = Filters()
        self.items: list[Entry] = []
        self.bottles = BottleStore(database=store.db)
        self.overview: list[BottleOverview] = []
        self.seen: set[str] = set()
        self.selected = 0
        #: False after the selected proposal left the queue: nothing is selected until j/k.
        self.armed = True
        self.detail: Proposal | None = None
        self.detail_approval: Approval | None = None
        self.full = False
        self.message = message
        self.schema_note = ""  # what a write's schema guard did, after the message until the next key (verb)
        self.marker: tuple[int, int] | None = None
        self._detail_cache: tuple[tuple[str, int, bool, object], list[tuple[Line, int]]] | None = None
        self.last_search = ""
        self._kept = 0
        self._rules_seen: str | None = None
        #: When the proposal under the cursor last changed by itself (time.monotonic); keys soon after are dropped.
        self.changed_at = float("-inf")
        self._decided: str | None = None
        self.deciding = Deciding(self, store)

    # Data ---------------------------------------------------------------------

    def target(self) -> str | None:
        """The id of the proposal a key would act on: the one open, or the selected row (None: nothing selected)."""
        if self.detail is not None:
            return self.detail.id
        return self.items[self.selected].id if self.items and self.armed else None

    def reload(self, force: bool = False, *, refiltered: bool = False) -> None:
        """Re-read the pending list if anyone committed since the last look.

        ``refiltered``: the operator changed the filters, a move of their own
        like ``j``: a selected row the filter hides did not leave the queue,
        and the list starts again at its first row, keys not held back.
        """
        marker = self.store.changes_marker()
        if not force and marker == self.marker:
            return
        self.marker = marker
        before = self.target()
        current = self.items[self.selected].id if self.items else None
        known = {entry.id for entry in self.items}
        self.items = self.inbox.pending(self.filters)
        self.overview = self.bottles.overview()
        ids = [entry.id for entry in self.items]
        arrived = [entry for entry in self.items if entry.id not in known]
        if arrived and self.loaded:  # not for what was already waiting when the UI opened
            self.announce(arrived)
        decided, self._decided = self._decided, None
        if current in ids:
            self.selected = ids.index(current)
        elif refiltered:
            self.selected, self.armed = 0, True
        else:
            self.selected = min(self.selected, max(0, len(ids) - 1))
            if current is None or not ids:
                self.armed = True
            elif current == decided:  # the operator's own decision: the next one, named
                following = self.items[self.selected].proposal
                self.message += f"; next: {following.short_id} ({following.queue_key}, {following.tool})"
            elif self.loaded and self.armed:
                self.armed = False
                self.message = f"{self._gone_message(current)}; nothing is selected: j/k selects a proposal"
        if self.detail is not None and self.detail.id not in ids:
            if self.detail.id != decided:
                self.message = f"{self._gone_message(self.detail.id)}; back to the list, nothing selected"
                self.armed = False
            self.detail = None
        if self.detail is not None:  # read again (a routes file approved since drifts it): keys wait, as for a move
            fresh = next(entry.approval for entry in self.items if entry.id == self.detail.id)
            if fresh != self.detail_approval:
                self.detail_approval, self.changed_at = fresh, time.monotonic()
        # (An empty list has nothing to act on.)
        if self.loaded and not refiltered and self.target() != before and self.items:
            self.changed_at = time.monotonic()
        self.loaded = True

    def announce(self, arrived: list[Entry]) -> None:
        """New proposals: ring the terminal bell and run the notify command, if asked (for an operator elsewhere)."""
        if self.bell:
            with contextlib.suppress(curses.error):
                curses.beep()
        if self.notify:
            start_notify(self.notify, notify_environment(len(arrived), [e.proposal.queue_key for e in arrived]),
                         self.say)

    def say(self, line: str) -> None:
        """Put ``line`` on the status line (from any thread: the next redraw shows it)."""
        self.message = line

    def refresh(self) -> None:
        """``reload``, but a database that is briefly unavailable is reported, not fatal.

        A long migration or a stuck writer can hold the lock past the busy
        timeout; the operator keeps the screen and the next refresh retries.
        """
        try:  # standing rules and expiry, before the list shows
            version = rules_version(self.store)
            if version != self._rules_seen:  # a rule came or went ('R' here, or elsewhere): every pending one again
                self._rules_seen, self._kept = version, 0
            self._kept = keep(self.store, after=self._kept, unproven=lambda rule_id, why: self.say(
                unproven_line(rule_id, why)))
        except Exception as exc:  # whatever a row in the file does, the operator keeps the screen
            self.message = f"standing rules and expiry not applied: {describe_failure(exc)}"
        self.message = self.message or log_warning(self.store) or ""  # an older copy lists grants revoked since
        try:
            self.reload()
            if self.message.startswith(UNAVAILABLE):
                self.message = ""
        except BotBottleError as exc:
            self.message = _unavailable(exc)

    def load(self, entry: Entry) -> Proposal | None:
        """The whole proposal behind a listed entry, exactly as it was listed; None (and a message) if not."""
        try:
            proposal = self.inbox.current(entry)
        except NotFound:
            self.message = f"{entry.proposal.short_id} is gone from the database"
            return None
        except BotBottleError as exc:
            self.message = _unavailable(exc)
            return None
        if proposal is None:
            self.message = (f"{entry.proposal.short_id} changed in the database since it was listed (proposals are "
                            "immutable: it was rewritten); nothing done: look at it again")
            self.reload(force=True)
            self.changed_at = time.monotonic()
        return proposal

    def _gone_message(self, proposal_id: str) -> str:
        short = proposal_id[:8]
        response = self.store.response(proposal_id)
        if response is None:
            return f"{short} left the queue"
        return f"{short} was decided elsewhere: {response.status} by {response.decided_by}"

    # Drawing --------------------------------------------------------------------

    def draw(self) -> None:
        """Draw the list or the detail view, then the message, position and key lines."""
        self.screen.erase()
        self.position = ""
        height, width = self.screen.getmaxyx()
        self.put(0, 0, self.header().ljust(width), curses.A_REVERSE)
        if self.detail is not None:
            self._draw_detail(height, width)
            keys = REPORT_KEYS if self.detail.report_only else DETAIL_KEYS
        else:
            self._draw_list(height, width)
            keys = LIST_KEYS
        status = "; ".join(part for part in (self.message, self.schema_note) if part)
        self.put(height - 2, 0, status)
        if self.position and terminal.width(self.shown(terminal.line(status))) < width - len(self.position) - 2:
            self.put(height - 2, width - len(self.position) - 1, self.position)  # (over a message, it hid its end)
        self.put(height - 1, 0, self.key_line(keys, width), curses.A_REVERSE)
        self.screen.refresh()

    def header(self) -> str:
        """The title row (``inbox.inbox_title``)."""
        return inbox_title([e.proposal for e in self.items], self.overview, self.filters, self.store.db.path)

    def _draw_list(self, height: int, width: int) -> None:
        rows = max(0, height - LIST_ROWS_FROM + 1)  # under the title and the columns' names; over the message, keys
        if not self.items:
            self.put(2, 2, "no pending proposals match the filter (/ changes it)" if self.filters.active
                     else "no pending proposals; waiting for the bottles...")
            return
        top = max(0, self.selected - rows + 1)
        if len(self.items) > 1:
            self.position = f"{self.selected + 1} of {len(self.items)}" + ("" if self.armed else ", none selected")
        self.put(1, 0, inbox_heading(width), curses.A_BOLD)
        now = utc_now()
        for line, entry in enumerate(self.items[top : top + rows], start=2):
            index = top + line - 2
            chosen = index == self.selected and self.armed
            self.put(line, 0, terminal.pad(self.list_row(entry, width, now), width),
                     curses.A_REVERSE if chosen else 0)

    def list_row(self, entry: Entry, width: int, now: str) -> Line:
        """One list row (``render.inbox_row``), ``*`` marking what arrived since the last keypress."""
        return inbox_row(entry.proposal, entry.approval, width, new=entry.proposal.id not in self.seen, now=now)

    def detail_lines(self, width: int) -> list[tuple[Line, int]]:
        """The detail view's lines, sanitized and wrapped to the screen (continuations marked)."""
        assert self.detail is not None
        key = (self.detail.id, width, self.full, self.inbox.routes_mark)  # read again after a routes file moves
        if self._detail_cache is None or self._detail_cache[0] != key:
            base = self.inbox.routes_base(self.detail)
            self._detail_cache = (key, self.wrapped(describe(self.detail, None, full=self.full, more="J shows them",
                                                             base=base), width))
        return self._detail_cache[1]

    def _draw_detail(self, height: int, width: int) -> None:
        self._draw_text(self.detail_lines(width), height)

    def search(self, again: bool = False) -> None:
        """``/``: ask for text and scroll to the next line holding it (``n``: the next one again)."""
        if not again or not self.last_search:
            wanted = self.prompt("search (Enter finds, Esc cancels): ")
            if not wanted:
                return
            self.last_search = wanted
        _height, width = self.screen.getmaxyx()
        lines = self.detail_lines(width)
        needle = self.last_search.casefold()
        for index in list(range(self.scroll + 1, len(lines))) + list(range(0, self.scroll + 1)):
            if needle in terminal.plain(lines[index][0]).casefold():
                self.scroll = index
                self.message = f"{self.last_search!r}: line {index + 1} of {len(lines)} (n: next)"
                return
        self.message = f"{self.last_search!r}: not found"

    # Input ------------------------------------------------------------------------

    def act(self, key: str) -> None:
        """Approve, modify or reject the proposal on screen or under the cursor, as it was shown."""
        proposal: Proposal | None
        approval: Approval | None
        if self.detail is not None:
            proposal, approval = self.detail, self.detail_approval
        elif not self.items:
            return
        elif not self.armed:
            self.message = "no proposal is selected: j/k selects one"
            return
        elif self.screen.getmaxyx()[0] < LIST_ROWS_FROM:  # the row under the cursor is not drawn: not decided unseen
            self.message = "too small to show the proposal under the cursor: make the terminal taller to decide"
            return
        else:
            entry = self.items[self.selected]
            proposal, approval = self.load(entry), entry.approval
        if proposal is None or approval is None:
            return
        if self.store.response(proposal.id) is not None:
            self.message = f"{self._gone_message(proposal.id)}; nothing recorded"
            self.reload(force=True)
            return
        message = self.deciding.decide(proposal, approval, key)
        if message.startswith(("approved ", "modified ", "rejected ")):
            self._decided = proposal.id
        self.message = message
        self.reload(force=True)

    def guarded(self, key: str | int) -> bool:
        """True (and a message) when ``key`` came too soon after the proposal under the cursor changed by itself.

        Each dropped key extends the window: a burst typed for what was
        there before is dropped whole, not cut in two.
        """
        now = time.monotonic()
        if now - self.changed_at >= GUARD_SEC:
            return False
        self.changed_at = now
        note = self.message.split(" - ", 1)[0] if self.message else "the proposal under the cursor changed"
        self.message = f"{note} - {key_name(key)} ignored: look, then press it again"
        return True

    def handle(self, key: str | int) -> bool:
        """React to one key; False to quit."""
        if key == curses.KEY_RESIZE:
            # Repaint everything: the terminal may have reflowed what was on it, and after two quick
            # resizes curses can believe the size (and so the screen) unchanged.
            self.screen.clear()
            return True
        if self.guarded(key):
            return True
        self.seen.update(e.id for e in self.items)
        self.schema_note = ""
        if key in ("q", "Q"):
            return False
        self.message = ""
        if self.detail is not None:
            return self._detail_key(key)
        if key in (curses.KEY_UP, "k"):
            self.selected = self.selected if not self.armed and self.selected == 0 else max(0, self.selected - 1)
            self.armed = True
        elif key in (curses.KEY_DOWN, "j"):
            if self.armed:
                self.selected = min(max(0, len(self.items) - 1), self.selected + 1)
            self.armed = True  # unarmed, j selects the row now where the gone one was: the one after it
        elif key in FIRST_KEYS:
            self.selected, self.armed = 0, True
        elif key in LAST_KEYS:
            self.selected, self.armed = max(0, len(self.items) - 1), True
        elif key in ENTER_KEYS and self.items:
            if not self.armed:
                self.message = "no proposal is selected: j/k selects one"
                return True
            entry = self.items[self.selected]
            self.detail = self.load(entry)
            self.detail_approval = entry.approval
            self.scroll, self.full = 0, False
        elif key in DECISION_KEYS:
            self.act(str(key))
        elif key == "/":
            words = self.prompt("show only proposals whose row holds (Enter with nothing: all): ")
            if words is not None:
                self.filters = Filters(caution=self.filters.caution, words=words.strip() or None)
                self.reload(force=True, refiltered=True)
        elif key == "w":
            self.filters = Filters(caution=None if self.filters.caution else ANY_CAUTION, words=self.filters.words)
            self.reload(force=True, refiltered=True)
        elif key == GRANTS_KEY:
            keep_going = in_force_views(self, GrantStore(database=self.store.db), default_decider())
            self.reload(force=True)
            return keep_going
        return True

    def _detail_key(self, key: str | int) -> bool:
        height, width = self.screen.getmaxyx()
        moves = scroll_moves(height)
        if key in moves:
            self.scroll = max(0, self.scroll + moves[key])
        elif key in FIRST_KEYS:
            self.scroll = 0
        elif key in LAST_KEYS:
            self.scroll = len(self.detail_lines(width))
        elif key == "/":
            self.search()
        elif key == "n":
            self.search(again=True)
        elif key == "J":
            self.full = not self.full
        elif key in (ESCAPE, "b", curses.KEY_LEFT):
            self.detail = None
        elif key in DECISION_KEYS:
            self.act(str(key))
        return True

    def run(self) -> None:
        """The main loop: draw, sleep until a key, a commit or the next full look, redraw what changed."""
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        self.screen.keypad(True)
        self.screen.timeout(CHECK_MS)
        self.start_colours()
        self.refresh()  # standing rules and expiry applied before the first draw, as at every later look
        self.reload(force=True)
        with contextlib.suppress(BotBottleError):  # what expired while nobody looked, said once, at the start
            self.message = self.message or expired_line(self.store) or ""
        last = time.monotonic()
        file_seen = self.store.file_marker()
        dirty = True
        watch = FileWatch.commits(self.store.db.path) if self.store.db.path.exists() else None
        try:
            while True:
                if dirty:
                    self.draw()
                key = self.next_key(watch, max(0.0, REFRESH_MS / 1000 - (time.monotonic() - last)))
                file_now = self.store.file_marker()
                dirty = key != -1
                if file_now != file_seen or time.monotonic() - last >= REFRESH_MS / 1000:
                    file_seen = file_now
                    self.refresh()
                    last = time.monotonic()
                    dirty = True
                if key != -1 and not self.handle(key):
                    return
        finally:
            if watch is not None:
                watch.close()


def _unavailable(exc: BotBottleError) -> str:
    """The status line for a database that cannot be used: retried, unless it was replaced (restart the TUI)."""
    return f"{UNAVAILABLE}{exc}" if isinstance(exc, DatabaseReplaced) else f"{UNAVAILABLE}{exc} (retrying)"
