"""What approving a proposal grants, in a few lines, and why to look twice: what every screen shows first.

An operator decides on what an approval grants, not on what the agent says
it is for. ``approval_of`` reads it from the proposal's payload alone (the
justification never), the way the grant itself is built
(``policy.subjects``):

- ``egress-allow``: the route's host, methods and path prefixes, on every
  port (a route names none);
- ``egress-block``: the routes file, with the hosts its new lines name and
  the ones its dropped lines named;
- ``gitleaks-allow``: each finding's rule, file and line;
- ``egress-token-allow``: the token's detector, host and method.

With it come warnings, each of a kind a list can show as a badge:
``widens`` (a wildcard over names of many owners, judged against the Public
Suffix List, ``*``, a path of ``/``: ``policy.routes``), ``look-alike`` (a
host with characters that are not what they look like: ``policy.hosts``),
``internal`` (a host that reaches inside, where no public host is: this
machine, the host machine, a cloud's metadata service, a private network:
``policy.reach``), ``unreadable`` (a payload its tool's subject cannot be
read from: approving answers the waiting caller and grants nothing that
lasts) and ``drifted`` (an ``egress-block`` filed against a current routes
file other than the last one approved for its bottle: its new and dropped
lines are read against the approved one, ``audit.routes_approved``) and
``rejected`` (a routes file naming a host a standing rejection in force for
its bottle rejects: a rule decides ``egress-allow`` proposals only, so
approving the file grants the host all the same; the rejections are passed
in, ``Rejection``). ``widens``, ``look-alike``, ``internal`` and ``rejected``
are asked for a second time.
Hosts are written with ``hosts.shown_host``: a look-alike never reads as
the host it imitates. The TUI, the command line and the dashboard all show
this, before anything the agent wrote.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot_bottle.errors import ValidationError
from bot_bottle.policy.host_text import (
    binary_hosts,
    hosts_in_text,
    hosts_of,
    hosts_read,
    listed_addresses,
    may_hold_a_look_alike,
    names_every_host,
    read_across_lines,
)
from bot_bottle.policy.hosts import (
    asked_as,
    host_problems,
    ipv4_readings,
    shown_host,
)
from bot_bottle.policy.reach import inside_worst_first
from bot_bottle.policy.routes import file_widening, parse_route
from bot_bottle.policy.subjects import describe_subject, rule_overlaps
from bot_bottle.records import (
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
    TOOL_EGRESS_TOKEN_ALLOW,
    TOOL_GITLEAKS_ALLOW,
    sha256_text,
)

WIDENS = "widens"
LOOK_ALIKE = "look-alike"
INTERNAL = "internal"
UNREADABLE = "unreadable"
DRIFTED = "drifted"
REJECTED = "rejected"
KINDS = (WIDENS, LOOK_ALIKE, INTERNAL, REJECTED, UNREADABLE, DRIFTED)
# Kinds an approval is asked for a second time for: it reaches more, or other hosts, than it reads as, or inside,
# or it grants what the operator rejected from now on.
CONFIRM_KINDS = frozenset({WIDENS, LOOK_ALIKE, INTERNAL, REJECTED})
# What every route grants besides its summary: the proxy matches a request's host without its port.
ANY_PORT = "on every port (a route names no port)"
# A routes file can name thousands of hosts and lines: the first ones are listed, and how many more.
MAX_LISTED = 12


@dataclass(frozen=True)
class Caution:
    """One reason to look twice at an approval: its kind (a badge) and what it says."""

    kind: str
    text: str


@dataclass(frozen=True)
class Approval:
    """What approving a proposal grants (one item a line) and its cautions, first ones first."""

    tool: str
    grants: tuple[str, ...]
    cautions: tuple[Caution, ...] = ()

    @property
    def summary(self) -> str:
        """One line for a list: what is granted, shortly."""
        return self.grants[0] if self.grants else "nothing"

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of its cautions, each once, in ``KINDS`` order (a list's badges)."""
        present = {caution.kind for caution in self.cautions}
        return tuple(kind for kind in KINDS if kind in present)

    @property
    def needs_confirmation(self) -> bool:
        """True when approving reaches more than it reads as, or inside: every screen asks once more, naming it."""
        return any(kind in CONFIRM_KINDS for kind in self.kinds)

    @property
    def why_asked_twice(self) -> str:
        """Why approving is asked for a second time, with the badges that ask ("" when it is not): "it reaches
        more than it reads as (widens)", "it reaches inside (internal)"."""
        kinds = [kind for kind in self.kinds if kind in CONFIRM_KINDS]
        said = ["more than it reads as"] if WIDENS in kinds or LOOK_ALIKE in kinds else []
        said += ["inside"] if INTERNAL in kinds else []
        reaches = f"it reaches {' and '.join(said)}" if said else ""
        rejected = "it grants a host a standing rejection rejects" if REJECTED in kinds else ""
        return f"{' and '.join(part for part in (reaches, rejected) if part)} ({', '.join(kinds)})" if kinds else ""

    def to_dict(self) -> dict[str, Any]:
        """As JSON for ``--json`` listings: the summary, the items and the cautions."""
        return {"summary": self.summary, "grants": list(self.grants),
                "warnings": [{"kind": caution.kind, "text": caution.text} for caution in self.cautions]}


