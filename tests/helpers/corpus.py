"""What a hostile agent writes: the texts every screen and page must show as text."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import urllib.parse

ESC = "\x1b"


# What an agent would try, class by class.
HOSTILE = {
    "clear-and-home": f"{ESC}[2J{ESC}[H",
    "cursor-moves": f"{ESC}[5A{ESC}[20C{ESC}[1K",
    "hidden-text": f"{ESC}[8minvisible{ESC}[28m",
    "title": f"{ESC}]0;pwned title\x07",
    "clipboard": f"{ESC}]52;c;cm0gLXJmIH4K\x07",
    "hyperlink": f"{ESC}]8;;http://evil.example/{ESC}\\docs.python.org{ESC}]8;;{ESC}\\",
    "cut-off-colour": f"{ESC}[32m",
    "c1-csi": "\x9b2J\x9d0;c1 title\x9c",
    "backspaces": "evil" + "\b" * 4 + "good",
    "delete": "a\x7fb",
    "lone-cr": "approved by alice\rrejected",
    "bell-vt-ff": "\x07\x0b\x0c",
    "bidi": "\u202eelif.txt\u202c \u2066x\u2069 \u200e\u200f\u061c",
    "zero-width": "py\u200bpi\u200c.\u200dorg\u2060\ufeff",
    "tags": "\U000e0041\U000e0042",
    "separators": "one\u2028two\u2029three\u0085four",
    "no-break-space": "pypi.org\u00a0",
    "wide": "漢字" * 120,
    "combining-flood": "Z" + "\u0301" * 500,
    "long": "A" * 20000,
}

HOSTILE["mix"] = "".join(HOSTILE.values())


def forbidden(char: str) -> bool:
    """True for a character that must never reach a terminal raw (newline aside)."""
    code = ord(char)
    if char == "\n":
        return False
    return (code < 0x20 or 0x7F <= code <= 0x9F or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069
            or char in "\u200e\u200f\u061c\u200b\u200c\u200d\u2060\ufeff\u2028\u2029\u00a0"
            or unicodedata.category(char) == "Cf")


# What a hostile agent writes to run script in the operator's browser.
HTML_ATTACKS = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned='onerror'\">",
    "<svg onload=\"window.__pwned='svg'\"></svg>",
    "<a href=\"javascript:window.__pwned='link'\">click me</a>",
    "javascript:window.__pwned='url'",
    "\"><script>window.__pwned='attribute'</script>",
    "</textarea><script>window.__pwned='textarea'</script>",
    "<iframe src=\"javascript:parent.__pwned='frame'\"></iframe>",
    "<style>body{display:none}</style><meta http-equiv=refresh content=\"0;url=http://evil.example/\">",
]
ATTACK_TEXT = "\n".join(HTML_ATTACKS)


def spellings(token: str) -> dict[str, str]:
    """The token spelt as an agent may choose, to slip past masking that looks for its usual forms."""
    return {
        "upper hex": binascii.hexlify(token.encode()).decode().upper(),
        "lower percent": "".join(f"%{byte:02x}" for byte in token.encode()),
        "some percent": "".join(f"%{ord(c):02X}" if i % 5 == 0 else c for i, c in enumerate(token)),
        "zero-width": "\u200b".join(token[i : i + 4] for i in range(0, len(token), 4)),
        "base32": base64.b32encode(token.encode()).decode(),
        "lower base32 after a byte": base64.b32encode(b"x" + token.encode()).decode().lower().rstrip("="),
    }


def recoverable(text: str, token: str) -> bool:
    """True if 12 characters of ``token`` (or of its hex, or its base32 at any alignment) can be read back from
    ``text``.

    Undoes what the spellings do, independently of the code under test:
    JSON's and the display's ``\\uXXXX`` escapes and percent-escapes decoded,
    then only letters and digits kept, case ignored.
    """
    text = re.sub(r"\\u[0-9a-fA-F]{4}", "", text)
    bare = re.sub(r"[^0-9a-z]", "", urllib.parse.unquote(text).lower())
    raw = token.encode()
    base32 = [base64.b32encode(raw[skip:][: len(raw[skip:]) - len(raw[skip:]) % 5]).decode() for skip in range(5)]
    for form in (token, binascii.hexlify(raw).decode(), *base32):
        plain = re.sub(r"[^0-9a-z]", "", form.lower())
        if any(plain[i : i + 12] in bare for i in range(len(plain) - 11)):
            return True
    return False
