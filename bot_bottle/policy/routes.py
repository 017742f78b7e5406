"""Egress routes as the operator decides on them: one route's rules, and what widens access.

An ``egress-allow`` proposal carries one route as a small JSON document,
``{"host": "docs.python.org", "methods": ["GET"], "paths": ["/3/"]}`` (no
methods, or no paths: every one); an ``egress-block``
proposal carries a whole routes file in the egress proxy's own format, which
this project treats as text. The supervise server builds routes with
``route_document``; the operator's modified file passes ``validate_final_file``
(the same rules), so what is approved is always a file the proxy can read and
the operator could see in full.

``widening_lines`` is a reading aid, not a parser of the proxy's format: it
flags lines that name a host wildcard over everything (``*``), over a whole
top-level domain (``*.com``) or any name the Public Suffix List says holds
names of many owners (``*.co.uk``, ``*.github.io``, ``*.compute.amazonaws.com``:
``policy.suffixes``) or over IP addresses (``*.169.254``: its last label is
all digits, as no top-level domain is), a path of ``/`` (or ``/*``), or a YAML
alias (``*name``, which repeats a value from elsewhere), so the operator's eye
goes there first. It reads each line as written and with its escapes decoded
(``"\u002a"`` is ``*`` to a YAML or JSON reader), and finds a wildcard
wherever it stands (a list item, a line of a multi-line value), not only
after a ``host:`` key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from bot_bottle.errors import ValidationError
from bot_bottle.policy.hosts import wildcard_dns_within
from bot_bottle.policy.suffixes import shipped
from bot_bottle.records import TOOL_EGRESS_ALLOW, TOOL_EGRESS_BLOCK
from bot_bottle.text.terminal import describe_char, unsafe_characters

HOST_RE = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
PATH_RE = re.compile(r"/[\x21-\x7e]{0,1023}")
MAX_HOST_CHARS = 253
MAX_PATHS = 64
# The methods a route may name (RFC 9110's, upper case: HTTP methods are case-sensitive, and a proxy
# must not take an approval of POST as one of "post").
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# "host: X", '"host": "X"', "host = X": the value a routes-file line gives a host.
_HOST_VALUE_RE = re.compile(r"""["']?\bhosts?\b["']?\s*[:=]\s*["']?([^\s"',}\]#]+)""", re.IGNORECASE)
# A bare * or / standing alone as a value or list item ("- *", '["/"]', "path: /").
_LONE_STAR_RE = re.compile(r"""(?:^|[\s:\[,"'=-])\*(?=$|[\s,\]"'}])""")
_ROOT_PATH_RE = re.compile(r"""(?:^|[\s:\[,"'=-])(/(?:(?:;|%3[bB])[^\s,\]"'}#/]*)?\**)(?=$|[\s,\]"'}#])""")
# Any token that starts with * where a value starts: a wildcard host in a list item or on a line of its
# own (a multi-line value), or a YAML alias (*name), whatever key, if any, is before it.
_STAR_TOKEN_RE = re.compile(r"""(?:^|(?<=[\s:\[,"'=({<-]))\*[^\s"',}\]#)]*""")
# Escapes a YAML double-quoted or JSON string decodes: "\u002a" is "*", "\/" is "/".
_ESCAPE_RE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|U([0-9a-fA-F]{8})|(/))")


@dataclass(frozen=True)
class Route:
    """One egress route: a host (``*.`` may lead), the path prefixes and methods allowed (empty: every one)."""

    host: str
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    def to_document(self) -> str:
        """The route as the stable JSON document an ``egress-allow`` proposal carries."""
        route: dict[str, Any] = {"host": self.host}
        if self.paths:
            route["paths"] = list(self.paths)
        if self.methods:
            route["methods"] = list(self.methods)
        return json.dumps(route, indent=2, sort_keys=True) + "\n"

    def widening(self) -> list[str]:
        """Why this route widens access more than a route should (empty: it does not)."""
        reasons = []
        if host_is_wide(self.host):
            reasons.append(f"host {self.host!r} is a wildcard over {_what_wildcard_covers(self.host)}")
        if "/" in self.paths:
            reasons.append("path '/' allows every path of the host")
        reasons += [f"path {path!r} may allow every path of the host (a proxy that reads it as a pattern)"
                    for path in self.paths if path != "/" and not path.strip("/*")]
        reasons += [f"path {path!r} is '/' to a Java server, which drops a segment's parameters (';...'): "
                    "/;/admin is /admin to Tomcat, so it may allow every path of the host"
                    for path in self.paths if path.strip("/*") and _read_as_root(path)]
        return reasons


def _read_as_root(path: str) -> bool:
    """Whether a path prefix is the root to a server that undoes percent-encoding, drops each segment's
    parameters and merges slashes (``/;``, ``/;x/``, ``/%3b``): every path starts with it there."""
    return not re.sub(r";[^/]*", "", unquote(path, encoding="latin-1")).strip("/*")