@dataclass(frozen=True)
class Rejection:
    """A standing rejection of ``egress-allow`` in force, as a routes file is held to it: the rule's id, its
    subject and whether it is a pattern the operator typed, and its bottle (None: every bottle). Read by the
    caller, as the keeper proves rules (``audit.routes_approved``); this module only compares."""

    rule_id: str
    subject: dict[str, Any]
    pattern: bool
    bottle: str | None


# Approvals read in this process, by a digest of what they were read from: a routes file of 1 MiB takes about
# 1.3 s to read (every line's hosts, widenings, look-alikes and addresses), and the TUI and the dashboard read
# every pending proposal again at each refresh: 15 such files from one bottle held each look for 20 s.
_READ_SIZE = 2048
_read: dict[bytes, Approval] = {}
_hosts_read: dict[bytes, tuple[str, ...]] = {}  # every host a routes file names (``_file_hosts``), the same way
_rejected_read: dict[bytes, tuple[Caution, ...]] = {}  # and what the rejections passed in say of it
_read_lock = threading.Lock()


def _read_key(tool: str, payload: str, current_file: str | None) -> bytes:
    """A digest of everything ``_approval_read`` reads, each part's length first (so no two inputs share one)."""
    parts = [tool, payload, *([] if current_file is None else [current_file])]
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", errors="surrogatepass")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.digest()


def approval_of(tool: str, payload: str, current_file: str | None = None, drift: str | None = None,
                rejections: Sequence[Rejection] = (), bottle: str = "") -> Approval:
    """What approving ``payload`` (as filed, or as the operator modified it) grants, with its cautions.

    ``current_file`` is the routes file an ``egress-block`` replaces, to
    tell the hosts it adds from the ones it keeps; ``drift``, why it is not
    the one the sidecar sent (``audit.routes_approved``), the first caution; ``rejections``, the standing
    rejections in force for ``bottle``, each host the file names that one rejects a ``rejected`` caution
    (``rejected_cautions``). Never raises: a payload
    that does not read as its tool's is an ``unreadable`` caution. Every
    item and caution is ASCII (``hosts.shown_host``): the text of a parse
    error or a finding's file name quotes the payload, and a look-alike host
    quoted there must not read as the host it imitates either. Read once a
    process for the same input (an ``Approval`` is immutable): the
    long-running screens refresh without reading every payload again.
    """
    key = _read_key(tool, payload, current_file)
    with _read_lock:
        approval = _read.get(key)
    if approval is None:
        approval = _approval_read(tool, payload, current_file)
        with _read_lock:
            if len(_read) >= _READ_SIZE:
                del _read[next(iter(_read))]  # the oldest read first
            _read[key] = approval
    named = rejected_cautions(payload, bottle, rejections) if tool == TOOL_EGRESS_BLOCK and rejections else []
    if drift is None and not named:
        return approval
    return replace(approval, cautions=(*([Caution(DRIFTED, drift)] if drift is not None else []),
                                       *named, *approval.cautions))


