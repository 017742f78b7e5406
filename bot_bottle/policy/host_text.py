"""Hosts and addresses in text: what a routes-file line (or a route that does not parse) names, for the
operator to read before approving it (``policy.approval``).

The egress proxy reads its routes file as YAML or JSON; this reads each line
as text, erring towards finding more: every token that looks like a host,
the dotless names that resolve to an address of their own where a host
stands, and every IP address in any form ``inet_aton`` reads. A value a
YAML or JSON reader reads over several lines (continued by a backslash, on
the line after its key, a list one item a line) is read as that reader
reads it, escapes decoded (``hosts_read``, ``read_across_lines``), and a
URL's percent-escapes as a URL parser decodes them in a host
(``decoded_readings``).
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from bot_bottle.policy.hosts import (
    DOT_LIKE,
    DOTLESS_NAMES,
    LOOPBACK_NAMES,
    NAMED_ADDRESSES,
    WILDCARD_DNS,
    ipv4_readings,
)
from bot_bottle.policy.routes import decoded_escapes


class _Guarded:
    """A compiled pattern read only in text that holds one of the strings every match of it holds (``needles``;
    for a pattern that ignores case, as ``casefold`` writes them; ``or_non_ascii``: or any character outside
    ASCII). The patterns below look behind or around at every position, a millisecond or more for each 128 KiB
    line, and a routes file's line is read by a dozen of them: an ``in`` test first reads a line that holds
    none of their needles, most lines, fifty times faster. The guard only ever skips text the pattern cannot
    match, so what is found is unchanged."""

    def __init__(self, pattern: re.Pattern[str], *needles: str, or_non_ascii: bool = False) -> None:
        self.pattern = pattern
        self.needles = needles
        self.or_non_ascii = or_non_ascii

    def _may_match(self, text: str) -> bool:
        if self.or_non_ascii and not text.isascii():
            return True
        read = _folded(text) if self.pattern.flags & re.IGNORECASE else text
        return any(needle in read for needle in self.needles)

    def search(self, text: str) -> re.Match[str] | None:
        """``re.Pattern.search``."""
        return self.pattern.search(text) if self._may_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """``re.Pattern.finditer``."""
        return self.pattern.finditer(text) if self._may_match(text) else iter(())


@functools.lru_cache(maxsize=8)
def _folded(text: str) -> str:
    """``text`` case-folded, as a pattern that ignores case reads it (its long s is an 's'), for the last few texts:
    one line is tried by several patterns in turn."""
    return text.casefold()

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
    (after a host key, a YAML anchor or tag between, as a list item, as a
    URL's host, or alone on its line, as YAML continues a value:
    ``/v1/metadata`` is a path).
    """
    lowered = text.lower()
    dotless = any(name in lowered for name in DOTLESS_NAMES)
    if "." not in text and (text.isascii() or not _HAS_DOT_RE.search(text)) and not dotless and "//" not in text \
            and not _HOST_KEY_RE.search(text):
        return []  # no dot, no host: most text is read no further
    found: dict[str, None] = {}
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0).strip(".-")
        if _HAS_DOT_RE.search(token) and any(char.isalpha() for char in token):
            found.setdefault(token, None)
    for match in _DOTLESS_PLACE_RE.finditer(text) if dotless else ():
        if match.group(1).lower() in DOTLESS_NAMES:  # where a host stands: not "/v1/metadata"
            found.setdefault(match.group(1), None)
    # Any name without a dot as a host key's value, or an item of a hosts list on its line ("host: redis",
    # '"hosts": ["pypi.org", "gitlab"]'): a route's host so written reaches another container (policy.reach).
    for match in _HOST_KEY_VALUE_RE.finditer(text) if _HOST_KEY_RE.search(text) else ():
        for name in _DOTLESS_ITEM_RE.findall(match.group(1)):
            if not name.isdigit():
                found.setdefault(name, None)
    # Any name without a dot as a URL's host: one of its own (metadata), or one the resolver completes with its
    # search domains (http://redis:6379/), as a route's host reaches a private network (policy.reach).
    for match in _URL_HOST_RE.finditer(text) if "//" in text else ():
        name = match.group(1)
        # Not an address in one number (addresses_in_text's), nor a user's name ("//user:p@ss@host/").
        if name.lower() in DOTLESS_NAMES or not (name.isdigit() or _USERINFO_END_RE.match(text, match.end())):
            found.setdefault(name, None)
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