def make_route(host: object, paths: object = None, methods: object = None) -> Route:
    """A validated route from a host and optional path prefixes and methods; ``ValidationError`` names what is wrong.

    The host is lower-cased and stripped; paths and methods are sorted and
    de-duplicated; a method must be one of ``METHODS`` as written there.
    """
    if not isinstance(host, str):
        raise ValidationError("host", "must be a string")
    name = host.strip().lower()
    if len(name) > MAX_HOST_CHARS or not HOST_RE.fullmatch(name):
        # !a: a look-alike is spelt out ('pyp\u0456.org'), or the refusal reads as one of pypi.org
        raise ValidationError("host", f"{name[:80]!a} is not a host name; give one such as docs.python.org or "
                              "*.pythonhosted.org (ASCII: an internationalized name in its xn-- form), without "
                              "scheme, port or path")
    chosen = _methods(methods)
    if paths is None:
        return Route(name, (), chosen)
    if not isinstance(paths, list):
        raise ValidationError("paths", "must be a list of path prefixes")
    if len(paths) > MAX_PATHS:
        raise ValidationError("paths", f"at most {MAX_PATHS} paths, not {len(paths)}")
    for path in paths:
        if not isinstance(path, str) or not PATH_RE.fullmatch(path):
            raise ValidationError("paths", f"{str(path)[:80]!r} is not a path prefix; give ones such as /simple/ "
                                  "(starting with /, printable ASCII, no spaces)")
    return Route(name, tuple(sorted(set(paths))), chosen)


def _methods(methods: object) -> tuple[str, ...]:
    if methods is None:
        return ()
    if not isinstance(methods, list) or not methods:
        raise ValidationError("methods", f"must be a list of HTTP methods ({', '.join(METHODS)}), or left out")
    for method in methods:
        if not isinstance(method, str) or method not in METHODS:
            raise ValidationError("methods", f"{str(method)[:20]!r} is not one of {', '.join(METHODS)} (upper case: "
                                  "HTTP methods are case-sensitive)")
    return tuple(sorted(set(methods)))


