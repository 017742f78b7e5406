"""The one place untrusted text becomes what a terminal may show (docs/decisions.md, "the agent is the adversary").

An agent controls most of the text an operator reads: justifications,
routes files, reports. A terminal acts on some characters instead of showing
them (ESC starts a sequence that can clear the screen, move the cursor, set
the title or write the clipboard; backspace and a lone CR overwrite what was
written; bidirectional controls reorder a line; zero-width characters hide).
Every human-facing output passes its text through here first, so that:

- each such character becomes a visible escape (``\\x1b``, ``\\u202e``), kept
  apart as an *escape segment* so the output can style it (reverse video in
  the CLI, underlined in the TUI) and the operator sees that something was
  there, and what;
- tab expands to spaces; newline ends a line (``\\r\\n`` counts as one);
- widths are display columns: East Asian wide and fullwidth characters take
  two, combining marks none; where terminals differ (an emoji made wide by
  U+FE0F, flags) the widest count is taken, so a fitted row never
  overflows. A mark with nothing to combine with, or beyond
  ``MAX_COMBINING`` on one character, is shown as an escape instead, so a
  flood of marks cannot smear a row; so is a variation selector after a
  character that has no visible variants (``pypi.org\ufe00`` would look like
  ``pypi.org``);
- a line cut to fit ends with ``CUT_MARKER``; a wrapped line's continuation
  starts with ``CONTINUATION``, so it cannot pass for a line of its own (a
  diff line that seems to start with ``-``).

``--json`` output does not come here to be shown: it must stay exact. It
passes ``json_for_terminal`` instead, which writes the characters JSON itself
leaves raw (DEL, C1 controls, bidi and invisible ones) as ``\\uXXXX`` escapes
that decode to the same text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

TAB_SIZE = 8
MAX_COMBINING = 3  # more marks than this on one character are shown as an escape
CUT_MARKER = "…"
CONTINUATION = "↪ "
# The same marks for a terminal whose locale holds ASCII only (``in_ascii``): neither starts a line as a diff's
# does ("+", "-", " ").
ASCII_CUT_MARKER = ">"
ASCII_CONTINUATION = "| "
# ANSI reverse video around escapes, for a terminal that takes our own styling.
ANSI_ESCAPE_ON = "\x1b[7m"
ANSI_ESCAPE_OFF = "\x1b[27m"

# Named because they are not all in the categories tested below (U+00AD is Cf
# already, the Hangul fillers are letters that draw nothing, U+034F is a mark
# that joins nothing).
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")
# Categories shown as escapes: controls, format characters (bidi, zero-width,
# tags, soft hyphen), surrogates, private use, unassigned, and line and
# paragraph separators that some terminals break lines on.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
# VARIATION SELECTOR-16: draw the character before it as a (wide) emoji.
EMOJI_PRESENTATION = "\ufe0f"
_REGIONAL_INDICATORS = (0x1F1E6, 0x1F1FF)


@dataclass(frozen=True)
class Segment:
    """A piece of a line: plain text, or a visible escape standing for characters not shown raw.

    ``style`` is an ANSI SGR parameter string (``"32"`` green) for our own
    colouring of plain text; it never comes from the text itself.
    """

    text: str
    escaped: bool = False
    style: str = ""


Line = list[Segment]


def escape_char(char: str) -> str:
    """``char`` as a visible escape: ``\\x1b``, ``\\u202e`` or ``\\U000e0041``."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def needs_escape(char: str) -> bool:
    """True for a character a terminal must never get raw (newline and tab aside, which callers handle)."""
    if char == " ":
        return False
    category = unicodedata.category(char)
    # Spaces other than U+0020 (no-break, ideographic, en/em ...) look like a
    # space and are not one: "pypi.org\u00a0" must not pass for "pypi.org".
    return category in _ESCAPED_CATEGORIES or category == "Zs" or char in _INVISIBLE


def is_variation_selector(char: str) -> bool:
    """True for U+FE00-U+FE0F and U+E0100-U+E01EF, which pick a glyph variant of the character before."""
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF


def _takes_variants(base: str) -> bool:
    # Emoji and other symbols (U+FE0F, U+FE0E) and wide ideographs (ideographic variants) have variants
    # a reader can see; after anything else (an ASCII letter) a selector draws nothing and could tell two
    # equal-looking strings apart, so it is shown as an escape.
    return unicodedata.category(base) == "So" or unicodedata.east_asian_width(base) in ("W", "F")