# A host key's value, or its list on the line ("hosts: [a, b]"), a YAML anchor or tag before it; and each dotless
# name standing alone in it as an item.
_HOST_KEY_VALUE_RE = re.compile(r"""\bhosts?\b["']?\s*[:=]\s*(?:[&!][^\s"']{0,64}\s+){0,2}(\[[^\]]*\]?|[^\s,}#]+)""",
                                re.IGNORECASE)
_DOTLESS_ITEM_RE = re.compile(r"""(?:^|(?<=[\[,\s"']))["']?([A-Za-z0-9_-]+)\.?["']?(?=$|[\s,\]}#"'])""")

# A dotless name as a URL's host ("http://localhost:8080/", "//user@metadata/"): a port, path, query or fragment
# may follow it there. The "//" starts the URL (after its scheme, or where a value starts): "x.org//metadata/" is a
# path.
_URL_HOST_RE = re.compile(r"""(?:\b[a-z][a-z0-9+.-]{0,20}:|(?<![^\s"'=\[,(]))//(?:[^\s/@"']{0,64}@)?"""
                          r"""([A-Za-z0-9_-]+)\.?(?=$|[\s/:?#"',\]}])""", re.IGNORECASE)
_USERINFO_END_RE = re.compile(r"""[^\s/?#"']*@""")  # what follows a URL's userinfo up to its '@' ("//user:p@ss@")


# An IP address in text: a dotted one (IPv4 in any of inet_aton's forms: four parts, or a part marked octal or
# hex), one with colons (IPv6, in brackets or not), or any number-and-dots form where a host stands (after a
# host key, or as a list item: "2852039166" and "127.1" are addresses there, "timeout: 1.5" is not).
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|[0-9]+)"
_DOTTED_RE = _Guarded(re.compile(rf"(?<![\w.%]){_NUMBER}(?:\.{_NUMBER}){{1,3}}\.?(?![\w.])"), ".")
_COLONS_RE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[\w.-]+)?(?![\w:])")
_NUMBER_START_RE = re.compile(r"(?:^|[^\w.])[0-9]")
_HOST_PLACE_RE = _Guarded(
    re.compile(rf"""(?:\bhosts?\b["']?\s*[:=]|^\s*-|[\[,])\s*["']?({_NUMBER}(?:\.{_NUMBER}){{0,3}})(?![\w.:])""",
               re.IGNORECASE), "host", "-", "[", ",")


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


_HOST_KEY_RE = _Guarded(re.compile(r"\bhosts?\b", re.IGNORECASE), "host")


def listed_addresses(line: str) -> list[str]:
    """``addresses_in_text`` without a list's small numbers (``ports: [80, 443]``, ``- 3600``): a number below
    2**24 is an address only in 0.0.0.0/8, which no client connects to but 0 itself, so it is one only on a line
    with a host key (``hosts: [443]`` reads as written). A port list read as 0.0.1.187 asked for a typed yes."""
    found = addresses_in_text(line)
    if not found or _HOST_KEY_RE.search(line):
        return found
    return [address for address in found if address == "0" or not address.isdigit() or int(address) >= 1 << 24]


def may_hold_a_look_alike(line: str) -> bool:
    """Whether ``line`` can name a host that is not what it looks like (``hosts.host_problems``): characters
    outside ASCII, an ``xn--`` label, a name that spells an address (digits, or a wildcard DNS service's,
    loopback or other named address's name), or an escape (``\\x68``) that may write any of these. The rest,
    most lines of a large file, are not read for hosts again."""
    lowered = line.lower()
    return (not line.isascii() or "xn--" in lowered or "\\" in line or any(char.isdigit() for char in line)
            or any(name in lowered for name in (*WILDCARD_DNS, *LOOPBACK_NAMES, *NAMED_ADDRESSES)))


_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")
# What a WHATWG URL parser (browsers, Node) reads otherwise than it is written, in a line: a tab or a newline
# (removed anywhere in a URL), a backslash (a '/' in a special URL), a special scheme not followed by exactly
# two slashes ("http:localhost", "http:///localhost": the host all the same), userinfo (its last '@' ends it),
# a percent-escape, and any character outside ASCII (mapped as IDNA maps it: full-width, circled, ideographic
# dots). A line with none of these reads as written.
_URL_OTHERWISE_RE = _Guarded(
    re.compile(r"[\t\r\n\\@%]|[^\x00-\x7f]|\b(?:https?|wss?|ftp):(?!//[^/])", re.IGNORECASE),
    "\t", "\r", "\n", "\\", "@", "%", ":", or_non_ascii=True)
