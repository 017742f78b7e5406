"""The unified diffs a decision's audit entry records and the screens show: two texts, compared line by line.

Pure functions over text: lines split on ``\\n`` only, and two JSON documents compared as their normal form
where asked (``normal_json``), so a route pretty-printed shows only what changed.
"""

from __future__ import annotations

import difflib
import json
from typing import Any


def render_diff(before: str, after: str, *, before_name: str = "current", after_name: str = "proposed",
                json_aware: bool = False) -> str:
    """A unified diff of two texts ('' when they are equal), as the CLI, TUI and audit log show it.

    With ``json_aware``, two JSON documents are compared as their normal
    form (``normal_json``), so a route written on one line against the same
    route pretty-printed shows only what changed, not a whole replacement.
    """
    if json_aware:
        normal = normal_json(before), normal_json(after)
        if normal[0] is not None and normal[1] is not None:
            before, after = normal[0], normal[1]
    lines = difflib.unified_diff(_lines(before), _lines(after), before_name, after_name)
    # A last line without a newline would run into the next diff line.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def normal_json(text: str) -> str | None:
    """``text``'s JSON object or array, indented with sorted keys; ``None`` when it is not one, or names a key
    twice (then only the text as written tells the whole story, and it is what is compared)."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise ValueError("a key twice")
        return dict(items)

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict | list):
        return None
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _lines(text: str) -> list[str]:
    """``text`` split after each newline, and only there.

    ``str.splitlines`` also splits on form feed, U+2028, a lone CR and more: a
    diff built on it would show one line of the file as two, each with its
    own ``+``, and hide the character that joined them.
    """
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
