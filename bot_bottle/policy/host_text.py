"""Hosts and addresses in text: what a routes-file line (or a route that does not parse) names, for the
operator to read before approving it (``policy.approval``).

The egress proxy reads its routes file as YAML or JSON; this reads each line
as text, erring towards finding more: every token that looks like a host,
the dotless names that resolve to an address of their own where a host
stands, and every IP address in any form ``inet_aton`` reads.
"""

from __future__ import annotations

import ipaddress
import re

from bot_bottle.policy.hosts import DOT_LIKE, DOTLESS_NAMES, ipv4_readings

# A host-like token in text: a run of anything but white space and the punctuation of YAML, JSON, TOML,
# URLs and lists around it (so a look-alike cannot hide in a token that is not split as a host would be).
_TOKEN_RE = re.compile(r"""[^\s"'`,;:\[\]{}()<>=#|/\\@?&!+%$^~]+""")
_HAS_DOT_RE = re.compile(f"[.{DOT_LIKE}]")


def hosts_in_text(text: str) -> list[str]:
    """The host-like tokens of ``text`` (a routes-file line, a route that does not parse), in order, once each.

    A token is host-like when it holds a dot (or a character that reads as
    one) and a letter: ``pypi.org``, ``*.com``, ``pyp\\u0456.org``, ``caf\\u00e9.txt``
    too (a reading aid errs towards showing more); or when it is a name
    without a dot that resolves to an address of its own (``localhost``,
    ``ip6-localhost``, ``metadata``: ``DOTLESS_NAMES``) where a host stands
    (after a host key, a YAML anchor or tag between, as a list item, or alone
    on its line, as YAML continues a value: ``/v1/metadata`` is a path).
    """
    lowered = text.lower()
    dotless = any(name in lowered for name in DOTLESS_NAMES)
    if "." not in text and (text.isascii() or not _HAS_DOT_RE.search(text)) and not dotless:
        return []  # no dot, no host: most text is read no further
    found: dict[str, None] = {}
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0).strip(".-")
        if _HAS_DOT_RE.search(token) and any(char.isalpha() for char in token):
            found.setdefault(token, None)
    for match in _DOTLESS_PLACE_RE.finditer(text) if dotless else ():  # where a host stands: not "/v1/metadata"
        if match.group(1).lower() in DOTLESS_NAMES:
            found.setdefault(match.group(1), None)
    # A value alone on its line: YAML's continued or block scalar, a list's item one a line ('"localhost",').
    alone = text.strip().removesuffix(",").strip().strip("\"'").rstrip(".")
    if dotless and alone.lower() in DOTLESS_NAMES:
        found.setdefault(alone, None)
    return list(found)


# A dotless name where a host stands: after a host key, or as a list item ("- localhost", "[localhost]"), a YAML
# anchor or tag ("&h", "!!str") between.
# Overlapping matches (a lookahead): in '{"host": "localhost"}' the '{' before "host" is a place too.
_DOTLESS_PLACE_RE = re.compile(r"""(?=(?:\bhosts?\b["']?\s*[:=]|^\s*-|[\[,{])\s*(?:[&!][^\s"']{0,64}\s+)?["']?"""
                               r"""([A-Za-z0-9-]+)\.?["']?"""
                               r"""(?:$|[\s,\]}#"']))""", re.IGNORECASE)


# An IP address in text: a dotted one (IPv4 in any of inet_aton's forms: four parts, or a part marked octal or
# hex), one with colons (IPv6, in brackets or not), or any number-and-dots form where a host stands (after a
# host key, or as a list item: "2852039166" and "127.1" are addresses there, "timeout: 1.5" is not).
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_DOTTED_RE = re.compile(rf"(?<![\w.]){_NUMBER}(?:\.{_NUMBER}){{1,3}}\.?(?![\w.])")
_COLONS_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[\w.-]+)?(?![\w:])")
_NUMBER_START_RE = re.compile(r"(?:^|[^\w.])[0-9]")
_HOST_PLACE_RE = re.compile(rf"""(?:\bhosts?\b["']?\s*[:=]|^\s*-|[\[,])\s*["']?({_NUMBER}(?:\.{_NUMBER}){{0,3}})"""
                            r"(?![\w.:])", re.IGNORECASE)


def _looks_like_an_address(token: str) -> bool:
    parts = token.rstrip(".").split(".")
    return len(parts) == 4 or any(len(part) > 1 and part.startswith("0") for part in parts)


def addresses_in_text(text: str) -> list[str]:
    """The IP addresses ``text`` (a routes-file line) names, as written, in order, once each.

    ``hosts_in_text`` takes only tokens with a letter, so a route to
    ``169.254.169.254`` or ``[fd00::1]`` named no host: these are the rest.
    Numbers and dots are an address where a host stands (after a host key,
    or as a list item), or anywhere in four parts or with a part marked
    octal or hex; ``timeout: 1.5`` is no address.
    """
    found: dict[str, None] = {}
    if _NUMBER_START_RE.search(text):  # most lines hold no number of their own: read no further for IPv4
        for match in _DOTTED_RE.finditer(text):
            if _looks_like_an_address(match.group(0)) and ipv4_readings(match.group(0)):
                found.setdefault(match.group(0), None)
        for match in _HOST_PLACE_RE.finditer(text):
            if ipv4_readings(match.group(1)):
                found.setdefault(match.group(1), None)
    if text.count(":") >= 2:
        for match in _COLONS_RE.finditer(text):
            try:
                ipaddress.IPv6Address(match.group(0).split("%", 1)[0])
            except ValueError:
                continue
            found.setdefault(match.group(0), None)
    return list(found)
