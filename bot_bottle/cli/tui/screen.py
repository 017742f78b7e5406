"""The terminal under the operator's review: drawing sanitized text, reading keys, a prompt, a modal.

``TerminalScreen`` is what ``SuperviseTUI`` draws and reads with: every
string goes through the one sanitizer (``text.terminal``) before curses sees
it, so a backspace or an ESC an agent wrote is drawn as an escape, never
acted on; cuts are marked. It knows nothing of proposals.
"""

from __future__ import annotations

import contextlib
import curses
import locale
import os
import select
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from bot_bottle.cli.common import ROLE_STYLES
from bot_bottle.file_watch import FileWatch
from bot_bottle.text import terminal

REFRESH_MS = 1000  # a full look (and a redraw, so ages stay right) at least this often
CHECK_MS = 50  # how often the database file is stat'ed for a commit (a new proposal shows within this)
# get_wch() gives characters as str and function keys as int.
ENTER_KEYS = ("\n", "\r", curses.KEY_ENTER)
ESCAPE = "\x1b"
BACKSPACE_KEYS = ("\b", "\x7f", curses.KEY_BACKSPACE)


def key_name(key: str | int) -> str:
    """How a status line names a key: a printable one quoted as typed ('a'), Enter, Esc, Tab and Backspace by
    name, any other as "a key"."""
    if isinstance(key, str) and key.isprintable():
        return repr(key)
    named = {ESCAPE: "Esc", "\t": "Tab", **dict.fromkeys(ENTER_KEYS, "Enter"),
             **dict.fromkeys(BACKSPACE_KEYS, "Backspace")}
    return named.get(key, "a key")


class Keys(str):
    """A key line, with a short form for a terminal too narrow for it whole (80 columns): the decision keys and
    how to quit stay in sight, where the whole line would be cut before them (``TerminalScreen.key_line``)."""

    short: str

    def __new__(cls, text: str, short: str) -> Keys:
        """``text``, and ``short`` for a narrow terminal."""
        keys = super().__new__(cls, text)
        keys.short = short
        return keys


LIST_KEYS = Keys(" ↑↓/jk move  g/G first/last  Enter open  a approve  m modify  r/R reject (R: always)  / filter  "
                 "w warned  v grants/rules  q",
                 " Enter open  a approve  m modify  r/R reject  / w filter  v grants  q quit")
DETAIL_KEYS = Keys(" ↑↓/jk scroll  g/G top/end  / search  n next  J all the agent wrote  a approve  m modify  "
                   "r reject  Esc/b back  q quit",
                   " / search  n next  J all  a approve  m modify  r reject  Esc/b back  q quit")
UNAVAILABLE = "database unavailable: "
REPORT_KEYS = Keys(" ↑↓/jk scroll  g/G  / search  J all the agent wrote  a approve (with a reason)  r reject  "
                   "Esc/b back  q quit", " / search  J all  a approve (with a reason)  r reject  Esc/b back  q quit")
FIRST_KEYS = ("g", curses.KEY_HOME)
LAST_KEYS = ("G", curses.KEY_END)
CONFIRM_KEYS = " ↑↓/jk scroll  y record this modification  e edit again  n/Esc cancel"
INVALID_KEYS = " ↑↓/jk scroll  e edit again  n/Esc cancel"
PROMPT_KEYS = " Enter confirm  Esc cancel"
ANSWER_ROOM = 20  # columns a prompt's answer has at least, after its label, before the label wraps
# Escapes (text an agent wrote that the terminal must not act on) stand apart from the text around them.
ESCAPE_ATTR = curses.A_UNDERLINE | curses.A_BOLD
Line = terminal.Line
# The ANSI style of text that is the agent's, drawn dim beside ours (its label says whose it is).
DIM = ROLE_STYLES["dim"]


def scroll_moves(height: int) -> dict[str | int, int]:
    """The keys that scroll a text view, and by how many lines, on a screen ``height`` rows tall."""
    page = max(1, height - 4)
    return {curses.KEY_UP: -1, "k": -1, curses.KEY_DOWN: 1, "j": 1, curses.KEY_PPAGE: -page,
            curses.KEY_NPAGE: page, " ": page}



def terminal_takes_unicode() -> bool:
    """Whether the locale curses draws in holds every character (UTF-8): Python sets LC_CTYPE from the
    environment at its start, and curses encodes what it draws as that locale does; ``LC_ALL=C`` holds ASCII
    only (Python's own UTF-8 mode does not change what curses draws with)."""
    try:
        codeset = locale.nl_langinfo(locale.CODESET)
    except (AttributeError, ValueError):  # no nl_langinfo (not a POSIX system): Python's own choice
        codeset = locale.getpreferredencoding(False)
    return codeset.replace("-", "").upper() == "UTF8"


def label_rows(label: str, width: int) -> list[str]:
    """A prompt's label on the rows it needs at ``width``, words whole, so none of it (the proposal's id, the
    question) scrolls out of sight; the last row, where the answer is typed, keeps room for it."""
    if len(label) <= width - ANSWER_ROOM or width <= 2 * ANSWER_ROOM:
        return [label]
    rows = textwrap.wrap(label, width - ANSWER_ROOM) or [""]
    return [*rows[:-1], rows[-1] + " "]


