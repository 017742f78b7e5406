"""``bot-bottle supervise``: the operator's terminal UI over every bottle's pending proposals.

A list (oldest first) that refreshes itself about once a second and marks
with ``*`` what arrived since your last keypress; a detail view with the
justification and the diff (or the report); and the keys to decide: ``a``
approve, ``m`` modify in ``$EDITOR``, ``r`` reject. A proposal decided
elsewhere while it is on screen is reported and the view moves on.
"""

from __future__ import annotations

import contextlib
import curses
import os
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bot_bottle.bottles import BottleOverview, BottleStore
from bot_bottle.cli.common import age, first_line
from bot_bottle.cli.render import describe, modification
from bot_bottle.cli.tui.grants_view import GrantsView, grant_question, parse_grant_choice
from bot_bottle.cli.tui.screen import (
    CHECK_MS,
    CONFIRM_KEYS,
    DETAIL_KEYS,
    ENTER_KEYS,
    ESCAPE,
    FIRST_KEYS,
    INVALID_KEYS,
    LAST_KEYS,
    LIST_KEYS,
    REFRESH_MS,
    REPORT_KEYS,
    UNAVAILABLE,
    TerminalScreen,
    scroll_moves,
)
from bot_bottle.decisions import decide, default_decider
from bot_bottle.errors import AlreadyDecided, AnchorNotWritten, BotBottleError, NotFound, ValidationError
from bot_bottle.file_watch import FileWatch
from bot_bottle.grants import GrantStore
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    Proposal,
    ProposalSummary,
)
from bot_bottle.standing import keep
from bot_bottle.text import terminal
from bot_bottle.text.terminal import Line

