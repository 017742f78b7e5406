"""The methods a server may read a request as: its own, and any a method-override header or parameter names.

Many servers read a request as another method when it says so: Express's
``method-override`` middleware and Laravel a POST carrying
``X-HTTP-Method-Override: DELETE``, Google's APIs the same header,
Microsoft's OData ``X-HTTP-Method``, Symfony a ``_method`` query parameter.
An approval of ``POST`` on ``/repos/acme/web`` would then let the agent
delete there, which is not what the operator was shown. So a request that
names another method in one of these ways is let through on a route grant
only where the grant covers every method it names too
(``EgressGrants.allows_route``).

Read as the servers read them, and more widely where they differ: header
names without regard to case, any other character than a letter or digit
read as ``-`` (a CGI or WSGI server folds ``_`` and ``-`` into one, and PHP
turns a ``.`` or a space in a name into ``_``: ``X.HTTP.Method.Override``
is Symfony's override header under ``php -S``); each comma-separated item of the value, as written and
in upper case (Express upper-cases it; a proxy joins repeated headers with
commas); a ``_method`` query parameter under ``&`` or ``;``, its name and
value percent-decoded, also as a list (``_method[]=DELETE``, which Express
reads as one and method-override takes the first item of) and in brackets
(Express's qs reads ``[_method]=DELETE`` as ``_method``: a name that starts
with a bracket group is that group's content), and as PHP registers it
for Symfony's ``_method`` (``.`` and space read as ``_``, leading spaces
dropped, the name ended at a NUL: ``?.method=DELETE``). A form body's ``_method`` (Rails, Laravel, Spring)
is not read: the proxy's helpers see no body, so a grant of ``POST`` to such
a server is a grant of what it reads a form's POST as (docs/decisions.md,
"The agent is the adversary").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

# The override headers' names, lower case, '-' for '_': Express (method-override) and Laravel, Google's APIs,
# ASP.NET Core; Microsoft's OData and SharePoint; and the older spelling some frameworks still read.
OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
# No client names more methods than a few; past this many a request is refused (the check reads the path against
# every grant once per method: 8,000 of them on a 32 KB path took the proxy 19 s per request).
MAX_METHODS_READ = 16
OVERRIDE_PARAMETER = "_method"  # Symfony's and Express's query parameter (also Rails' and Laravel's form field)

_QUERY_ITEM_RE = re.compile(r"[&;]")
_BRACKET_RE = re.compile(r"[\[\]]")
_HEADER_FOLD_RE = re.compile(r"[^0-9a-z]")  # to '-': CGI's '_', PHP's '.' and ' ' (all '_' in HTTP_X_...)
_PHP_FOLD_RE = re.compile(r"[. ]")  # PHP registers a variable with each '.' or ' ' in its name as '_'

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def methods_read_as(method: str, path: str, headers: Headers | None = None) -> list[str] | None:
    """``method``, then each method ``headers`` (a mapping, or name-value pairs as a proxy keeps repeated
    headers) or ``path``'s query ask a server to read the request as, each once; None when ``headers`` is not
    text in one of those shapes, or when they name more than ``MAX_METHODS_READ`` (fail closed: the caller lets
    nothing through)."""
    asked = [method]
    pairs = _pairs(headers)
    if pairs is None:
        return None
    for name, value in pairs:
        # Ends passed over too: PHP's server may read 'X-HTTP-Method-Override[]' as an array of the header.
        if _HEADER_FOLD_RE.sub("-", name.strip().lower()).strip("-") in OVERRIDE_HEADERS:
            asked += _named(value)
    query = path.partition("?")[2]
    for item in _QUERY_ITEM_RE.split(query) if query else ():
        name, _, value = item.partition("=")
        if _parameter(name) == OVERRIDE_PARAMETER:
            asked += _named(unquote_plus(value, errors="replace"))
    methods = list(dict.fromkeys(asked))
    return methods if len(methods) <= MAX_METHODS_READ else None


def _parameter(name: str) -> str:
    """The query parameter a server reads ``name`` (as written, before its ``=``) as, or more widely.

    Percent-decoded, then up to its first bracket: Express's qs reads ``_method[]=DELETE`` as a list, whose
    first item method-override takes, and a name that starts with a bracket group as that group's content
    (``[_method]=DELETE`` is ``_method``, and so is ``[_method]x]``: qs cuts a key at ``]=`` and drops what
    follows its groups), so one leading ``[`` is passed over first. And as PHP registers ``$_GET`` (Symfony's
    query): up to a NUL byte (a C string's end), leading spaces dropped, ``.`` and space as ``_``
    (``.method`` and ``+.method`` are ``_method``)."""
    name = unquote_plus(name, errors="replace").partition("\x00")[0].strip().lower()
    name = _BRACKET_RE.split(name.removeprefix("["), maxsplit=1)[0].strip()
    return _PHP_FOLD_RE.sub("_", name)


def _pairs(headers: Headers | None) -> list[tuple[str, str]] | None:
    """``headers`` as name-value pairs of text (a pair may be a list, as JSON gives it), or None when they are
    something else. Anything with an ``items()`` is read through it: ``http.server``'s headers (an
    ``email.message.Message``, every repeated header one pair) iterate over their names alone."""
    if headers is None:
        return []
    if isinstance(headers, str | bytes):
        return None
    try:
        items = getattr(headers, "items", None)
        pairs = list(items() if callable(items) else headers)
    except Exception:  # whatever a caller's object raises as it is read, it is no headers: refuse
        return None
    if all(isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)
           for pair in pairs):
        return [(name, value) for name, value in pairs]
    return None


def _named(value: str) -> list[str]:
    """The methods an override's value names: each comma-separated item as written and upper-cased; an empty
    value names none (a server leaves the method as it was)."""
    named = []
    for item in value.split(","):
        item = item.strip()
        if item:
            named += [item, item.upper()]
    return named
