"""``bot-bottle supervise``: the operator's terminal UI over every bottle's pending proposals.

A list (oldest first) that refreshes itself about once a second and marks
with ``*`` what arrived since your last keypress; a detail view with the
justification and the diff (or the report); and the keys to decide: ``a``
approve, ``m`` modify in ``$EDITOR``, ``r`` reject. A proposal decided
elsewhere while it is on screen is reported and the view moves on.
"""

from __future__ import annotations

import argparse
import contextlib
import curses
import os
import shlex
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bot_bottle.cli.common import add_db_option, add_json_option, age, db_path, first_line, print_json, print_table
from bot_bottle.cli.render import describe
from bot_bottle.errors import AlreadyDecided, BotBottleError, NotFound, ValidationError
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_PENDING,
    STATUS_REJECTED,
    Proposal,
    ProposalSummary,
)
from bot_bottle.supervise import decide

REFRESH_MS = 1000
# get_wch() gives characters as str and function keys as int.
ENTER_KEYS = ("\n", "\r", curses.KEY_ENTER)
ESCAPE = "\x1b"
BACKSPACE_KEYS = ("\b", "\x7f", curses.KEY_BACKSPACE)
LIST_KEYS = " ↑↓/jk move  Enter open  a approve  m modify  r reject  q quit"
DETAIL_KEYS = " ↑↓/jk scroll  a approve  m modify  r reject  Esc/b back  q quit"
UNAVAILABLE = "database unavailable: "
REPORT_KEYS = " ↑↓/jk scroll  a approve (with a reason)  r reject  Esc/b back  q quit"


class SuperviseTUI:
    """The curses application. ``run`` returns when the operator quits."""

    def __init__(self, screen: Any, store: QueueStore, message: str = "") -> None:
        self.screen = screen
        self.store = store
        self.items: list[ProposalSummary] = []
        self.seen: set[str] = set()
        self.selected = 0
        self.detail: Proposal | None = None
        self.scroll = 0
        self.message = message
        self.marker: tuple[int, int] | None = None

    # Data ---------------------------------------------------------------------

    def reload(self, force: bool = False) -> None:
        """Re-read the pending list if anyone committed since the last look."""
        marker = self.store.changes_marker()
        if not force and marker == self.marker:
            return
        self.marker = marker
        current = self.items[self.selected].id if self.items else None
        # Summaries only: a payload is loaded when its proposal is opened or decided.
        self.items = self.store.pending_summaries()
        ids = [p.id for p in self.items]
        self.selected = ids.index(current) if current in ids else min(self.selected, max(0, len(ids) - 1))
        if self.detail is not None and self.detail.id not in ids:
            self.message = self._gone_message(self.detail)
            self.detail = None

    def refresh(self) -> None:
        """``reload``, but a database that is briefly unavailable is reported, not fatal.

        A long migration or a stuck writer can hold the lock past the busy
        timeout; the operator keeps the screen and the next refresh retries.
        """
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

    def put(self, row: int, col: int, text: str, attr: int = 0) -> None:
        """Write what fits of ``text`` at (row, col); never raises on a small screen."""
        height, width = self.screen.getmaxyx()
        if row < 0 or row >= height or col >= width:
            return
        room = width - col - (1 if row == height - 1 else 0)  # the last cell of the screen cannot be written
        if room <= 0:
            return
        with contextlib.suppress(curses.error):
            self.screen.addstr(row, col, text[:room], attr)

    def draw(self) -> None:
        """Draw the list or the detail view, then the message and key lines."""
        self.screen.erase()
        height, width = self.screen.getmaxyx()
        bottles = len({p.queue_key for p in self.items})
        title = f" bot-bottle supervise: {len(self.items)} pending from {bottles} bottle(s)  {self.store.db.path}"
        self.put(0, 0, title.ljust(width), curses.A_REVERSE)
        if self.detail is not None:
            self._draw_detail(height, width)
            keys = REPORT_KEYS if self.detail.report_only else DETAIL_KEYS
        else:
            self._draw_list(height, width)
            keys = LIST_KEYS
        self.put(height - 2, 0, self.message)
        self.put(height - 1, 0, keys.ljust(width), curses.A_REVERSE)
        self.screen.refresh()

    def _draw_list(self, height: int, width: int) -> None:
        rows = max(0, height - 3)
        if not self.items:
            self.put(2, 2, "no pending proposals; waiting for the bottles...")
            return
        top = max(0, self.selected - rows + 1)
        for line, proposal in enumerate(self.items[top : top + rows], start=1):
            index = top + line - 1
            new = "*" if proposal.id not in self.seen else " "
            text = (f"{new} {proposal.short_id}  {proposal.queue_key[:16]:<16} {proposal.tool:<18} "
                    f"{age(proposal.created_at):>4}  {first_line(proposal.justification, max(10, width))}")
            self.put(line, 0, text.ljust(width), curses.A_REVERSE if index == self.selected else 0)

    def detail_lines(self, width: int) -> list[str]:
        """The detail view's text, wrapped to the screen width."""
        assert self.detail is not None
        lines: list[str] = []
        for line in describe(self.detail, None).splitlines():
            lines.extend(textwrap.wrap(line, max(10, width - 1), replace_whitespace=False,
                                       drop_whitespace=False) or [""])
        return lines

    def _draw_detail(self, height: int, width: int) -> None:
        lines = self.detail_lines(width)
        rows = max(0, height - 3)
        self.scroll = max(0, min(self.scroll, len(lines) - rows))
        for line, text in enumerate(lines[self.scroll : self.scroll + rows], start=1):
            self.put(line, 0, text)

    # Input ------------------------------------------------------------------------

    def prompt(self, label: str) -> str | None:
        """Read a line at the bottom of the screen; Enter ends it, Esc cancels (None)."""
        text = ""
        self.screen.timeout(-1)
        with contextlib.suppress(curses.error):
            curses.curs_set(1)
        try:
            while True:
                height, width = self.screen.getmaxyx()
                self.put(height - 2, 0, " " * width)
                shown = (label + text)[-(width - 2):] if width > 2 else ""
                self.put(height - 2, 0, shown)
                self.screen.refresh()
                key = self.screen.get_wch()
                if key in ENTER_KEYS:
                    return text
                if key == ESCAPE:
                    return None
                if key in BACKSPACE_KEYS:
                    text = text[:-1]
                elif key == curses.KEY_RESIZE:
                    self.draw()
                elif isinstance(key, str) and key.isprintable():
                    text += key
        finally:
            with contextlib.suppress(curses.error):
                curses.curs_set(0)
            self.screen.timeout(REFRESH_MS)

    def edit(self, proposal: Proposal) -> str | None:
        """Open the proposal in $EDITOR (default vi); the edited text, or None if unchanged or empty."""
        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        with tempfile.TemporaryDirectory(prefix="bot-bottle-edit-") as folder:
            path = Path(folder) / f"{proposal.short_id}-{proposal.tool}.txt"
            path.write_text(proposal.payload, encoding="utf-8")
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
                edited = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.message = f"cannot read the edited file: {exc}"
                return None
        if not edited.strip() or edited == proposal.payload:
            self.message = "modify cancelled: the file was empty or unchanged"
            return None
        return edited

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
            final = self.edit(proposal)
            if final is None:
                return
            notes = self.prompt("modified; note (optional): ")
            if notes is None:
                self.message = "modify cancelled"
                return
        else:
            status = STATUS_REJECTED
            notes = self.prompt("reason for rejecting: ")
            if not notes or not notes.strip():
                self.message = "reject cancelled: a reason is required"
                return
        try:
            decide(proposal.id, status, notes, final, store=self.store)
            self.message = f"{status} {label}"
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
            return True
        self.message = ""
        if self.detail is not None:
            height, _width = self.screen.getmaxyx()
            page = max(1, height - 4)
            moves = {curses.KEY_UP: -1, "k": -1, curses.KEY_DOWN: 1, "j": 1, curses.KEY_PPAGE: -page,
                     curses.KEY_NPAGE: page, " ": page}
            if key in moves:
                self.scroll = max(0, self.scroll + moves[key])
            elif key in (ESCAPE, "b", curses.KEY_LEFT):
                self.detail = None
            elif key in ("a", "m", "r"):
                self.act(str(key))
            return True
        if key in (curses.KEY_UP, "k"):
            self.selected = max(0, self.selected - 1)
        elif key in (curses.KEY_DOWN, "j"):
            self.selected = min(max(0, len(self.items) - 1), self.selected + 1)
        elif key in ENTER_KEYS and self.items:
            self.detail = self.load(self.items[self.selected])
            self.scroll = 0
        elif key in ("a", "m", "r"):
            self.act(str(key))
        return True

    def run(self) -> None:
        """The main loop: draw, wait up to a second for a key, refresh."""
        with contextlib.suppress(curses.error):
            curses.curs_set(0)
        self.screen.keypad(True)
        self.screen.timeout(REFRESH_MS)
        self.reload(force=True)
        last = time.monotonic()
        while True:
            self.draw()
            try:
                key = self.screen.get_wch()
            except curses.error:  # the timeout: no key
                key = -1
            if key == -1 or time.monotonic() - last >= REFRESH_MS / 1000:
                self.refresh()
                last = time.monotonic()
            if key != -1 and not self.handle(key):
                return


