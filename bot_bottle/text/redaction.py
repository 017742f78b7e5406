"""Masking secrets out of text that is about to be stored or shown, in every form they travel in.

git-gate and the egress DLP both keep a report of what they blocked, and
neither may keep the secret itself. A secret can sit in the text raw or
encoded: gitleaks decodes base64, hex and percent-encoding before it matches,
and a request can carry a token base64-encoded in a header. ``encoded_forms``
lists those forms and ``Masker`` replaces every run of text that shares six or
more characters with any of them by ``********``, in time linear in the text
(each position is looked up once in a set of fixed-length windows).

An agent that wants the secret stored chooses its spelling: upper-case hex,
lower-case ``%6a`` escapes, a few characters percent-encoded among plain ones,
zero-width spaces or dashes between characters. So ``Masker`` also compares a
*skeleton* of the text with the skeletons of the forms: ``%XX`` escapes
decoded, then only ASCII letters and digits kept, lower-cased. A run of six
skeleton characters that also occurs in a form's skeleton masks everything it
was read from, separators included.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Callable, Iterable

REDACTED = "********"
MIN_FRAGMENT = 6  # runs this long or longer that also occur in a secret are masked
MAX_DECODE_DEPTH = 5  # as deep as gitleaks decodes by default
MAX_DECODED_CHARS = 200_000  # how much decoded text ``reveals_decoded`` looks at before it assumes the worst
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_KEPT_RE = re.compile(r"%[0-9A-Fa-f]{2}|[A-Za-z0-9]+")  # an escape, or a run of letters and digits
_DROPPED_RE = re.compile(r"[^A-Za-z0-9]+")


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match[0][1:], 16))


def bare(text: str) -> str:
    """The skeleton of ``text`` (see ``skeleton``) without the spans: ``%XX`` decoded, letters and digits, lower."""
    decoded = _ESCAPE_RE.sub(_unescape, text) if "%" in text else text
    return _DROPPED_RE.sub("", decoded).lower()


def skeleton(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with ``%XX`` escapes decoded, reduced to its ASCII letters and digits, lower-cased.

    Also returns, for each skeleton character, the ``(start, end)`` of the
    text it was read from (three characters for an escape, else one), so a
    match in the skeleton can be masked in the text.
    """
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    for match in _KEPT_RE.finditer(text):
        start, run = match.start(), match[0]
        if run[0] == "%":
            char = chr(int(run[1:], 16))
            if char in _ALNUM:
                chars.append(char.lower())
                spans.append((start, start + 3))
        else:
            chars.append(run.lower())
            spans.extend((start + i, start + i + 1) for i in range(len(run)))
    return "".join(chars), spans


# Encodings that pack a group of bytes into a group of characters: (bytes a group, the encoders).
_GROUPED_ENCODINGS: tuple[tuple[int, tuple[Callable[[bytes], bytes], ...]], ...] = (
    (3, (base64.b64encode, base64.urlsafe_b64encode)),
    (5, (base64.b32encode, base64.b32hexencode)),
)


def encoded_forms(secret: str) -> set[str]:
    """``secret`` raw and as base64 (standard and URL-safe), base32 (standard and extended hex), lower-case hex
    and percent-encoding show it.

    Base64 packs 3 bytes into 4 characters, so a secret embedded in a longer
    base64 text looks different depending on where it starts: each of the
    three alignments is listed (only its whole 4-character groups, which do
    not depend on the surrounding bytes). Base32 packs 5 bytes into 8
    characters: each of its five alignments is listed the same way (the
    skeleton comparison lower-cases it, so lower-case base32 is masked too).
    """
    if not secret:
        return set()
    raw = secret.encode("utf-8", errors="surrogatepass")
    forms = {secret}
    for group, encoders in _GROUPED_ENCODINGS:
        for skip in range(group):
            part = raw[skip:]
            whole = part[: len(part) - len(part) % group]
            if whole:
                forms.update(encode(whole).decode("ascii") for encode in encoders)
    forms.add(binascii.hexlify(raw).decode("ascii"))
    # As a URL carries it (only what needs escaping), and with every byte escaped.
    forms.update({urllib.parse.quote(raw, safe=""), "".join(f"%{byte:02X}" for byte in raw)})
    return {form for form in forms if form}