def char_width(char: str) -> int:
    """Display columns of a character that passed ``needs_escape``: 0, 1 or 2.

    Where terminals disagree, the widest count wins, so that a row cut or
    wrapped to fit never runs past the edge of any of them (at worst it
    falls short): U+FE0F (emoji presentation) turns the character before it
    into a two-column emoji on most terminals, so it counts one column of
    its own; a regional indicator (half of a flag) counts two.
    """
    if char == EMOJI_PRESENTATION:
        return 1
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    regional = _REGIONAL_INDICATORS[0] <= ord(char) <= _REGIONAL_INDICATORS[1]
    return 2 if regional or unicodedata.east_asian_width(char) in ("W", "F") else 1


def lines(text: str) -> list[Line]:
    """``text`` as lines of segments: newline (or CRLF) splits, everything unsafe is escaped."""
    return [_line(part) for part in text.replace("\r\n", "\n").split("\n")]


def line(text: str) -> Line:
    """``text`` as one line: newlines are escaped too (for table cells and list rows)."""
    return _line(text)


def _line(text: str) -> Line:
    if _PRINTABLE_ASCII.fullmatch(text):  # most text: nothing to escape, one column a character
        return [Segment(text)] if text else []
    segments: Line = []
    plain: list[str] = []
    column = 0
    marks = 0  # combining marks on the current base character
    has_base = False
    base = ""  # the current base character (for variation selectors)
    varied = False  # a variation selector was kept on it: a second one draws nothing

    def escape(shown: str) -> None:
        nonlocal column, has_base
        if plain:
            segments.append(Segment("".join(plain)))
            plain.clear()
        if segments and segments[-1].escaped:
            segments[-1] = Segment(segments[-1].text + shown, True)
        else:
            segments.append(Segment(shown, True))
        column += len(shown)
        has_base = False

    for char in text:
        if char == "\t":
            spaces = TAB_SIZE - column % TAB_SIZE
            plain.append(" " * spaces)
            column += spaces
            has_base = False
            continue
        if is_variation_selector(char):
            if varied or not (has_base and _takes_variants(base)):
                escape(escape_char(char))
                continue
            varied = True
        elif needs_escape(char):
            escape(escape_char(char))
            continue
        width = char_width(char)
        if width == 0:
            if not has_base or marks >= MAX_COMBINING:
                escape(escape_char(char))
                continue
            marks += 1
        elif not is_variation_selector(char):
            marks = 0
            has_base = char != " "
            base, varied = char, False
        plain.append(char)
        column += width
    if plain:
        segments.append(Segment("".join(plain)))
    return segments


def width(segments: Sequence[Segment]) -> int:
    """Display columns of a line."""
    return sum(segment_width(s) for s in segments)


def segment_width(segment: Segment) -> int:
    """Display columns of one segment (an escape is ASCII: one column a character)."""
    if segment.escaped or segment.text.isascii():
        return len(segment.text)
    return sum(char_width(c) for c in segment.text)


def plain(segments: Sequence[Segment]) -> str:
    """A line as plain text (escapes unstyled)."""
    return "".join(s.text for s in segments)


def _take(segments: Sequence[Segment], columns: int) -> tuple[Line, Line]:
    """Split a line after at most ``columns`` columns: (head, rest). A wide character never straddles."""
    head: Line = []
    used = 0
    for index, segment in enumerate(segments):
        size = segment_width(segment)
        if used + size <= columns:
            head.append(segment)
            used += size
            continue
        taken: list[str] = []
        for position, char in enumerate(segment.text):
            char_size = 1 if segment.escaped else char_width(char)
            if used + char_size > columns:
                rest = [Segment(segment.text[position:], segment.escaped, segment.style), *segments[index + 1 :]]
                if taken:
                    head.append(Segment("".join(taken), segment.escaped, segment.style))
                return head, rest
            taken.append(char)
            used += char_size
        head.append(Segment("".join(taken), segment.escaped, segment.style))
    return head, []


def fit(segments: Sequence[Segment], columns: int) -> Line:
    """The line cut to ``columns`` display columns; a cut line ends with ``CUT_MARKER``."""
    if width(segments) <= columns:
        return list(segments)
    if columns <= 0:
        return []
    head, _rest = _take(segments, columns - 1)
    if head and not head[-1].escaped and head[-1].text.endswith(CUT_MARKER):
        # A cell already cut where the line is cut: one mark says so ('method……' read as two cuts).
        last = head.pop()
        if last.text != CUT_MARKER:
            head.append(Segment(last.text[:-1], last.escaped, last.style))
    return [*head, Segment(CUT_MARKER)]


