"""What a JSON body may hold before ``json.loads`` sees it: a bounded number of values, a bounded depth.

``json.loads`` builds a Python object for every value (4 MiB of
``{},{},...`` is 1.4 million dicts, some 200 MiB) and recurses once per
level of nesting. ``shape_problem`` checks both first, in linear time,
without recursion and within memory proportional to the text (never a
Python object per token: a regular expression's ``sub`` over a million
matches builds a list of a million pieces, which is the very blow-up being
prevented), so what a body costs is bounded by its length whatever its
shape.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# A JSON string: to its closing quote, or to the end of the text when it has
# none, so that no match ever fails and the scan stays linear.
_JSON_STRING_RE = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS_RE = re.compile(r"[^\[\]{}]+")
_CLOSERS = {"]": "[", "}": "{"}


class ShapeProblem(NamedTuple):
    """Why a JSON text may not be parsed: over what one request may hold (``too_large``), or nested too deep."""

    too_large: bool
    message: str


def shape_problem(text: str, max_depth: int, max_values: int) -> ShapeProblem | None:
    """Why the JSON ``text`` may not be parsed (more than ``max_values`` values, or deeper than
    ``max_depth``), or ``None``.

    Values are counted from the commas and openers outside strings: every
    element but a container's first follows a comma, so ``commas + 2 *
    containers + 1`` bounds the values (each string a key or a value, so at
    most twice as many strings). Text that is not JSON at all answers
    ``None`` unless it is over a bound already: ``json.loads`` reports it.
    """
    if _count(text) <= max_values and text.count("[") + text.count("{") <= max_depth:
        return None  # the common case, strings and all: nothing to strip
    skeleton = _without_strings(text, 2 * max_values + 1)
    if skeleton is None or _count(skeleton) > max_values:
        return ShapeProblem(True, f"more than {max_values} JSON values")
    if _nesting_exceeds(skeleton, max_depth):
        return ShapeProblem(False, f"JSON nested deeper than {max_depth} levels")
    return None


def _count(text: str) -> int:
    return text.count(",") + 2 * (text.count("[") + text.count("{")) + 1


def _without_strings(text: str, most: int) -> str | None:
    """``text`` without its strings; ``None`` when it holds more than ``most`` of them (no list of a million
    pieces is ever built)."""
    pieces: list[str] = []
    end = 0
    for number, match in enumerate(_JSON_STRING_RE.finditer(text)):
        if number >= most:
            return None
        pieces.append(text[end:match.start()])
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces)


def _nesting_exceeds(skeleton: str, limit: int) -> bool:
    """True when ``skeleton`` (JSON without its strings) nests arrays and objects more than ``limit`` deep.

    Without recursion and in linear time; the brackets it strips out are at
    most as many as the values ``shape_problem`` allowed. Text that is not
    balanced answers False unless it is already deeper than ``limit``.
    """
    brackets = _NOT_BRACKETS_RE.sub("", skeleton)
    if re.search(f"[\\[{{]{{{limit + 1}}}", brackets):
        return True  # more than `limit` openers in a row: found at C speed, the common attack
    # Each pass removes every innermost pair, so balanced brackets nested at
    # most `limit` deep are gone after `limit` passes, at C speed.
    passes_done = True
    for _ in range(limit):
        if not brackets:
            return False
        # The marker keeps "{[]}" from losing two levels in one pass.
        shorter = brackets.replace("[]", "\0").replace("{}", "\0").replace("\0", "")
        if shorter == brackets:
            passes_done = False  # no adjacent pair left: unbalanced, or a run of openers
            break
        brackets = shorter
    if not brackets:
        return False
    # Short in practice: with no adjacent pair left, a mismatch or more than
    # `limit` openers in a row ends the scan within `limit` + 2 characters.
    # After `limit` passes, what is left is more than `limit` deep if it is
    # balanced at all.
    stack: list[str] = []
    for char in brackets:
        if char in "[{":
            stack.append(char)
            if len(stack) > limit:
                return True
        elif not stack or stack.pop() != _CLOSERS[char]:
            return False
    return not stack and passes_done