def rejected_cautions(text: str, bottle: str, rejections: Sequence[Rejection]) -> list[Caution]:
    """A ``rejected`` caution for each host routes file ``text`` names (every line's, unchanged ones too: approving
    grants the whole file again) that one of ``rejections`` rejects for ``bottle``, as a rejection matches a route
    (``rule_overlaps``: the same host in any of its forms, a wildcard rule over it, a wildcard in the file over
    the rule's host), with the rule's short id; the first ``MAX_LISTED``, then how many more."""
    key = _read_key(TOOL_EGRESS_BLOCK, text, json.dumps([bottle, *((rule.rule_id, rule.subject, rule.pattern,
                                                                   rule.bottle) for rule in rejections)]))
    with _read_lock:
        known = _rejected_read.get(key)
    if known is not None:  # compared once a process: a rule over 40,000 hosts takes about a second
        return list(known)
    cautions = []
    for host in (*(("*",) if names_every_host(text) else ()), *_file_hosts(text)):
        asked = asked_as(host)  # "*" (every host) is named with each rejection, any other host with its first
        matched = (each for each in rejections if each.bottle in (None, bottle) and any(
            form == "*" or rule_overlaps(each.subject, each.pattern, TOOL_EGRESS_ALLOW,
                                         {"host": form, "methods": [], "paths": []}) for form in asked))
        for rule in matched if host == "*" else [next(matched, None)]:
            if rule is None:
                continue
            read = " (a wildcard over every host)" if host == "*" else "" if asked[-1] == host \
                else f" ({asked[-1]} as a client asks for it)"
            cautions.append(Caution(REJECTED, shown_host(
                f"names {host}{read}, which standing rejection {rule.rule_id[:8]} rejects for "
                f"{bottle if rule.bottle is not None else 'every bottle'}: a rule decides egress-allow "
                "proposals, so approving this grants it all the same")))
    found = tuple(_bounded(cautions))
    with _read_lock:
        if len(_rejected_read) >= _READ_SIZE:
            del _rejected_read[next(iter(_rejected_read))]
        _rejected_read[key] = found
    return list(found)


def _approval_read(tool: str, payload: str, current_file: str | None) -> Approval:
    if tool == TOOL_EGRESS_ALLOW:
        approval = _route(payload)
    elif tool == TOOL_EGRESS_BLOCK:
        approval = _routes_file(payload, current_file)
    elif tool == TOOL_GITLEAKS_ALLOW:
        approval = _findings(payload)
    elif tool == TOOL_EGRESS_TOKEN_ALLOW:
        approval = _token(payload)
    else:
        approval = Approval(tool, ("nothing this version knows of",),
                            (Caution(UNREADABLE, f"{tool!r} is no known tool"),))
    return Approval(approval.tool, tuple(shown_host(item) for item in approval.grants),
                    tuple(Caution(caution.kind, shown_host(caution.text)) for caution in approval.cautions))


def _file_hosts(text: str) -> tuple[str, ...]:
    """Every host routes file ``text`` names, each once, in order: read once a process for the same text (as
    ``approval_of`` is), the screens holding a file to the rejections at every refresh and again as it is decided."""
    key = _read_key(TOOL_EGRESS_BLOCK, text, None)
    with _read_lock:
        hosts = _hosts_read.get(key)
    if hosts is None:
        lines = text.split("\n")
        hosts = tuple(dict.fromkeys([*hosts_of(lines, {line: listed_addresses(line) for line in lines}),
                                     *read_across_lines(lines, set()), *binary_hosts(lines)]))
        with _read_lock:
            if len(_hosts_read) >= _READ_SIZE:
                del _hosts_read[next(iter(_hosts_read))]
            _hosts_read[key] = hosts
    return hosts


def asked_beyond(tool: str, confirmed: Collection[str], subject: dict[str, Any]) -> bool:
    """Whether approving ``subject`` is asked about twice (``CONFIRM_KINDS``) for a kind beyond ``confirmed``, what
    an approving pattern rule was confirmed for when it was made (``subject_kinds`` of its own subject then): a name
    under ``*.example.com`` that spells the metadata service, is a look-alike or reaches inside. The operator
    confirmed the pattern for what it showed, never that name: such a name is theirs to decide, not the rule's
    (``standing.rule_for``)."""
    return not set(subject_kinds(tool, subject)) <= set(confirmed)