_URL_SCHEME_RE = re.compile(r"\b(https?|wss?|ftp):/*(?=[^\s/])", re.IGNORECASE)
_USERINFO_RE = re.compile(r"//[^/?#\s\"']*@")
_DOT_LIKE_RE = re.compile(f"[{DOT_LIKE}]")
_WHITE_ESCAPE_RE = re.compile(r"\\[tnr]")
_URL_WHITE_RE = re.compile(r"[\t\r\n]")  # what a URL parser removes wherever it stands
# A URL's start: its scheme, or "//".
_URL_RE = _Guarded(re.compile(r"//|\\\\|\b(?:https?|wss?|ftp):", re.IGNORECASE), "//", "\\\\", ":")


def decoded_readings(line: str) -> list[str]:
    """``line`` as a reader may decode it, each reading that differs from the line once: its escapes decoded
    (a YAML or JSON reader's), and then as a URL parser (WHATWG's: browsers, Node) reads a URL's host in it
    (``url_reading``): ``http://%31%30.0.0.5/`` reaches 10.0.0.5, ``pyp%D1%96.org`` is pyp\u0456.org,
    ``http:\\\\localhost\\``, ``http://a@b@metadata/`` and ``http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/``
    this machine or the metadata service."""
    readings = [decoded_escapes(line) if "\\" in line else line]
    if "%" in line and _PERCENT_RE.search(readings[0]):  # as decoded, its characters as they are: a look-alike
        readings.append(unquote(readings[0]))
    if _URL_OTHERWISE_RE.search(line):
        # A quoted value's \t, \n and \r are a tab, a newline and a return to a YAML or JSON reader, which a URL
        # parser removes in turn: "http://meta\tdata/" is http://metadata/.
        bases = (line, readings[0], _WHITE_ESCAPE_RE.sub("", readings[0]))
        readings += [url_reading(text) for text in dict.fromkeys(bases) if _holds_url(text)]
    return [text for text in dict.fromkeys(readings) if text != line]


def _url_readings(text: str) -> list[str]:
    """``text`` (already decoded) as a URL parser reads it, where it holds a URL and reads otherwise."""
    return [url_reading(text)] if _holds_url(text) and _URL_OTHERWISE_RE.search(text) else []


def _holds_url(text: str) -> bool:
    """Whether ``text`` holds a URL's start once the tabs and newlines a URL parser removes are gone (``ht\ttp:``)."""
    return _URL_RE.search(_URL_WHITE_RE.sub("", text)) is not None


def url_reading(text: str) -> str:
    """``text`` with each URL in it as a WHATWG URL parser reads its host: tabs and newlines removed, a backslash
    a slash, a special scheme's slashes (none, one, three) as two, the userinfo (to the authority's last ``@``)
    dropped, percent-escapes decoded, then compatibility characters mapped (NFKC, as IDNA's mapping does:
    ``\uff11`` is 1, ``\u2460`` is 1) and the characters IDNA reads as dots as dots."""
    text = _URL_WHITE_RE.sub("", text).replace("\\", "/")
    text = _USERINFO_RE.sub("//", _URL_SCHEME_RE.sub(r"\1://", text))
    if _PERCENT_RE.search(text):
        text = unquote(text)
    if not text.isascii():
        text = _DOT_LIKE_RE.sub(".", unicodedata.normalize("NFKC", text))
    return text


def hosts_read(lines: list[str], index: int) -> list[str]:
    """The hosts of ``lines[index]`` as written and as a YAML or JSON reader reads it: escapes decoded
    (``"admin.local\\x68ost"`` is admin.localhost), and, where a double-quoted value starts there and is
    continued by a trailing backslash (``"admin.localh\\`` then ``ost"``), the lines it runs over joined (each
    run read once, from its first line: a file of such lines is read in one pass)."""
    line = lines[index]
    if "\\" not in line and not _URL_OTHERWISE_RE.search(line):
        return hosts_in_text(line)  # no escape, no continuation: the line as written is all there is
    read = [line, *decoded_readings(line)]
    if line.endswith("\\") and (index == 0 or not lines[index - 1].endswith("\\")):
        run, at = [line[:-1]], index + 1
        while at < len(lines):
            following = lines[at].lstrip(" \t")
            run.append(following[:-1] if following.endswith("\\") else following)
            if not following.endswith("\\"):
                break
            at += 1
        joined = decoded_escapes("".join(run))
        read += [joined, *_url_readings(joined)]
    found: dict[str, None] = {}
    for text in dict.fromkeys(read):  # each reading once: most lines read the same decoded
        for host in hosts_in_text(text):
            found.setdefault(host, None)
    return list(found)


