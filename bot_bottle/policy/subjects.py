"""What an approval grants, as a subject in canonical form, and what a subject covers.

A grant and a standing rule hold a subject: the exact thing the operator
approved, built from what the operator was shown (the proposal's payload, or
the operator's own modification), never from the agent's words around it:

- ``egress-allow``: ``{"host", "methods", "paths"}``: the route's host as
  shown (a ``*.`` pattern only where the route had one), its methods and
  path prefixes (empty: every one).
- ``egress-block``: ``{"file_sha256"}``: the routes file, exactly.
- ``egress-token-allow``: ``{"host", "method", "detector", "fingerprint"}``:
  one token (by its fingerprint) to one host with one method.
- ``gitleaks-allow``: ``{"findings"}``: the fingerprints of the findings the
  push carried (commit, file, line and rule: a commit fixes the content).

The token's fingerprint is a slow, salted hash (scrypt, salted with the
bottle, host and method): it is stored, so it must not give the token back
to whoever reads the database, and every sidecar of the bottle must compute
the same one after a restart, so it cannot use a key one process holds.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
from typing import Any
from urllib.parse import unquote

from bot_bottle.errors import ValidationError
from bot_bottle.policy.hosts import ANY_ADDRESS, ipv4_readings, spelled_addresses
from bot_bottle.policy.routes import parse_route
from bot_bottle.records import (
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    canonical_json,
    sha256_text,
)

FINGERPRINT_HEX = 64
# scrypt's cost: about 50 ms and 16 MiB a token on a laptop, paid once per token by a sidecar (it caches).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def subject_of(tool: str, document: str) -> dict[str, Any]:
    """The subject an approval of ``document`` (a payload, or the operator's final file) grants.

    ``ValidationError`` for a document the tool's subject cannot be read from
    (nothing is granted then).
    """
    if tool == TOOL_EGRESS_ALLOW:
        route = parse_route(document)
        return {"host": route.host, "methods": list(route.methods), "paths": list(route.paths)}
    if tool == TOOL_EGRESS_BLOCK:
        return {"file_sha256": sha256_text(document)}
    report = _report(tool, document)
    if tool == TOOL_EGRESS_TOKEN_ALLOW:
        fields = {name: report.get(name) for name in ("host", "method", "detector", "fingerprint")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise ValidationError("payload", "an egress-token-allow report needs host, method, detector and "
                                  "fingerprint")
        fields["host"] = normal_host(str(fields["host"]))
        return fields
    if tool == TOOL_GITLEAKS_ALLOW:
        findings = report.get("findings")
        if not isinstance(findings, list) or not findings or not all(isinstance(f, dict) for f in findings):
            raise ValidationError("payload", "a gitleaks-allow report needs its findings")
        return {"findings": sorted({finding_fingerprint(f) for f in findings})}
    raise ValidationError("tool", f"{tool!r} grants nothing")


def _report(tool: str, document: str) -> dict[str, Any]:
    try:
        report = json.loads(document)
    except (ValueError, RecursionError):  # nested past Python's recursion limit is no report either
        raise ValidationError("payload", f"{tool}'s report must be JSON") from None
    if not isinstance(report, dict):
        raise ValidationError("payload", f"{tool}'s report must be a JSON object")
    return report


def subject_sha256(tool: str, subject: dict[str, Any]) -> str:
    """The digest a grant's or a rule's subject is looked up by: over the tool and the canonical subject."""
    return sha256_text(canonical_json({"subject": subject, "tool": tool}))


def finding_fingerprint(finding: dict[str, Any]) -> str:
    """One gitleaks finding, by what fixes it: its commit, file, line and rule (a commit fixes the content)."""
    key = [str(finding.get(name, "")) for name in ("commit", "file", "line", "rule")]
    return sha256_text(json.dumps(key))


def granted_findings(subjects: list[str]) -> set[str]:
    """The fingerprints of the findings the live ``gitleaks-allow`` grants with these (canonical JSON) subjects
    cover; a subject that is not one is skipped (it covers nothing)."""
    covered: set[str] = set()
    for text in subjects:
        try:
            subject = json.loads(text)
        except ValueError:
            continue
        findings = subject.get("findings") if isinstance(subject, dict) else None
        if isinstance(findings, list):
            covered.update(item for item in findings if isinstance(item, str))
    return covered


def token_fingerprint(bottle: str, host: str, method: str, token: str) -> str:
    """The stored fingerprint of ``token`` sent to ``host`` with ``method`` by ``bottle``: slow, salted, hex."""
    salt = hashlib.sha256(json.dumps(["bot-bottle token", bottle, normal_host(host), method]).encode()).digest()
    return hashlib.scrypt(token.encode("utf-8", errors="surrogatepass"), salt=salt, **_SCRYPT).hex()


def normal_host(host: str) -> str:
    """A host as compared: ASCII letters folded (only those: the Kelvin sign is not ``k``), one trailing dot off."""
    folded = host.translate(_ASCII_LOWER)
    return folded[:-1] if folded.endswith(".") else folded


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def host_covers(granted: str, host: str) -> bool:
    """Whether a granted host (``*.example.com`` covers every name under example.com, not itself) covers ``host``.

    A wildcard covers names, never an IP address: ``*.169.254`` does not
    cover 169.254.169.254 (nor ``10.169.254``, which a client reads as
    10.169.0.254).
    """
    name = normal_host(host)
    if granted.startswith("*."):
        return name.endswith(granted[1:]) and len(name) > len(granted) - 1 and not ipv4_readings(name)
    return name == granted


def route_covers(subject: dict[str, Any], host: str, method: str, path: str) -> bool:
    """Whether an ``egress-allow`` subject covers a request to ``host`` (no port) with ``method`` for ``path``.

    A path prefix covers only a plain path (``path_is_plain``): ``/3/../admin``
    starts with ``/3/`` as text, but the server serves ``/admin``; and only
    what is under it (``prefix_covers``): ``/repos/acme/web`` is not
    ``/repos/acme/website``.
    """
    methods = subject.get("methods") or []
    paths = subject.get("paths") or []
    return (host_covers(str(subject.get("host", "")), host)
            and (not methods or method in methods)
            and (not paths or (path_is_plain(path) and any(prefix_covers(prefix, path) for prefix in paths))))


def prefix_covers(prefix: str, path: str) -> bool:
    """Whether the path prefix ``prefix``, as the operator was shown it, covers the request path ``path``: the
    prefix itself, and what is under it. A prefix that does not end a segment (``/repos/acme/web``) ends where
    the path's segment does: ``/repos/acme/web/pulls`` and ``/repos/acme/web?x=1`` are under it,
    ``/repos/acme/website`` and ``/repos/acme/web-secrets`` (other repositories) are not. A prefix ending in
    ``/`` or holding a query (``?``) is matched as written."""
    if not path.startswith(prefix):
        return False
    return len(path) == len(prefix) or prefix.endswith("/") or "?" in prefix or path[len(prefix)] in "/?"


_MAX_DECODES = 4  # layers of percent-encoding undone looking for a dot segment; a path with more is not plain
_UNPLAIN_RE = re.compile(r"[\\\x00-\x1f\x7f]")  # a backslash (a separator to some servers) or a control character
_DOTS = frozenset({".", ".."})


def path_is_plain(path: str) -> bool:
    """Whether a request path (its query aside) names the same place to every reader.

    Not plain: a raw ``#`` before the query (a fragment, which no client
    sends: a server that ends the path there reads one path, uvicorn, which
    keeps it, another: ``/3/x#/../../admin`` is ``/admin`` to it); a dot
    segment (``.`` or ``..``, which a server removes with the segment
    before it), spelt raw, percent-encoded (once or several
    times over: ``%2e%2e``, ``%252e``) or with parameters (``..;x``, a
    Java server's ``..``); an encoded ``/``; a backslash or a control
    character, raw or encoded. Readers differ on each, so a path prefix the
    operator approved is held only to a path none of them can read as
    another.
    """
    part = path.split("?", 1)[0]
    if "#" in part:  # no client sends a fragment; some servers (uvicorn's h11) keep it, and read past it
        return False
    slashes = part.count("/")
    for _ in range(_MAX_DECODES):
        if _UNPLAIN_RE.search(part) or part.count("/") != slashes:
            return False
        if any(segment.split(";", 1)[0] in _DOTS for segment in part.split("/")):
            return False
        decoded = unquote(part, encoding="latin-1")
        if decoded == part:
            return True
        part = decoded
    return False


def token_covers(subject: dict[str, Any], host: str, method: str, fingerprint: str) -> bool:
    """Whether an ``egress-token-allow`` subject covers this token (by fingerprint) to ``host`` with ``method``."""
    return (subject.get("fingerprint") == fingerprint and subject.get("method") == method
            and subject.get("host") == normal_host(host))


def rule_matches(rule_subject: dict[str, Any], pattern: bool, tool: str, subject: dict[str, Any], *,
                 rejects: bool = False) -> bool:
    """Whether a rule's subject matches a proposal's subject.

    An approving rule matches exactly, unless the operator typed a pattern
    (``pattern``): then an ``egress-allow`` rule's wildcard host covers the
    proposal's host, and the proposal asks for no more methods and paths than
    the rule names. A rejecting rule (``rejects``) matches every proposal that
    asks for any of what it rejects (``rule_overlaps``): a proposal that asks
    for more, or for part of it, is rejected too, never left to an approving
    rule that covers it.
    """
    if rejects:
        return rule_overlaps(rule_subject, pattern, tool, subject)
    if not pattern:
        return rule_subject == subject
    if tool != TOOL_EGRESS_ALLOW:
        return False
    host = str(subject.get("host", ""))
    if "*" in host and host != rule_subject.get("host"):
        return False  # an agent's own wildcard is matched only as written
    rule_methods, rule_paths = rule_subject.get("methods") or [], rule_subject.get("paths") or []
    methods, paths = subject.get("methods") or [], subject.get("paths") or []
    return (host_covers(str(rule_subject.get("host", "")), host) or host == rule_subject.get("host")) \
        and (not rule_methods or (bool(methods) and set(methods) <= set(rule_methods))) \
        and (not rule_paths or (bool(paths) and all(path_is_plain(p) and any(prefix_covers(r, p) for r in rule_paths)
                                                    for p in paths)))


def rule_overlaps(rule_subject: dict[str, Any], pattern: bool, tool: str, subject: dict[str, Any]) -> bool:
    """Whether approving ``subject`` would grant any of what a rejecting rule's subject names.

    ``egress-allow``: the hosts overlap (the same, an IPv4 address in any of
    its forms the same as in another; the proposal's host, a
    wildcard, covers the rule's; or, in a pattern the operator typed, the
    rule's covers the proposal's), and so do the methods (either names every
    one, or they share one, HEAD and GET as one) and the paths (either names
    every one, or one prefix starts with another, compared with
    percent-encoding undone, segment parameters (``;x``) dropped, runs of
    slashes as one and ASCII case folded, as some servers read them). ``gitleaks-allow``: they
    share a finding. ``egress-token-allow``: the same token to the same host with the same method,
    whichever detector matched it (``token_covers`` does not look at it). Any other tool: the same subject.
    """
    if tool == TOOL_GITLEAKS_ALLOW:
        return bool(set(_strings(rule_subject.get("findings"))) & set(_strings(subject.get("findings"))))
    if tool == TOOL_EGRESS_TOKEN_ALLOW:
        return _token_key(rule_subject) is not None and _token_key(rule_subject) == _token_key(subject)
    if tool != TOOL_EGRESS_ALLOW:
        return rule_subject == subject
    rule_host, host = str(rule_subject.get("host", "")), str(subject.get("host", ""))
    keys, rule_keys = _host_keys(host), _host_keys(rule_host) - {ANY_ADDRESS}
    hosts = (bool(keys & rule_keys) or host_covers(host, rule_host) or (pattern and host_covers(rule_host, host))
             or (ANY_ADDRESS in keys and any(ipv4_readings(key) for key in rule_keys)))
    rule_methods, methods = _method_keys(rule_subject.get("methods")), _method_keys(subject.get("methods"))
    rule_paths = [_path_key(path) for path in _strings(rule_subject.get("paths"))]
    paths = [_path_key(path) for path in _strings(subject.get("paths"))]
    return (hosts and (not rule_methods or not methods or bool(rule_methods & methods))
            and (not rule_paths or not paths or any(one.startswith(other) or other.startswith(one)
                                                    for one in paths for other in rule_paths)))


def _token_key(subject: dict[str, Any]) -> tuple[str, str, str] | None:
    """A token's subject as a rejection compares it: what ``token_covers`` lets through by (the token's
    fingerprint, the host, the method), not the detector that happened to match it; None for no token."""
    fields = [subject.get(name) for name in ("fingerprint", "host", "method")]
    if not all(isinstance(value, str) and value for value in fields):
        return None
    fingerprint, host, method = (str(value) for value in fields)
    return fingerprint, normal_host(host), method


@functools.lru_cache(maxsize=1024)  # a routes file's hosts are each compared with every rejection in turn
def _host_keys(host: str) -> frozenset[str]:
    """A host as a rejection compares it: an IPv4 address in any form as each dotted decimal a client may read
    it as (``2852039166`` is 169.254.169.254; ``010.0.0.1`` is 8.0.0.1 and 10.0.0.1), any other name as
    ``normal_host`` and each address it spells (``hosts.spelled_addresses``: ``169.254.169.254.nip.io``,
    ``localtest.me``; ``ANY_ADDRESS`` for ``*.nip.io``, which a rejection of any address rejects): a rejection
    of the address rejects the name, and the other way round. Any loopback or unspecified address also as
    ``THIS_MACHINE``."""
    keys = set(ipv4_readings(host)) or {normal_host(host), *spelled_addresses(host)}
    return frozenset(keys | {THIS_MACHINE} if any(_is_this_machine(key) for key in keys) else keys)


# Every address that is the machine the client runs on, as a rejection compares it: a rejection of 127.0.0.1
# is one of 127.0.0.2, 0.0.0.0 (Linux connects it to this machine) and ::1 (which no rule can name: a host
# has no colon), and the other way round.
THIS_MACHINE = "this machine"


def _is_this_machine(key: str) -> bool:
    try:
        address = ipaddress.ip_address(key)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _method_keys(value: object) -> set[str]:
    """Methods as a rejection compares them: HEAD and GET as one (a server answers HEAD with its GET handler)."""
    methods = set(_strings(value))
    return methods | {"GET", "HEAD"} if methods & {"GET", "HEAD"} else methods


_PARAMS_RE = re.compile(r";[^/]*")  # a segment's parameters ('/admin;x/' is '/admin/' to a Java server)
_SLASHES_RE = re.compile(r"/{2,}")  # a run of slashes ('//admin/' is '/admin/' to nginx, which merges them)


def _path_key(path: str) -> str:
    """A path prefix as a rejection compares it: percent-encoding undone (as often as ``path_is_plain`` does),
    each segment's parameters dropped, each run of slashes one, ASCII letters folded."""
    for _ in range(_MAX_DECODES):
        decoded = unquote(path, encoding="latin-1")
        if decoded == path:
            break
        path = decoded
    return _SLASHES_RE.sub("/", _PARAMS_RE.sub("", path)).translate(_ASCII_LOWER)


def _words(separator: str, value: object) -> str:
    return separator.join(map(str, value)) if isinstance(value, list) else str(value) if value else ""


def describe_subject(tool: str, subject: dict[str, Any]) -> str:
    """One line saying what a subject grants, for listings (the caller sanitizes it for a terminal)."""
    if not subject:  # bot-bottle writes no empty subject: a row read as {} (Grant.subject_value) grants nothing
        return "nothing: its subject is unreadable (not what bot-bottle writes)"
    if tool == TOOL_EGRESS_ALLOW:
        methods = _words(",", subject.get("methods")) or "any method"  # a row a sidecar wrote: [5], null, "x"
        paths = _words(" ", subject.get("paths")) or "every path"
        return f"{subject.get('host')} ({methods}; {paths})"
    if tool == TOOL_EGRESS_BLOCK:
        return f"routes file sha256 {str(subject.get('file_sha256', ''))[:12]}"
    if tool == TOOL_EGRESS_TOKEN_ALLOW:
        return (f"token {str(subject.get('fingerprint', ''))[:12]} ({subject.get('detector')}) to "
                f"{subject.get('method')} {subject.get('host')}")
    if tool == TOOL_GITLEAKS_ALLOW:
        count = len(subject.get("findings") or [])
        return f"{count} gitleaks finding{'s' if count != 1 else ''} marked allowed"
    return canonical_json(subject)
