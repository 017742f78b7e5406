"""Hosts as they read: every character of a host name that is not what it looks like, named.

An operator approves a host by reading it, and ``pyp\\u0456.org`` (a
Cyrillic i, U+0456), ``pypi\\u2024org`` (U+2024 ONE DOT LEADER) or
``xn--pyp-lhd.org`` read as ``pypi.org``. So wherever a host is shown for a decision (an
``egress-allow`` route, a routes file, a token's report), each character
outside the ASCII letters, digits, ``-``, ``.``, ``_`` and ``*`` a host is
written with is named by its code point and Unicode name, with the ASCII it
reads as where Unicode says so (U+2024 reads as ``.``), and the host's IDNA
form: the name a client that applies IDNA (a browser, ``curl`` built with
libidn) asks DNS for, which for ``pypi\\u2024org`` is ``pypi.org`` itself. A label
already in its ``xn--`` form is decoded and named the same way.

``shown_host`` writes a host for a list or a prompt with every such
character as its ``\\uXXXX`` escape, so a look-alike never reads as the host
it imitates even before its warning is read.
"""

from __future__ import annotations

import encodings.idna
import re
import unicodedata

from bot_bottle.text.terminal import describe_char, escape_char

# What a host is written with when it is what it looks like (a "*." pattern included).
_PLAIN_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*")
# Characters IDNA (and so browsers) take as a label separator, or that look like one.
DOT_LIKE = "\u2024\uff0e\u3002\uff61\ufe52"
# A host-like token in text: a run of anything but white space and the punctuation of YAML, JSON, TOML,
# URLs and lists around it (so a look-alike cannot hide in a token that is not split as a host would be).
_TOKEN_RE = re.compile(r"""[^\s"'`,;:\[\]{}()<>=#|/\\@?&!+%$^~]+""")
_HAS_DOT_RE = re.compile(f"[.{DOT_LIKE}]")
MAX_SHOWN_PROBLEMS = 4


def shown_host(host: str) -> str:
    """``host`` as ASCII text: each character outside printable ASCII written as its escape (``pyp\\u0456.org``)."""
    if host.isascii() and host.isprintable():
        return host
    return "".join(char if char.isascii() and char.isprintable() else escape_char(char) for char in host)


def _reads_as(char: str) -> str:
    """The ASCII a character reads as, where Unicode's compatibility mapping says (U+2024 -> '.'), else ''."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", char) if c.isascii() and c.isprintable())
    return folded if folded and folded != char else ""


def _named(char: str, position: int) -> str:
    reads = _reads_as(char)
    return f"{describe_char(char)} at character {position}" + (f", which reads as {reads!r}" if reads else "")


def idna_form(host: str) -> str:
    """What IDNA makes of ``host`` (the name a client that applies it connects to), or why it cannot."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        return f"none (IDNA cannot encode it: {exc.reason if hasattr(exc, 'reason') else exc})"


def _label_problem(label: str) -> str | None:
    """Why an ``xn--`` label does not read as what it is: the name it stands for, or that it stands for none."""
    try:
        decoded = encodings.idna.ToUnicode(label)
    except UnicodeError:
        return f"its label {label!r} is not a valid internationalized name (xn-- that does not decode)"
    odd = [_named(char, index) for index, char in enumerate(decoded, start=1) if char not in _PLAIN_HOST_CHARS]
    shown = ", ".join(odd[:MAX_SHOWN_PROBLEMS]) + (f" and {len(odd) - MAX_SHOWN_PROBLEMS} more" if len(odd) >
                                                    MAX_SHOWN_PROBLEMS else "")
    return f"its label {label} is the internationalized name '{shown_host(decoded)}'" + (f" ({shown})" if odd
                                                                                             else "")


def host_problems(host: str) -> list[str]:
    """Why ``host`` may not be what it looks like (empty: it is plain ASCII, without ``xn--`` labels).

    Each item names the characters (code point, name, what they read as) or
    the ``xn--`` label and what it decodes to; a host with characters
    outside ASCII also gets its IDNA form.
    """
    problems: list[str] = []
    odd = [_named(char, index) for index, char in enumerate(host, start=1) if char not in _PLAIN_HOST_CHARS]
    if odd:
        more = f" and {len(odd) - MAX_SHOWN_PROBLEMS} more" if len(odd) > MAX_SHOWN_PROBLEMS else ""
        problems.append(f"it holds {', '.join(odd[:MAX_SHOWN_PROBLEMS])}{more}; its IDNA form (the name a client "
                        f"that applies IDNA connects to) is {idna_form(host)}")
    for label in re.split(f"[.{DOT_LIKE}]", host):
        if label[:4].lower() == "xn--":
            problem = _label_problem(label.lower())
            if problem:
                problems.append(problem)
    return problems


def hosts_in_text(text: str) -> list[str]:
    """The host-like tokens of ``text`` (a routes-file line, a route that does not parse), in order, once each.

    A token is host-like when it holds a dot (or a character that reads as
    one) and a letter: ``pypi.org``, ``*.com``, ``pyp\\u0456.org``, ``caf\\u00e9.txt``
    too (a reading aid errs towards showing more).
    """
    if "." not in text and (text.isascii() or not _HAS_DOT_RE.search(text)):
        return []  # no dot, no host: most text is read no further
    found: dict[str, None] = {}
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0).strip(".-")
        if _HAS_DOT_RE.search(token) and any(char.isalpha() for char in token):
            found.setdefault(token, None)
    return list(found)