def hosts_of(lines: Any, addresses: dict[str, list[str]]) -> list[str]:
    """The hosts ``lines`` name, each once, in order: their host-like tokens, their addresses (``addresses``:
    each line's ``listed_addresses``, read once by the caller) and those where a host stands, as written and with
    their escapes (and a URL's percent-escapes) decoded (``decoded_readings``)."""
    found: dict[str, None] = {}
    for line in lines:
        for host in (*hosts_in_text(line), *addresses[line], *_addresses_placed(line)):
            found.setdefault(host, None)
        for decoded in decoded_readings(line):
            for host in (*hosts_in_text(decoded), *addresses_in_text(decoded), *_addresses_placed(decoded)):
                found.setdefault(host, None)
    return list(found)


# An IPv4 address in any form where a host stands that addresses_in_text does not read there: after a host key
# and an anchor or tag ("host: !!str 2852039166"), with a port ("host: 2852039166:80"), or as a URL's host
# ("url: http://0xa9fea9fe/latest/", "//user@2852039166").
_PLACED_RE = _Guarded(re.compile(r"""(?:\bhosts?\b["']?\s*[:=]\s*(?:[&!][^\s"']{0,64}\s+){0,2}"""
                                 r"""|(?:\b[a-z][a-z0-9+.-]{0,20}:|(?<![^\s"'=\[,(]))//(?:[^\s/@"']{0,64}@)?)["']?"""
                                 r"(0[xX][0-9a-fA-F]+|[0-9]+(?:\.(?:0[xX][0-9a-fA-F]+|[0-9]+)){0,3})"
                                 r"(?=$|[\s\"',}\]#/:?])", re.IGNORECASE), "host", "//")


_ASCII_DIGIT_RE = re.compile(r"[0-9]")


def _addresses_placed(line: str) -> list[str]:
    """The addresses ``_PLACED_RE`` finds in ``line``, as written (most lines hold no digit, and are read no
    further: looked for by a regex, as a character at a time in Python took 38 ms a 128 KiB routes file)."""
    if _ASCII_DIGIT_RE.search(line) is None:  # (the addresses it reads are written in ASCII digits)
        return []
    return [match.group(1) for match in _PLACED_RE.finditer(line) if ipv4_readings(match.group(1))]


# A line that ends with a host key ("host:", '"hosts":', "host: &h !!str >-"): its value stands on the next line.
_HOST_KEY_END_RE = _Guarded(re.compile(r"""\bhosts?\b["']?\s*[:=]\s*(?:[&!][^\s"']{0,64}\s*){0,2}"""
                                       r"(?:[>|][-+0-9]{0,2})?\s*(?:#.*)?$", re.IGNORECASE), "host")
# A line that opens a hosts list and does not close it: its items stand on the lines after, one a line.
_HOST_LIST_OPEN_RE = _Guarded(re.compile(r"""\bhosts?\b["']?\s*[:=]\s*(?:[&!][^\s"']{0,64}\s*){0,2}\[[^\]]*$""",
                                         re.IGNORECASE), "host")