def subject_approval(tool: str, subject: dict[str, Any]) -> Approval:
    """What approving a grant's or rule's ``subject`` grants, read as the proposal that asked for it: a route
    leaves out the methods and paths it does not name."""
    return approval_of(tool, json.dumps({name: item for name, item in subject.items() if item}))


def subject_kinds(tool: str, subject: dict[str, Any]) -> list[str]:
    """The kinds approving a grant's or rule's ``subject`` is asked about twice for (``CONFIRM_KINDS``), in order."""
    return [kind for kind in subject_approval(tool, subject).kinds if kind in CONFIRM_KINDS]


def subject_badges(tool: str, subject: dict[str, Any]) -> str:
    """A grant's or rule's badges, as its proposal's list row had them ("[widens,internal] "), for the listings of
    what is in force; "" when it has none. Only a route's subject is read: the others keep hashes, not hosts."""
    if tool != TOOL_EGRESS_ALLOW or not subject:
        return ""
    kinds = subject_kinds(tool, subject)
    return f"[{','.join(kinds)}] " if kinds else ""


def shown_subject(tool: str, subject: dict[str, Any]) -> str:
    """What a grant or rule in force grants, for its listing: its badges first, then ``describe_subject``."""
    return subject_badges(tool, subject) + describe_subject(tool, subject)


def _look_alikes(hosts: list[str], where: str = "") -> list[Caution]:
    cautions = []
    for host in hosts:
        for problem in host_problems(host):
            cautions.append(Caution(LOOK_ALIKE, f"{where}host {shown_host(host)} is not what it looks like: {problem}"))
    return cautions


def _inside(hosts: list[str], where: dict[str, str] | None = None, default: str = "") -> list[Caution]:
    """An internal caution for each of ``hosts`` that reaches inside (each said to be ``where`` says, else
    ``default``), the worst first: ``_bounded`` keeps the first ``MAX_LISTED``, so twelve private addresses cannot
    push the metadata service out of view."""
    return [Caution(INTERNAL, f"{(where or {}).get(host, default)}host {shown_host(host)} reaches inside: "
                    f"{'; '.join(places)}") for host, places in inside_worst_first(hosts)]


def _route(payload: str) -> Approval:
    try:
        route = parse_route(payload)
    except ValidationError as exc:
        return Approval(TOOL_EGRESS_ALLOW, ("nothing: the route does not parse",),
                        (Caution(UNREADABLE, f"not a valid route ({exc}): approving answers the caller and grants "
                                 "nothing"), *_look_alikes(hosts_in_text(payload))))
    # The summary is the route as the agent wrote it, in the words a grant of it is listed in (its methods and
    # paths in brackets, so a listing's next column cannot read as more paths); the port it leaves open is said
    # under it, where a request to the host's SSH or database port would otherwise pass for the web server the
    # operator had in mind.
    summary = describe_subject(TOOL_EGRESS_ALLOW, {"host": shown_host(route.host), "methods": list(route.methods),
                                                   "paths": list(route.paths)})
    return Approval(TOOL_EGRESS_ALLOW, (summary, ANY_PORT),
                    (*(Caution(WIDENS, reason) for reason in route.widening()), *_look_alikes([route.host]),
                     *_inside([route.host])))