class TerminalScreen:
    """A curses screen with the operator's review's ways of drawing and reading."""

    def __init__(self, screen: Any) -> None:
        self.screen = screen
        self.scroll = 0
        self.position = ""
        self.role_attrs: dict[str, int] = {"warning": curses.A_BOLD, "heading": curses.A_BOLD}
        # Our own styles on a segment (cli.common.ROLE_STYLES' ANSI codes), as curses draws them.
        self.style_attrs: dict[str, int] = {ROLE_STYLES["warning"]: curses.A_BOLD, DIM: curses.A_DIM}
        # curses draws what the locale's encoding cannot hold as nothing (LC_ALL=C): there, every character
        # outside ASCII is drawn as its escape instead (terminal.in_ascii), the agent's words whole.
        self.unicode = terminal_takes_unicode()
        self.cut_marker = terminal.CUT_MARKER if self.unicode else terminal.ASCII_CUT_MARKER

    def draw(self) -> None:
        """Redraw the whole screen (what a resize during a prompt asks for)."""

    def shown(self, segments: Line) -> Line:
        """``segments`` as this terminal can draw them: as they are, or each character outside ASCII as its escape
        where the locale holds ASCII only."""
        return segments if self.unicode else terminal.in_ascii(segments)

    def key_line(self, keys: str, width: int) -> str:
        """A key line at ``width``: the whole line or its short form (``Keys``), its arrows in words where the
        locale holds ASCII only, padded to the edge."""
        forms = [keys, keys.short] if isinstance(keys, Keys) else [keys]
        if not self.unicode:
            forms = [form.replace("↑↓/jk", "Up/Down/j/k") for form in forms]
        return next((form for form in forms if len(form) < width), forms[-1]).ljust(width - 1)

    def put(self, row: int, col: int, text: str | Line, attr: int = 0) -> None:
        """Write what fits of ``text`` at (row, col), sanitized; escapes underlined. Never raises.

        A string is untrusted until proven otherwise: it goes through
        ``text.terminal`` here, so a backspace or ESC in it is drawn as an
        escape, never acted on. A cut is marked.
        """
        height, width = self.screen.getmaxyx()
        if row < 0 or row >= height or col >= width:
            return
        room = width - col - (1 if row == height - 1 else 0)  # the last cell of the screen cannot be written
        if room <= 0:
            return
        segments = self.shown(terminal.line(text) if isinstance(text, str) else text)
        for segment in self.shown(terminal.fit(segments, room)):
            style = attr | (ESCAPE_ATTR if segment.escaped else self.style_attrs.get(segment.style, 0))
            with contextlib.suppress(curses.error):
                self.screen.addstr(row, col, segment.text, style)
            col += terminal.segment_width(segment)

    def _draw_text(self, lines: list[tuple[Line, int]], height: int) -> None:
        rows = max(0, height - 3)
        self.scroll = max(0, min(self.scroll, len(lines) - rows))
        for line, (text, attr) in enumerate(lines[self.scroll : self.scroll + rows], start=1):
            self.put(line, 0, text, attr)
        if len(lines) > rows:
            self.position = f"lines {self.scroll + 1}-{min(len(lines), self.scroll + rows)} of {len(lines)}"

    def wrapped(self, screen_lines: list[str], width: int) -> list[tuple[Line, int]]:
        """Raw screen lines, each sanitized as one line, wrapped to ``width - 1`` columns, with its attribute."""
        rows: list[tuple[Line, int]] = []
        for one in screen_lines:
            attr = self.role_attrs.get(getattr(one, "role", ""), 0)
            rows += [(row, attr) for row in terminal.wrap(self.shown(terminal.line(one)), max(10, width - 1))]
        return rows

    def fitted(self, about: list[str], width: int, room: int) -> list[tuple[Line, int]]:
        """``about`` wrapped (``wrapped``) into at most ``room`` rows, the start of each line kept: where they take
        more, the longest is cut at its end, its last row saying so (the detail view shows it whole).

        A prompt kept the last rows: a route of 64 long paths left 'approve ID; note' under its last paths, the
        bottle, the host and the methods (GET, DELETE) out of sight, and Enter, Enter approved them."""
        items = [self.wrapped([one], width) for one in about]
        cut: set[int] = set()
        while sum(len(rows) for rows in items) > room:
            longest = max(range(len(items)), key=lambda index: len(items[index]))
            if len(items[longest]) <= 2:
                break
            items[longest].pop()
            cut.add(longest)
        for index in cut:  # its last row says it goes on (the same attribute: a warning stays one)
            attr = items[index][-1][1]
            marks = [terminal.Segment(terminal.CONTINUATION), terminal.Segment(terminal.CUT_MARKER)]
            items[index][-1] = (self.shown([*marks, terminal.Segment(" more: Esc, then Enter opens it whole")]), attr)
        return [row for rows in items for row in rows][:room]

    def prompt(self, label: str, about: Sequence[str] = (), backdrop: Callable[[], None] | None = None) -> str | None:
        """Read a line at the bottom of the screen; Enter ends it, Esc cancels (None).

        ``about`` are raw lines (``Shown`` with their roles) drawn above the
        prompt while it is open: what the answer is for. ``backdrop`` draws
        what the prompt stands over (default: ``draw``).
        """
        text = ""
        self.screen.timeout(-1)
        with contextlib.suppress(curses.error):
            curses.curs_set(1)
        (backdrop or self.draw)()  # what the prompt stands over, without what an earlier prompt left
        try:
            while True:
                height, width = self.screen.getmaxyx()
                *above, last = label_rows(label, width)
                room = height - 3 - len(above)
                rows = self.fitted(list(about), width, room) if room > 0 else []
                for offset, (row, attr) in enumerate(rows):
                    self.put(height - 2 - len(above) - len(rows) + offset, 0, terminal.pad(row, width),
                             attr | curses.A_REVERSE)
                for offset, words in enumerate(above):
                    self.put(height - 2 - len(above) + offset, 0, words.ljust(width))
                self.put(height - 2, 0, " " * width)
                shown = (last + text)[-(width - 2):] if width > 2 else ""
                self.put(height - 2, 0, shown)
                self.put(height - 1, 0, self.key_line(PROMPT_KEYS, width), curses.A_REVERSE)
                self.screen.refresh()
                key = self.screen.get_wch()
                if key in ENTER_KEYS:
                    return text
                if key == ESCAPE:
                    return None
                if key in BACKSPACE_KEYS:
                    text = text[:-1]
                elif key == curses.KEY_RESIZE:
                    (backdrop or self.draw)()
                elif isinstance(key, str) and key.isprintable():
                    text += key
        finally:
            with contextlib.suppress(curses.error):
                curses.curs_set(0)
            self.screen.timeout(CHECK_MS)

    def modal(self, text: list[str], keys: str, accept: tuple[str, ...]) -> str:
        """Show raw screen lines (sanitized, scrollable) with ``keys``; the accepted key pressed, or 'n' to cancel."""
        self.screen.timeout(-1)
        try:
            while True:
                height, width = self.screen.getmaxyx()
                self.screen.erase()
                self.put(0, 0, " bot-bottle supervise: confirm".ljust(width), curses.A_REVERSE)
                self._draw_text(self.wrapped(text, width), height)
                self.put(height - 1, 0, self.key_line(keys, width), curses.A_REVERSE)
                self.screen.refresh()
                key = self.screen.get_wch()
                moves = scroll_moves(height)
                if key in moves:
                    self.scroll = max(0, self.scroll + moves[key])
                elif key in accept:
                    return str(key)
                elif key in ("n", "N", ESCAPE, "q"):
                    return "n"
        finally:
            self.scroll = 0
            self.screen.timeout(CHECK_MS)

    def next_key(self, watch: FileWatch | None, patience: float) -> str | int:
        """The next key, or -1 after a commit (seen by ``watch``) or ``patience`` seconds, whichever is first.

        Without a watch, curses waits ``CHECK_MS`` for a key and the caller
        stats the file. With one, a key already read into curses' buffer is
        taken first (``select`` cannot see it); otherwise the process sleeps
        in ``select`` on the terminal and the watch together, for at most a
        quarter of a second, so a resize is redrawn promptly too.
        """
        if watch is None:
            return self._get_key(CHECK_MS)
        key = self._get_key(0)
        if key != -1:
            return key
        try:
            select.select([sys.stdin.fileno(), watch.fd], [], [], min(patience, 0.25))
        except (OSError, ValueError):
            return self._get_key(CHECK_MS)
        watch.wait(0)  # drain the events that woke us: the file's stat tells the caller what changed
        return self._get_key(0)

    def _get_key(self, wait_ms: int) -> str | int:
        self.screen.timeout(wait_ms)
        try:
            return self.screen.get_wch()  # type: ignore[no-any-return]
        except curses.error:  # the timeout: no key
            return -1
        finally:
            self.screen.timeout(CHECK_MS)

    def start_colours(self) -> None:
        """Colour diff lines where the terminal has colours and ``NO_COLOR`` is not set.

        The terminal's own foreground and background are kept either way:
        ``curses.wrapper`` starts colour, whose default pair is white on black
        until ``use_default_colors`` says otherwise, which is what ``NO_COLOR``
        users got before.
        """
        if not curses.has_colors():
            return
        with contextlib.suppress(curses.error):
            curses.start_color()
            curses.use_default_colors()
        if "NO_COLOR" in os.environ:
            return
        with contextlib.suppress(curses.error):
            for number, colour in enumerate((curses.COLOR_GREEN, curses.COLOR_RED, curses.COLOR_CYAN,
                                             curses.COLOR_YELLOW), start=1):
                curses.init_pair(number, colour, -1)
            self.role_attrs.update({"added": curses.color_pair(1), "removed": curses.color_pair(2),
                                    "hunk": curses.color_pair(3),
                                    "warning": curses.color_pair(4) | curses.A_BOLD})
            self.style_attrs[ROLE_STYLES["warning"]] = curses.color_pair(4) | curses.A_BOLD