def wrap(segments: Sequence[Segment], columns: int) -> list[Line]:
    """The line wrapped to ``columns``; every continuation starts with ``CONTINUATION``."""
    columns = max(columns, len(CONTINUATION) + 2)
    rows: list[Line] = []
    rest: Line = list(segments)
    first = True
    while first or rest:
        room = columns if first else columns - len(CONTINUATION)
        head, rest = _take(rest, room)
        rows.append(head if first else [Segment(CONTINUATION), *head])
        first = False
    return rows


def in_ascii(segments: Sequence[Segment]) -> Line:
    """The line as a terminal whose locale holds ASCII only can show it (``LC_ALL=C``): each character outside
    ASCII is a visible escape (``caf\\xe9``), as the CLI writes it to an ASCII stdout (Python's UTF-8 mode writes
    the C locale's as UTF-8), where curses would draw it as nothing and the operator would read ``need caf  docs``;
    our own cut and continuation marks become their ASCII forms.
    Widths stay true: an escape is as wide as it is written."""
    shown: Line = []
    for segment in segments:
        if segment.escaped or segment.text.isascii():
            shown.append(segment)
        elif segment.text in (CUT_MARKER, CONTINUATION):
            shown.append(Segment(ASCII_CUT_MARKER if segment.text == CUT_MARKER else ASCII_CONTINUATION,
                                 style=segment.style))
        else:
            for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]", segment.text):
                shown.append(Segment(run, style=segment.style) if run.isascii() else
                             Segment(escape_char(run), escaped=True))
    return shown


def pad(segments: Sequence[Segment], columns: int) -> Line:
    """The line padded with spaces to ``columns`` display columns (never cut)."""
    missing = columns - width(segments)
    return [*segments, Segment(" " * missing)] if missing > 0 else list(segments)


def ansi(segments: Sequence[Segment], styled: bool) -> str:
    """A line as text for a terminal: escapes in reverse video and colours when ``styled``."""
    if not styled:
        return plain(segments)
    parts = []
    for segment in segments:
        if segment.escaped:
            parts.append(f"{ANSI_ESCAPE_ON}{segment.text}{ANSI_ESCAPE_OFF}")
        elif segment.style:
            parts.append(f"\x1b[{segment.style}m{segment.text}\x1b[0m")
        else:
            parts.append(segment.text)
    return "".join(parts)


def coloured(segments: Sequence[Segment], style: str) -> Line:
    """The line with ``style`` on its plain segments (escapes keep their own look)."""
    return [s if s.escaped else Segment(s.text, False, style) for s in segments]


def clean(text: str) -> str:
    """``text`` made safe for a terminal as plain text, newlines kept."""
    return "\n".join(plain(one) for one in lines(text))


def clean_line(text: str) -> str:
    """``text`` made safe as a single line (newlines escaped)."""
    return plain(line(text))


def unsafe_characters(text: str, *, allow: str = "\n\t") -> Iterator[tuple[int, int, str]]:
    """Each character of ``text`` a terminal must not get raw: (line, column, char), 1-based.

    For validating text the operator writes (a routes file), where an escape
    on screen would mean a file that differs from what it looks like.
    """
    line_number, column = 1, 0
    previous = ""
    for char in text:
        column += 1
        before, previous = previous, char
        if char == "\n":
            line_number, column = line_number + 1, 0
            continue
        if char in allow:
            continue
        if needs_escape(char) or (is_variation_selector(char) and not (before and _takes_variants(before))):
            yield line_number, column, char


def json_for_terminal(text: str) -> str:
    """JSON text with every character a terminal must not get raw written as a ``\\uXXXX`` escape.

    JSON escapes only U+0000-U+001F itself; DEL, C1 controls (U+009B is a
    CSI), bidirectional and invisible characters would reach the terminal
    raw. Outside strings JSON text is ASCII, so every such character is in a
    string, where the escape decodes to the very same character: the value
    stays exact for scripts. Newlines (the indentation's) are kept.
    """
    def one(char: str) -> str:
        code = ord(char)
        if code < 0x10000:
            return f"\\u{code:04x}"
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(one(char) if char != "\n" and needs_escape(char) else char for char in text)


def describe_char(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: a character named for an error message."""
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = {"\r": "CARRIAGE RETURN", "\x1b": "ESCAPE", "\x08": "BACKSPACE", "\x7f": "DELETE"}.get(char, "CONTROL")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")