def _listed(names: list[str]) -> str:
    shown = ", ".join(shown_host(name) for name in names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _routes_file(payload: str, current_file: str | None) -> Approval:
    lines = payload.split("\n")
    before = (current_file or "").split("\n") if current_file else []
    kept, gone = set(before), set(lines)
    addresses = {line: listed_addresses(line) for line in {*lines, *before}}  # each line read for them once
    added_hosts = hosts_of((line for line in lines if line not in kept), addresses)
    # What a YAML or JSON reader reads across lines: a value continued by a trailing backslash, or standing on
    # the line after its host key or in a hosts list one item a line; new where any line it is read from is.
    added_hosts += [host for host in read_across_lines(lines, kept) if host not in added_hosts]
    dropped_hosts = [host for host in hosts_of((line for line in before if line not in gone), addresses)
                     if host not in added_hosts]
    if added_hosts:
        head = f"routes file: adds {_listed(added_hosts)}"
    elif payload == (current_file or ""):
        head = "routes file: unchanged"
    else:
        head = "routes file: names no new host"
    grants = [head + (f"; drops {_listed(dropped_hosts)}" if dropped_hosts else "")]
    # Lines as an editor counts them: the empty string after a last newline is no line of the file.
    count = len(lines) - (1 if lines[-1] == "" else 0)
    grants.append(f"the whole file: {count} line(s), sha256 {sha256_text(payload)[:16]}")
    cautions = [Caution(WIDENS, f"line {number} ({'unchanged' if lines[number - 1] in kept else 'new'}) widens "
                        f"access: {'; '.join(reasons)}") for number, reasons in file_widening(payload).items()]
    for number, line in enumerate(lines, start=1):
        if may_hold_a_look_alike(line):
            cautions += _look_alikes(hosts_read(lines, number - 1), f"line {number}: ")
        # An address written in another form (010.0.0.1 is 8.0.0.1): named as the address it is.
        cautions += _look_alikes([address for address in addresses[line]
                                  if ipv4_readings(address) not in ([], [address])], f"line {number}: ")
    # An unchanged line's host too: the lines around it may have moved it (from a deny list into the routes).
    unchanged = [host for host in dict.fromkeys([*hosts_of((line for line in lines if line in kept), addresses),
                                                 *(read_across_lines(lines, set()) if kept else [])])
                 if host not in added_hosts]
    cautions += _inside([*added_hosts, *unchanged], where={host: "an unchanged line's " for host in unchanged},
                        default="a new line's ")
    return Approval(TOOL_EGRESS_BLOCK, tuple(grants), tuple(_bounded(cautions)))


def _bounded(cautions: list[Caution]) -> list[Caution]:
    """At most ``MAX_LISTED`` cautions of each kind, then one that says how many more."""
    kept: list[Caution] = []
    for kind in KINDS:
        mine = [caution for caution in cautions if caution.kind == kind]
        kept += mine[:MAX_LISTED]
        if len(mine) > MAX_LISTED:
            kept.append(Caution(kind, f"and {len(mine) - MAX_LISTED} more line(s) like these"))
    return kept


def _report(tool: str, payload: str) -> dict[str, Any] | None:
    try:
        report = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return report if isinstance(report, dict) else None


def _unreadable_report(tool: str, why: str) -> Approval:
    return Approval(tool, ("nothing: the report does not read as its tool's",),
                    (Caution(UNREADABLE, f"{why}: approving answers the caller and grants nothing that lasts"),))


def _findings(payload: str) -> Approval:
    report = _report(TOOL_GITLEAKS_ALLOW, payload)
    findings = report.get("findings") if report is not None else None
    if not isinstance(findings, list) or not findings or not all(isinstance(f, dict) for f in findings):
        return _unreadable_report(TOOL_GITLEAKS_ALLOW, "not a gitleaks report with findings")
    items = [f"{finding.get('rule', '?')} in {finding.get('file', '?')}:{finding.get('line', '?')}"
             + (f" (commit {str(finding['commit'])[:8]})" if finding.get("commit") else "") for finding in findings]
    count = len(items)
    head = f"{count} finding{'s' if count != 1 else ''} let into the repository: {items[0]}" + (
        f" and {count - 1} more" if count > 1 else "")
    return Approval(TOOL_GITLEAKS_ALLOW, (head, *items[1:MAX_LISTED + 1]))


def _token(payload: str) -> Approval:
    report = _report(TOOL_EGRESS_TOKEN_ALLOW, payload)
    fields = {name: report.get(name) for name in ("host", "method", "detector")} if report is not None else {}
    if not fields or not all(isinstance(value, str) and value for value in fields.values()):
        return _unreadable_report(TOOL_EGRESS_TOKEN_ALLOW, "not a DLP report with host, method and detector")
    host = str(fields["host"])
    return Approval(TOOL_EGRESS_TOKEN_ALLOW,
                    (f"a {fields['detector']} token, sent to {shown_host(host)} ({fields['method']}; every path)",),
                    (*_look_alikes([host]), *_inside([host])))