class Masker:
    """Masks every piece of some secrets (and of their encoded forms) in the texts it is given.

    A piece is any run of ``MIN_FRAGMENT`` characters (or the whole secret,
    if it is shorter) that also occurs in one of the forms, or any run of the
    text whose skeleton holds ``MIN_FRAGMENT`` characters of a form's skeleton
    (``ghp_\u200bQ7wE``, ``%67hp_Q%37``, upper-case hex). Overlapping and
    adjacent pieces merge into one ``********``. This masks whole copies,
    copies cut at a snippet's edge and prefixes pasted elsewhere; it may also
    mask a little innocent text next to them, which is the safe side.
    """

    def __init__(self, secrets: Iterable[str], *, shortest: int = MIN_FRAGMENT) -> None:
        # window length -> the set of windows of that length, from every form of every secret
        self._windows: dict[int, set[str]] = {}
        # MIN_FRAGMENT-long windows of the forms' skeletons (secrets whose skeleton is that long)
        self._skeleton_windows: set[str] = set()
        for secret in {s for s in secrets if s}:
            width = max(1, min(shortest, len(secret)))
            bucket = self._windows.setdefault(width, set())
            # A secret of mostly punctuation has a short skeleton, whose windows would mask innocent text.
            long_skeleton = len(bare(secret)) >= MIN_FRAGMENT
            for form in encoded_forms(secret):
                bucket.update(form[i : i + width] for i in range(len(form) - width + 1))
                if long_skeleton:
                    kept = bare(form)
                    self._skeleton_windows.update(kept[i : i + MIN_FRAGMENT]
                                                  for i in range(len(kept) - MIN_FRAGMENT + 1))

    def __bool__(self) -> bool:
        return bool(self._windows)

    def mask(self, text: str) -> str:
        """``text`` with every piece of a secret replaced; linear in ``len(text)`` for each window length."""
        if not self._windows or not text:
            return text
        # A difference array of covered positions: +1 where a window starts, -1 past its end.
        cover = [0] * (len(text) + 1)
        found = False
        for width, windows in self._windows.items():
            for start in range(len(text) - width + 1):
                if text[start : start + width] in windows:
                    cover[start] += 1
                    cover[start + width] -= 1
                    found = True
        if self._skeleton_windows:
            kept, spans = skeleton(text)
            for start in range(len(kept) - MIN_FRAGMENT + 1):
                if kept[start : start + MIN_FRAGMENT] in self._skeleton_windows:
                    cover[spans[start][0]] += 1
                    cover[spans[start + MIN_FRAGMENT - 1][1]] -= 1
                    found = True
        if not found:
            return text
        out: list[str] = []
        depth = 0
        for index, char in enumerate(text):
            depth += cover[index]
            if depth > 0:
                if not out or out[-1] != REDACTED:
                    out.append(REDACTED)
            else:
                out.append(char)
        return "".join(out)

    def reveals(self, text: str) -> bool:
        """True if ``text`` still holds a piece of a secret (so it must not be stored as it is)."""
        return self.mask(text) != text

    def reveals_decoded(self, text: str, depth: int = MAX_DECODE_DEPTH) -> bool:
        """True if decoding runs of ``text`` (base64, hex, percent), up to ``depth`` layers, reveals a secret.

        ``mask`` knows a secret's forms one encoding deep; gitleaks decodes
        five, so a name can hold base64 of the hex of a token, which no window
        matches. Each run is decoded at every alignment and the results are
        decoded again; past ``MAX_DECODED_CHARS`` of decoded text it answers
        True (the safe side) without looking further.
        """
        layer = [text]
        seen = 0
        for _ in range(depth):
            decoded = [out for item in layer for out in _decodings(item)]
            seen += sum(len(item) for item in decoded)
            if any(self.reveals(item) for item in decoded):
                return True
            layer = decoded
            if not layer or seen > MAX_DECODED_CHARS:
                return bool(layer)  # too many to look at: assume the worst
        return False


_B64_RUN_RE = re.compile(r"[A-Za-z0-9+/_-]{16,}")
_HEX_RUN_RE = re.compile(r"[0-9A-Fa-f]{16,}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def _decodings(text: str) -> list[str]:
    """What each base64, hex or percent-encoded run of ``text`` decodes to, at each alignment (as text)."""
    out: list[str] = []
    if _ESCAPE_RE.search(text):
        out.append(urllib.parse.unquote(text, errors="replace"))
    for match in _HEX_RUN_RE.finditer(text):
        for skip in (0, 1):
            run = match[0][skip:]
            out.append(bytes.fromhex(run[: len(run) - len(run) % 2]).decode("utf-8", errors="replace"))
    for match in _B64_RUN_RE.finditer(text):
        standard = match[0].translate(_URLSAFE_TO_STANDARD)
        for skip in range(4):
            run = standard[skip:]
            run = run[: len(run) - len(run) % 4]
            try:
                out.append(base64.b64decode(run, validate=True).decode("utf-8", errors="replace"))
            except binascii.Error:
                continue
    return [item for item in out if item]