def read_across_lines(lines: list[str], kept: set[str]) -> list[str]:
    """The hosts a YAML or JSON reader reads over more than one line of ``lines``, where one of those lines is
    new (not in ``kept``): a double-quoted value continued by a trailing backslash (``"169.254.\\`` then
    ``169.254"``, read whole with its escapes decoded), and an address alone on the line after a host key
    (``host:`` then ``2852039166``) or in a hosts list written one item a line. Each line is read once."""
    found: dict[str, None] = {}
    index, list_end = 0, 0
    while index < len(lines):
        line = lines[index]
        if line.endswith("\\"):  # a run of continued lines, read whole from its first
            end = index
            while end + 1 < len(lines) and lines[end].endswith("\\"):
                end += 1
            run = lines[index:end + 1]
            if any(part not in kept for part in run):
                joined = decoded_escapes("".join(part.lstrip(" \t").removesuffix("\\") for part in run))
                for text in (joined, *_url_readings(joined)):
                    for host in (*hosts_in_text(text), *addresses_in_text(text)):
                        found.setdefault(host, None)
            index = end + 1
            continue
        values: range = range(0)
        if _HOST_LIST_OPEN_RE.search(line) and index >= list_end:  # each list's items read once
            list_end = index + 1
            while list_end < len(lines) and "]" not in lines[list_end]:
                list_end += 1
            values = range(index + 1, min(list_end + 1, len(lines)))
        elif _HOST_KEY_END_RE.search(line):  # the value on the next line that holds anything
            following = next((at for at in range(index + 1, len(lines)) if lines[at].strip()), index)
            values = range(index + 1, following + 1)
        for value in values:
            if line not in kept or lines[value] not in kept:
                found.update(dict.fromkeys(_alone_address(lines[value])))
        index += 1
    return list(found)


def _alone_address(line: str) -> list[str]:
    """The IPv4 address (in any of its forms), or the name without a dot (``redis``: another container, as a
    route's host), ``line`` holds alone, as a value or list item stands: quoted or not, a list's trailing comma
    or closing bracket aside, read as written and with its escapes decoded."""
    value = line.strip().removeprefix("- ").split("]", 1)[0].strip().removesuffix(",").strip().strip("\"'")
    return [text for text in dict.fromkeys((value, decoded_escapes(value)))
            if ipv4_readings(text) or (_DOTLESS_NAME_RE.fullmatch(text) and not text.isdigit())]


_DOTLESS_NAME_RE = re.compile(r"[A-Za-z0-9_-]+\.?")


# A lone "*" (or "*.") as a value or list item: a wildcard over every host, which names no host of its own.
_EVERY_HOST_RE = re.compile(r"""(?:^|[\s:\[,"'=-])\*\.?(?=$|[\s,\]"'}#])""")


def names_every_host(text: str) -> bool:
    """Whether routes file ``text`` holds a lone ``*`` (as written, or as an escape spells it: ``"\\u002a"``): a
    rejection of any host rejects it, as the proxy lets every host through it. A comment's line is no value
    (``# * is never listed``): a caution there would name every rejection in force for nothing."""
    lines = [line for line in text.split("\n") if not line.lstrip(" \t").startswith("#")]
    return ("*" in text and any(_EVERY_HOST_RE.search(line) for line in lines)) or (
        "\\" in text and any(_EVERY_HOST_RE.search(decoded_escapes(line)) for line in lines if "\\" in line))


# A YAML tag ("!!binary", "!<tag:yaml.org,2002:binary>", a %TAG handle's "!e!binary", "!!%62inary" as a reader
# decodes its URI escapes): a binary scalar's value is base64, which a reader that takes it into a string field
# (Go's yaml.v3) reads as the text it encodes.
_TAG_RE = re.compile(r"""!<[^\s>]*>|![^\s"',\[\]{}]*""")


def binary_hosts(lines: list[str]) -> list[str]:
    """The hosts and addresses a YAML binary scalar among ``lines`` encodes (``host: !!binary Y3JhdGVzLmlv`` is
    crates.io): its value on the tag's line (quoted or not), or the lines more indented than it after a block
    scalar's ``|`` or ``>`` (or an empty value), decoded as base64 and read as text."""
    found: dict[str, None] = {}
    for index, line in enumerate(lines):
        match = next((tag for tag in _TAG_RE.finditer(line) if unquote(tag.group(0)).rstrip(">").lower().endswith(
            "binary")), None) if "!" in line else None  # most lines hold no tag: read no further
        if match is None:
            continue
        value = decoded_escapes(line[match.end():].split(" #", 1)[0]).strip().strip("\"'")
        if not value or value[0] in "|>":
            indent = len(line) - len(line.lstrip(" "))
            following = []
            for after in lines[index + 1:]:
                if after.strip() and len(after) - len(after.lstrip(" ")) <= indent:
                    break
                following.append(after.strip())
            value = "".join(following)
        data = re.sub(r"[^A-Za-z0-9+/]", "", value)
        try:
            text = base64.b64decode(data + "=" * (-len(data) % 4)).decode("utf-8", errors="replace")
        except ValueError:
            continue
        for part in text.split("\n"):
            found.update(dict.fromkeys([*hosts_in_text(part), *addresses_in_text(part), *_alone_address(part)]))
    return list(found)