NOTIFY_TIMEOUT_SEC = 30.0  # a notify command still running then is left behind, and said to be
_VERB = {STATUS_APPROVED: "approve", STATUS_MODIFIED: "modify", STATUS_REJECTED: "reject"}


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
        self.items: list[ProposalSummary] = []
        self.bottles = BottleStore(database=store.db)
        self.overview: list[BottleOverview] = []
        self.seen: set[str] = set()
        self.selected = 0
        self.detail: Proposal | None = None
        self.message = message
        self.marker: tuple[int, int] | None = None
        self._detail_cache: tuple[tuple[str, int], list[tuple[Line, int]]] | None = None
        self.last_search = ""
        self._kept = 0

    # Data ---------------------------------------------------------------------

    def reload(self, force: bool = False) -> None:
        """Re-read the pending list if anyone committed since the last look."""
        marker = self.store.changes_marker()
        if not force and marker == self.marker:
            return
        self.marker = marker
        current = self.items[self.selected].id if self.items else None
        # Summaries only: a payload is loaded when its proposal is opened or decided.
        before = {p.id for p in self.items}
        self.items = self.store.pending_summaries()
        self.overview = self.bottles.overview()
        ids = [p.id for p in self.items]
        arrived = [p for p in self.items if p.id not in before]
        if arrived and self.loaded:  # not for what was already waiting when the UI opened
            self.announce(arrived)
        self.loaded = True
        self.selected = ids.index(current) if current in ids else min(self.selected, max(0, len(ids) - 1))
        if self.detail is not None and self.detail.id not in ids:
            self.message = self._gone_message(self.detail)
            self.detail = None

    def announce(self, arrived: list[ProposalSummary]) -> None:
        """New proposals: ring the terminal bell and run the notify command, if asked (for an operator elsewhere)."""
        if self.bell:
            with contextlib.suppress(curses.error):
                curses.beep()
        if self.notify:
            # What the agents wrote reaches the command only as environment values, never as shell text.
            env = {**os.environ, "BOT_BOTTLE_NEW_PROPOSALS": str(len(arrived)),
                   "BOT_BOTTLE_NEW_BOTTLES": ",".join(sorted({p.queue_key for p in arrived}))}
            threading.Thread(target=self._run_notify, args=(self.notify, env), daemon=True).start()

    def _run_notify(self, command: str, env: dict[str, str]) -> None:
        """Run the operator's notify command through the shell (as --help says); a failure is said on the
        status line, with the last line it wrote on stderr, instead of passing in silence."""
        try:
            done = subprocess.run(["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=NOTIFY_TIMEOUT_SEC,
                                  start_new_session=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.message = f"the notify command did not run to its end: {exc}"
            return
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            self.message = f"the notify command exited {done.returncode}" + (f": {said[-1]}" if said else "")

    def refresh(self) -> None:
        """``reload``, but a database that is briefly unavailable is reported, not fatal.

        A long migration or a stuck writer can hold the lock past the busy
        timeout; the operator keeps the screen and the next refresh retries.
        """
        try:
            self._kept = keep(self.store, after=self._kept)  # standing rules and expiry, before the list shows
        except BotBottleError as exc:
            self.message = f"standing rules and expiry not applied: {exc}"
        try:
            self.reload()
            if self.message.startswith(UNAVAILABLE):
                self.message = ""
        except BotBottleError as exc:
            self.message = f"{UNAVAILABLE}{exc} (retrying)"

    def load(self, summary: ProposalSummary) -> Proposal | None:
        """The whole proposal behind a listed summary; None (and a message) if the database is unavailable."""
        try:
            return self.store.get(summary.id)
        except BotBottleError as exc:
            self.message = f"{UNAVAILABLE}{exc} (retrying)"
            return None

    def _gone_message(self, proposal: Proposal) -> str:
        response = self.store.response(proposal.id)
        if response is None:
            return f"{proposal.short_id} left the queue"
        return f"{proposal.short_id} was decided elsewhere: {response.status} by {response.decided_by}"

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
        self.put(height - 2, 0, self.message)
        if self.position:
            self.put(height - 2, max(0, width - len(self.position) - 1), self.position)
        self.put(height - 1, 0, keys.ljust(width), curses.A_REVERSE)
        self.screen.refresh()

    def header(self) -> str:
        """The title row: the pending count, then each bottle with pending work (its count) and stale ones flagged.

        A running bottle whose sidecar went silent is ``STALE``: what it filed
        waits for a caller who is gone.
        """
        bottles = len({p.queue_key for p in self.items})
        shown = [f"{o.bottle.slug} {len(o.pending)}" + (" STALE" if o.bottle.stale() else "")
                 for o in self.overview if o.pending or o.bottle.stale()]
        title = f" bot-bottle supervise: {len(self.items)} pending from {bottles} bottle(s)"
        return f"{title}: {', '.join(shown)}  {self.store.db.path}" if shown else f"{title}  {self.store.db.path}"

    def _draw_list(self, height: int, width: int) -> None:
        rows = max(0, height - 3)
        if not self.items:
            self.put(2, 2, "no pending proposals; waiting for the bottles...")
            return
        top = max(0, self.selected - rows + 1)
        if len(self.items) > 1:
            self.position = f"{self.selected + 1} of {len(self.items)}"
        for line, proposal in enumerate(self.items[top : top + rows], start=1):
            index = top + line - 1
            self.put(line, 0, terminal.pad(self.list_row(proposal, width), width),
                     curses.A_REVERSE if index == self.selected else 0)

    def list_row(self, proposal: Proposal | ProposalSummary, width: int) -> Line:
        """One list row: every field sanitized and cut to its column, the whole cut to ``width``."""
        Segment = terminal.Segment
        new = "*" if proposal.id not in self.seen else " "
        row: Line = [Segment(f"{new} {proposal.short_id}  ")]
        row += terminal.pad(terminal.fit(terminal.line(proposal.queue_key), 16), 17)
        row += terminal.pad(terminal.fit(terminal.line(proposal.tool), 18), 19)
        row.append(Segment(f"{age(proposal.created_at):>4}  "))
        row += terminal.line(first_line(proposal.justification))
        return terminal.fit(row, width)

    def detail_lines(self, width: int) -> list[tuple[Line, int]]:
        """The detail view's lines, sanitized and wrapped to the screen (continuations marked)."""
        assert self.detail is not None
        key = (self.detail.id, width)
        if self._detail_cache is None or self._detail_cache[0] != key:
            self._detail_cache = (key, self.wrapped(describe(self.detail, None), width))
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


    def edit(self, proposal: Proposal, text: str) -> str | None:
        """Open ``text`` in $EDITOR (default vi); the edited text, or None if it is empty or the proposal's own."""
        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        with tempfile.TemporaryDirectory(prefix="bot-bottle-edit-") as folder:
            path = Path(folder) / f"{proposal.short_id}-{proposal.tool}.txt"
            path.write_text(text, encoding="utf-8")
            curses.def_prog_mode()
            curses.endwin()
            try:
                result = subprocess.run([*editor, str(path)], check=False)
            except OSError as exc:
                self.message = f"cannot run the editor {editor[0]!r}: {exc.strerror}"
                return None
            finally:
                curses.reset_prog_mode()
                self.screen.refresh()
            if result.returncode != 0:
                self.message = f"the editor exited with {result.returncode}: modify cancelled"
                return None
            try:
                with path.open(encoding="utf-8", newline="") as handle:  # the bytes as written: no newline translation
                    edited = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                self.message = f"cannot read the edited file: {exc}"
                return None
        if not edited.strip() or edited == proposal.payload:
            self.message = "modify cancelled: the file was empty or unchanged"
            return None
        return edited

    def confirm_modification(self, proposal: Proposal) -> str | None:
        """Edit, then show the operator their own diff (proposed -> final) to confirm; the final text or None.

        A file its tool cannot take is shown with the reason and can only be
        edited again or cancelled. What is returned is exactly what was shown.
        """
        text = proposal.payload
        while True:
            edited = self.edit(proposal, text)
            if edited is None:
                return None
            text = edited
            accept: tuple[str, ...] = ("y", "e")
            try:
                shown, keys = modification(proposal, text), CONFIRM_KEYS
            except ValidationError as exc:
                shown = [f"cannot record this file: {exc}", "", "your file:", *text.split("\n")]
                keys, accept = INVALID_KEYS, ("e",)
            self.scroll = 0
            answer = self.modal(shown, keys, accept)
            if answer == "y":
                return text
            if answer != "e":
                self.message = "modify cancelled: nothing recorded"
                return None


    def act(self, key: str) -> None:
        """Approve, modify or reject the proposal under the cursor (or on screen)."""
        proposal = self.detail or (self.load(self.items[self.selected]) if self.items else None)
        if proposal is None:
            return
        label = f"{proposal.short_id} ({proposal.queue_key}, {proposal.tool})"
        final: str | None = None
        if key == "a":
            status = STATUS_APPROVED
            ask = "reason for approving (required): " if proposal.report_only else "approve; note (optional): "
            notes = self.prompt(ask)
            if notes is None or (proposal.report_only and not notes.strip()):
                self.message = "approve cancelled" + (": a reason is required" if notes is not None else "")
                return
        elif key == "m":
            if proposal.report_only:
                self.message = f"{proposal.tool} is report-only: approve it with a reason or reject it"
                return
            status = STATUS_MODIFIED
            final = self.confirm_modification(proposal)
            if final is None:
                return
            notes = self.prompt("modified; note (optional): ")
            if notes is None:
                self.message = "modify cancelled"
                return
        else:
            status = STATUS_REJECTED
            notes = self.prompt(f"reason for rejecting {label}: ")
            if not notes or not notes.strip():
                self.message = "reject cancelled: a reason is required"
                return
        # An approval says what it grants and asks for how long; 'R' asks whether a rejection stands for good.
        answer = self.prompt(grant_question(proposal, status != STATUS_REJECTED)) if key != "r" else ""
        if answer is None:
            self.message = f"{_VERB[status]} cancelled: nothing recorded"
            return
        try:
            choice = parse_grant_choice(answer)
            decide(proposal.id, status, notes, final, store=self.store, shown=proposal, grant_for=choice.seconds,
                   remember=choice.remember)
            self.message = f"{status} {label}" + (f", remembered for {choice.remember}" if choice.remember else "")
        except AnchorNotWritten as exc:  # committed: the decision stands, with a warning about its proof
            self.message = f"{status} {label}; but {exc}"
        except (AlreadyDecided, NotFound) as exc:
            self.message = f"{exc}; moved on"
        except (ValidationError, BotBottleError) as exc:
            self.message = str(exc)
            return
        self.detail = None
        self.reload(force=True)

    def handle(self, key: str | int) -> bool:
        """React to one key; False to quit."""
        self.seen.update(p.id for p in self.items)
        if key in ("q", "Q"):
            return False
        if key == curses.KEY_RESIZE:
            # Repaint everything: the terminal may have reflowed what was on it, and after two quick
            # resizes curses can believe the size (and so the screen) unchanged.
            self.screen.clear()
            return True
        self.message = ""
        if self.detail is not None:
            height, _width = self.screen.getmaxyx()
            moves = scroll_moves(height)
            if key in moves:
                self.scroll = max(0, self.scroll + moves[key])
            elif key in FIRST_KEYS:
                self.scroll = 0
            elif key in LAST_KEYS:
                self.scroll = len(self.detail_lines(_width))
            elif key == "/":
                self.search()
            elif key == "n":
                self.search(again=True)
            elif key in (ESCAPE, "b", curses.KEY_LEFT):
                self.detail = None
            elif key in ("a", "m", "r", "R"):
                self.act(str(key))
            return True
        if key in (curses.KEY_UP, "k"):
            self.selected = max(0, self.selected - 1)
        elif key in (curses.KEY_DOWN, "j"):
            self.selected = min(max(0, len(self.items) - 1), self.selected + 1)
        elif key in FIRST_KEYS:
            self.selected = 0
        elif key in LAST_KEYS:
            self.selected = max(0, len(self.items) - 1)
        elif key in ENTER_KEYS and self.items:
            self.detail = self.load(self.items[self.selected])
            self.scroll = 0
        elif key in ("a", "m", "r", "R"):
            self.act(str(key))
        elif key == "G":
            keep_going = GrantsView(self, GrantStore(database=self.store.db), default_decider()).run()
            self.reload(force=True)
            return keep_going
        return True


    def run(self) -> None:
        """The main loop: draw, sleep until a key, a commit or the next full look, redraw what changed."""
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        self.screen.keypad(True)
        self.screen.timeout(CHECK_MS)
        self.start_colours()
        self.reload(force=True)
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