def parse_route(document: str) -> Route:
    """The route an ``egress-allow`` document holds, by the same rules as ``make_route``.

    The document must be a JSON object with ``host`` and optionally ``paths``
    and ``methods``, nothing else.
    """
    try:
        value = json.loads(document, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # nested past Python's recursion limit is no route either
        reason = exc if isinstance(exc, ValueError) else "nested too deep"
        raise ValidationError("final_file", f"an egress-allow route must be JSON, like "
                              f'{{"host": "docs.python.org", "paths": ["/3/"]}}: {reason}') from None
    if not isinstance(value, dict):
        raise ValidationError("final_file", "an egress-allow route must be a JSON object with host and paths")
    unknown = sorted(set(value) - {"host", "paths", "methods"})
    if unknown:
        raise ValidationError("final_file", f"an egress-allow route has only host, paths and methods, not "
                              f"{unknown[0]!r}")
    if "host" not in value:
        raise ValidationError("final_file", "an egress-allow route needs a host")
    try:
        return make_route(value["host"], value.get("paths"), value.get("methods"))
    except ValidationError as exc:
        raise ValidationError("final_file", f"the route's {exc}") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice: readers differ on which one wins, so what is shown
    (Python's: the last) could differ from what a proxy takes (the first)."""
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            raise ValueError(f"the key {key[:80]!r} is given twice")
        seen.add(key)
    return dict(pairs)


def host_is_wide(host: str) -> bool:
    """True for a host pattern that covers everything, a whole top-level domain or names of many owners.

    ``*``, ``*.com``, ``*.co.uk``, ``*.github.io``, ``*.amazonaws.com`` (the
    Public Suffix List names suffixes under it), ``*.169.254`` (IPv4
    addresses), ``*.nip.io`` (every address, ``hosts.WILDCARD_DNS``);
    ``*.example.com`` (one domain's subdomains) is an ordinary route.
    """
    name = host.strip().lower().rstrip(".")
    if "*" not in name:
        return False
    return not (name.startswith("*.") and "*" not in name[2:] and not _numeric_top(name)
                and shipped().why_shared(name[2:]) is None and wildcard_dns_within(name) is None)


def _numeric_top(name: str) -> bool:
    """True for a name whose last label is all digits: no top-level domain is, so its names are IPv4 addresses."""
    return name.rsplit(".", 1)[-1].isdecimal() and name.rsplit(".", 1)[-1].isascii()


def _what_wildcard_covers(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    if name in ("*", "*."):
        return "every host"
    if name.startswith("*.") and _numeric_top(name):
        return f"IP addresses, not names (every IPv4 address ending .{name[2:]})"
    if name.startswith("*.") and wildcard_dns_within(name) is not None:
        return (f"every address: {wildcard_dns_within(name)} is a wildcard DNS service, which answers each name "
                "with the address it spells")
    if name.startswith("*.") and "*" not in name[2:]:
        why = shipped().why_shared(name[2:])
        if why is not None:
            return f"every name under .{name[2:]}, {why}"
    return "more than one domain"


def decoded_escapes(text: str) -> str:
    """``text`` with the escapes a YAML or JSON reader decodes in a quoted string replaced by their characters."""
    def one(match: re.Match[str]) -> str:
        code = match.group(1) or match.group(2) or match.group(3)
        return chr(int(code, 16)) if code and int(code, 16) < 0x110000 else "/" if match.group(4) else match.group(0)
    return _ESCAPE_RE.sub(one, text)


def line_widening(text: str) -> list[str]:
    """Why one routes-file line widens access (empty: nothing seen), read as written and with escapes decoded."""
    if "*" not in text and "/" not in text and "\\" not in text:
        return []  # every reason needs a '*', a '/' or an escape that spells one: most lines are read no further
    reasons = _form_widening(text)
    decoded = decoded_escapes(text)
    if decoded != text:
        hidden = [reason for reason in _form_widening(decoded) if reason not in reasons]
        if hidden:
            shown = decoded.strip()
            reasons += [*hidden, f"(read with its escapes decoded: {shown[:80]!r}{'...' if len(shown) > 80 else ''})"]
    return reasons


def _form_widening(text: str) -> list[str]:
    reasons = []
    hosts = [match.group(1) for match in _HOST_VALUE_RE.finditer(text)]
    hosts += [match.group(0) for match in _STAR_TOKEN_RE.finditer(text) if match.group(0) not in hosts]
    for host in hosts:
        if not host_is_wide(host):
            continue
        if re.fullmatch(r"\*[A-Za-z0-9_-][^.]*", host):
            reasons.append(f"{host!r} is a YAML alias (it repeats a value set elsewhere in the file) or a wildcard")
        else:
            reasons.append(f"host {host!r} is a wildcard over {_what_wildcard_covers(host)}")
    if not reasons and _LONE_STAR_RE.search(text):
        reasons.append("a lone '*' matches everything")
    root = _ROOT_PATH_RE.search(text)  # '/;x' too: the root to a Java server, which drops a segment's parameters
    if root:
        reasons.append("a path of '/' allows every path" if not root.group(1).strip("/*") else
                       f"a path of {root.group(1)!r} is '/' to a Java server (it drops a segment's ';' "
                       "parameters): it allows every path")
    return reasons


def file_widening(text: str) -> dict[int, list[str]]:
    """Every line of a routes file that widens access: {line number (1-based): reasons}."""
    found: dict[int, list[str]] = {}
    for number, one in enumerate(text.split("\n"), start=1):
        reasons = line_widening(one)
        if reasons:
            found[number] = reasons
    return found


def widening_lines(diff: str) -> dict[int, list[str]]:
    """For a unified diff, the added lines that widen access: {index of the line in the diff: reasons}."""
    found: dict[int, list[str]] = {}
    for index, text in enumerate(diff.split("\n")):
        # Only the diff's own two header lines are "--- "/"+++ " headers: an added file line that starts
        # with "++" is still an added line (a YAML flow sequence can go on in one: '++"x", {host: "*"}]').
        if text.startswith("+") and not is_diff_header(diff, index):
            reasons = line_widening(text[1:])
            if reasons:
                found[index] = reasons
    return found


def is_diff_header(diff: str, index: int) -> bool:
    """True for line ``index`` of a one-file unified diff when it is the ``---``/``+++`` header, not file text.

    ``text.diffs.render_diff`` writes the header as the first two lines, and only there.
    """
    return index < 2 and diff.startswith("--- ") and diff.split("\n", 2)[index].startswith(("--- ", "+++ "))


def validate_routes_text(text: str) -> None:
    """Refuse a routes file a terminal could not show as it is: control, bidi or invisible characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("final_file", "a routes file must be UTF-8 text") from None
    for line_number, column, char in unsafe_characters(text):
        # A carriage return is most often an editor's CRLF line end, not a hidden character: say how to drop it.
        hint = " (a CRLF or CR line end: save the file with LF line ends)" if char == "\r" else ""
        raise ValidationError("final_file", f"line {line_number} column {column} holds {describe_char(char)}: a "
                              f"routes file may not contain control, bidirectional or invisible characters{hint}")


def validate_final_file(tool: str, final_file: str) -> None:
    """Raise ``ValidationError`` unless ``final_file`` is a file ``tool``'s consumer can take as it is."""
    if tool == TOOL_EGRESS_ALLOW:
        parse_route(final_file)
    elif tool == TOOL_EGRESS_BLOCK:
        validate_routes_text(final_file)