def print_pending(store: QueueStore, as_json: bool) -> None:
    """The ``--once`` output: the pending list without curses."""
    items = store.pending_summaries()
    if as_json:
        print_json([{**p.to_dict(), "short_id": p.short_id, "status": STATUS_PENDING} for p in items])
        return
    if not items:
        print("no pending proposals")
        return
    print_table(["ID", "BOTTLE", "TOOL", "AGE", "JUSTIFICATION"],
                [[p.short_id, p.queue_key, p.tool, age(p.created_at), first_line(p.justification)] for p in items])


def cmd_supervise(args: argparse.Namespace) -> int:
    """Open the TUI (or, with --once, print the pending list and exit)."""
    with QueueStore(db_path(args)) as store:
        if args.once or args.json:
            print_pending(store, args.json)
            return 0
        if not (os.isatty(0) and os.isatty(1)):
            raise BotBottleError("the supervise UI needs a terminal; use --once (or 'proposals list') in scripts")
        os.environ.setdefault("ESCDELAY", "25")  # Esc should go back at once, not after curses' 1 s
        curses.wrapper(lambda screen: SuperviseTUI(screen, store).run())
    return 0


def register(subparsers: Any) -> None:
    """Add the ``supervise`` verb."""
    parser = subparsers.add_parser(
        "supervise",
        help="the operator's terminal UI over every bottle's pending proposals",
        description="Review pending proposals from every bottle and decide them: a list that refreshes "
        "itself (* marks what arrived since your last keypress), a detail view with the diff or report, "
        "and keys to approve (a), modify in $EDITOR (m) or reject (r). Esc or b goes back, q quits.",
        epilog="examples:\n  bot-bottle supervise\n  bot-bottle supervise --once --json   (for scripts)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_option(parser)
    parser.add_argument("--once", action="store_true", help="print the pending list and exit, without the UI")
    add_json_option(parser)
    parser.set_defaults(handler=cmd_supervise)
