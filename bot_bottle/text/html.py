"""The one escaper for agent text in HTML: what the browser shows is what the terminal shows.

The dashboard shows the same text the CLI and the TUI show, so it takes the
same classification: ``terminal.line`` splits a line into plain and
escape segments (control, bidirectional and invisible characters become
visible escapes such as ``\\x1b`` or ``\\u202e``; tabs become spaces). Each
segment is then HTML-escaped (``&``, ``<``, ``>``, ``"`` and ``'``), and
escape segments are wrapped in ``<span class="esc">`` so the page styles
them apart, as the terminal outputs do. Nothing an agent wrote reaches the
page as markup, and no character reaches it that the terminal would not
show: a bidi override cannot reorder a line in the browser either.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from bot_bottle.text import terminal

ESCAPE_CLASS = "esc"


def segments_html(segments: Sequence[terminal.Segment]) -> str:
    """Segments as HTML: plain text escaped, escape segments escaped and marked with ``ESCAPE_CLASS``."""
    parts = []
    for segment in segments:
        text = html.escape(segment.text, quote=True)
        parts.append(f'<span class="{ESCAPE_CLASS}">{text}</span>' if segment.escaped else text)
    return "".join(parts)


def line_html(text: str) -> str:
    """``text`` as one line of HTML (a newline in it shows as ``\\x0a``, as in a table cell)."""
    return segments_html(terminal.line(text))


def editable(text: str) -> str:
    """``text`` for an editor box: each character the terminal would not show raw written as its escape.

    A textarea shows characters as they are (a bidi override reorders the
    box, a zero-width space hides), so agent text goes into one with those
    characters already spelled out, as the terminal shows them. Newlines
    and tabs stay. A file that still holds such characters could not be
    recorded anyway (``policy.routes.validate_final_file``).
    """
    return "".join(terminal.escape_char(c) if c not in "\n\t" and terminal.needs_escape(c) else c
                   for c in text)


def attribute(text: str) -> str:
    """Text for an attribute value between double quotes (our own values: ids, hashes, tokens)."""
    return html.escape(text, quote=True)
