"""Other ways a pushed blob is shown, each of which is scanned too.

Invisible characters removed (as a reader sees the text), NUL bytes removed
(UTF-16 and UTF-32 text, which editors and forges show as text), ``$Format:``
escapes expanded (as ``git archive`` writes an ``export-subst`` file). What a
checkout writes is ``checkout``'s, what an archive holds ``archives``'.
"""

from __future__ import annotations

import re

_ARCHIVE_ESCAPE_RE = re.compile(rb"%(?:x([0-9a-fA-F]{2})|%|n)")


# Characters a page or an editor draws as nothing (zero-width spaces and joiners, bidi controls,
# soft hyphen, variation selectors, tags): a token with them inside reads, and copies, as one.
_INVISIBLE_RE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                           "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]")


def _archive_escape(match: re.Match[bytes]) -> bytes:
    if match[1] is not None:
        return bytes([int(match[1], 16)])
    return b"%" if match[0] == b"%%" else b"\n"


def other_views(data: bytes) -> list[tuple[str, bytes]]:
    """Other ways the same content is shown, each to be scanned as well: ``(how, content)``.

    UTF-8 text with invisible characters (a zero-width space inside a token)
    is also read without them, as a reader sees it.
    UTF-16 and UTF-32 text is ASCII with NUL bytes between: gitleaks does not
    decode it, editors and forges show it as text; without its NULs it reads
    plainly in every byte alignment (lines stay where they were). A file with
    ``export-subst`` has each ``$Format:...$`` expanded by ``git archive``
    (and every forge's tarball download), where ``%x67`` is the byte ``g``.
    """
    views = []
    text = wide_text(data)
    if text is not None and _INVISIBLE_RE.search(text):
        views.append(("invisible characters removed", _INVISIBLE_RE.sub("", text).encode("utf-8")))
    if b"\0" in data:
        views.append(("NUL bytes removed: UTF-16/32 text", data.replace(b"\0", b"")))
    if b"$Format:" in data:
        views.append(("$Format: escapes expanded, as git archive does", _ARCHIVE_ESCAPE_RE.sub(_archive_escape, data)))
    return views


def whole_paths(tree_path: str, rendered: bytes) -> bytes:
    """A tree below the top (``tree_path``), as ``render_tree`` wrote it, with each entry's whole path.

    A tarball, a checkout, ``git ls-files`` and a forge's file list show a
    file by its whole path, ``a/b/c``: a secret split at its slashes into
    directory names (``api_token=Zx`` holding ``Q7wE...``) is in no entry
    name, and whole there. Lines stay where they were (a name's own newline
    is left as it is), so a finding names the entry's line.
    """
    prefix = tree_path.encode("utf-8", errors="surrogateescape") + b"/"
    lines = []
    for line in rendered.split(b"\n"):
        mode, space, rest = line.partition(b" ")
        lines.append(mode + b" " + prefix + rest if space and mode.isdigit() else line)
    return b"\n".join(lines)


def wide_text(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 with more than ASCII (what can hold an invisible character)."""
    if data.isascii():
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
