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

import contextlib
import encodings.idna
import functools
import ipaddress
import re
import unicodedata

from bot_bottle.text.terminal import describe_char, escape_char

# What a host is written with when it is what it looks like (a "*." pattern included).
_PLAIN_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*")
# Characters IDNA (and so browsers) take as a label separator, or that look like one.
DOT_LIKE = "\u2024\uff0e\u3002\uff61\ufe52"
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


_IPV4_PART_RE = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
MAX_HOST_CHARS = 253  # DNS's limit on a whole name
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_DECIMAL_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def ipv4_reading(host: str) -> str | None:
    """The IPv4 address a client reads ``host`` as (``inet_aton``'s rules, which ``getaddrinfo`` and curl follow),
    in dotted decimal; None for a name that is no address.

    One to four parts, each decimal, ``0x`` hex or, with a leading zero,
    octal, the last filling the bytes left: ``2852039166``, ``0xa9fea9fe``,
    ``169.254.43518`` and ``0251.0376.0251.0376`` are all 169.254.169.254,
    and ``010.0.0.1`` is 8.0.0.1.
    """
    name = host[:-1] if host.endswith(".") else host
    if _DOTTED_DECIMAL_RE.fullmatch(name):
        return name  # the common case, read at once
    parts = name.split(".")
    if len(name) > MAX_HOST_CHARS or not 1 <= len(parts) <= 4 \
            or not all(_IPV4_PART_RE.fullmatch(part) for part in parts):
        return None
    return _address([int(part[2:], 16) if part[:2].lower() == "0x" else int(part, 8) if part.startswith("0")
                     else int(part) for part in parts])


def ipv4_readings(host: str) -> list[str]:
    """Every IPv4 address a client may read ``host`` as: ``ipv4_reading``'s and, where a part has a leading 0,
    the one a client that reads it as decimal connects to (Java's ``InetAddress``: ``010.0.0.1`` is 10.0.0.1
    there, 8.0.0.1 to glibc and curl, and ``08.1.1.1``, no address to them, is 8.1.1.1)."""
    found = [address for address in (ipv4_reading(host), _decimal_reading(host)) if address is not None]
    return found[:1] if len(found) == 2 and found[0] == found[1] else found


def _decimal_reading(host: str) -> str | None:
    name = host[:-1] if host.endswith(".") else host
    parts = name.split(".")
    if len(name) > MAX_HOST_CHARS or not 1 <= len(parts) <= 4 \
            or not all(part.isascii() and part.isdigit() for part in parts) \
            or not any(len(part) > 1 and part.startswith("0") for part in parts):
        return None
    return _address([int(part) for part in parts])


def _address(values: list[int]) -> str | None:
    """The dotted decimal of inet_aton's parts (the last fills the bytes left), or None past their bounds."""
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ".".join(str((number >> shift) & 255) for shift in (24, 16, 8, 0))


# Wildcard DNS services: each name under them is answered with the address it spells (10.0.0.1.nip.io,
# 10-0-0-1.sslip.io, app-0a000001.nip.io), so a route to one reaches whatever address the agent writes.
# Kubernetes' cluster DNS does the same for pods (CoreDNS's default "pods insecure": 169-254-169-254.default
# .pod.cluster.local is 169.254.169.254, whether or not a pod has that address).
# DNS rebinding services answer with one address, then another: rbndr.us with two hex ones
# (a9fea9fe.08080808.rbndr.us), 1u.ms with dotted ones (make-8.8.8.8-rebind-169.254.169.254-rr.1u.ms).
WILDCARD_DNS = ("nip.io", "sslip.io", "xip.io", "traefik.me", "backname.io", "pod.cluster.local", "rbndr.us",
                "1u.ms", "local-ip.co")
# Names public DNS answers, with every name under them, with the loopback address (RFC 6761's localhost, and
# services kept for local development).
LOOPBACK_NAMES = ("localhost", "localtest.me", "lvh.me", "vcap.me", "localho.st", "local.gd", "localhost.direct",
                  "lacolhost.com")
# Names that resolve to an address of their own where a sidecar runs: a container's or a distribution's
# /etc/hosts (Docker writes ip6-localhost and ip6-loopback into every container's), and the cloud's metadata
# service by name (GCE's resolver answers metadata.google.internal and metadata.goog, and metadata through its
# search domain; EC2's instance-data; IBM Cloud's api.metadata.cloud.ibm.com; Tencent Cloud's).
NAMED_ADDRESSES = {"localhost.localdomain": "127.0.0.1", "localhost4": "127.0.0.1",
                   "localhost4.localdomain4": "127.0.0.1", "localhost6": "::1", "localhost6.localdomain6": "::1",
                   "ip6-localhost": "::1", "ip6-loopback": "::1", "metadata.google.internal": "169.254.169.254",
                   "metadata": "169.254.169.254", "instance-data": "169.254.169.254",
                   "instance-data.ec2.internal": "169.254.169.254", "metadata.goog": "169.254.169.254",
                   "api.metadata.cloud.ibm.com": "169.254.169.254", "metadata.tencentyun.com": "169.254.0.23"}
# Names a container reaches the machine it runs on by: bot-bottle's docker backend maps host.docker.internal
# into each container (the relay listens there), Docker Desktop forwards it to the host's loopback, podman has
# host.containers.internal. As this machine, a rejection of 127.0.0.1 is one of them.
HOST_MACHINE_NAMES = ("host.docker.internal", "gateway.docker.internal", "host.containers.internal",
                      "docker.for.mac.localhost", "docker.for.mac.host.internal", "host.lima.internal")
NAMED_ADDRESSES.update(dict.fromkeys(HOST_MACHINE_NAMES, "127.0.0.1"))
# Those of them a routes file may name without a dot (host_text.hosts_in_text reads them as hosts too).
DOTLESS_NAMES = frozenset(name for name in (*LOOPBACK_NAMES, *NAMED_ADDRESSES) if "." not in name)
ANY_ADDRESS = "any address"  # spelled_addresses' answer for a name under WILDCARD_DNS that may spell any one
# Four numbers in a row between dots or dashes, mixed as they may be (sslip.io and nip.io read [.-] between
# them and either around them), each window found, overlapping ones too (1-2-3-4-5 spells 1.2.3.4 and 2.3.4.5).
_SPELLED_RE = re.compile(r"(?<![^.-])(?=([0-9]{1,3})[.-]([0-9]{1,3})[.-]([0-9]{1,3})[.-]([0-9]{1,3})(?![^.-]))")
_HEX_RE = re.compile(r"(?<![^.-])([0-9a-f]{8})(?![^.-])")
_HEX_GROUP_RE = re.compile(r"[0-9a-f]*")


def under(name: str, domains: tuple[str, ...]) -> str | None:
    """The one of ``domains`` that ``name`` (lowercase, no trailing dot) is or is under, or None."""
    return next((domain for domain in domains if name == domain or name.endswith("." + domain)), None)


def spelled_addresses(host: str) -> list[str]:
    """See ``_spelled_addresses``; remembered for the last names asked about (a keeper's look compares each
    pending proposal with each rule, and so reads one name many times)."""
    return list(_spelled_addresses(host))


@functools.lru_cache(maxsize=4096)
def _spelled_addresses(host: str) -> tuple[str, ...]:
    """Every address a name that is no address may resolve to by what it spells, in order (empty: none).

    Four numbers to 255 in a row between dots or dashes, in one label or
    across labels (``10.0.0.1.example.com``, ``app-10-0-0-1``,
    ``x-10.0.0.1-y``): a wildcard DNS service, or the domain's owner,
    answers such a name with that address; a name may spell several, and
    services differ on which they take, so each is one. Under a known
    wildcard DNS service (``WILDCARD_DNS``), an 8-digit hex part too
    (``0a000001``), the IPv6 address a run of dashed hex groups spells
    (``0--1``: ::1, which sslip.io answers an AAAA query with whatever IPv4
    address the name also spells; with ``ANY_ADDRESS``, as no rule can name
    one, or the IPv4 address it maps), and ``ANY_ADDRESS`` where it spells none (it may spell
    IPv6, or a form this does not read) or is a wildcard (``*.nip.io``,
    ``*.10.0.0.1.nip.io``: each covers names that spell any address). A name
    under ``LOOPBACK_NAMES``: 127.0.0.1; one of ``NAMED_ADDRESSES``: its own.
    """
    name = host.strip().lower().rstrip(".")
    if ipv4_readings(name) or len(name) > MAX_HOST_CHARS:
        return ()  # an address itself (host_problems names its other forms), or no name at all
    found: dict[str, None] = {}
    for parts in dict.fromkeys(match.groups() for match in _SPELLED_RE.finditer(name)):  # 1-1-1-1-1...: once
        numbers = [int(part) for part in parts]
        if max(numbers) <= 255:
            found.setdefault(".".join(map(str, numbers)), None)
    if under(name, WILDCARD_DNS) is not None:
        for match in _HEX_RE.finditer(name):
            found.setdefault(str(ipaddress.IPv4Address(int(match.group(1), 16))), None)
        for spelled_v6 in _ipv6_spellings(name):  # answered to an AAAA query whatever IPv4 decoy it spells too
            mapped = spelled_v6.ipv4_mapped
            found.setdefault(str(mapped if mapped is not None else spelled_v6), None)
            if mapped is None:  # no rule can name an IPv6 address (a host has no colon): a rejection of any does
                found.setdefault(ANY_ADDRESS, None)
        if not found or name.startswith("*"):
            found.setdefault(ANY_ADDRESS, None)
    if under(name, LOOPBACK_NAMES) is not None:
        found.setdefault("127.0.0.1", None)
    if name in NAMED_ADDRESSES:
        found.setdefault(NAMED_ADDRESSES[name], None)
    if name.startswith("*."):  # a wildcard over such a name's parent covers it: *.cluster.local, *.google.internal
        if wildcard_dns_within(name) is not None:
            found.setdefault(ANY_ADDRESS, None)
        for _, address in _named_within(name):
            found.setdefault(address, None)
    return tuple(found)


def _ipv6_spellings(name: str) -> list[ipaddress.IPv6Address]:
    """The IPv6 addresses a name spells as sslip.io reads them for an AAAA query: a run of three to eight
    dash-separated hex groups in a label, ``--`` for ``::`` (``0--1`` is ::1, ``fd00-ec2--254`` fd00:ec2::254,
    ``0--ffff-a9fe-a9fe`` ::ffff:169.254.169.254), each window found."""
    found: dict[ipaddress.IPv6Address, None] = {}
    for label in name.split("."):
        groups = label.split("-")
        if len(label) > 63 or ("--" not in label and len(groups) < 8):  # eight groups, or "::" among fewer
            continue
        hexish = [len(group) <= 4 and _HEX_GROUP_RE.fullmatch(group) is not None for group in groups]
        for start in range(len(groups)):
            for end in range(start + 1, min(start + 8, len(groups)) + 1):
                if not hexish[end - 1]:
                    break
                text = ":".join(groups[start:end])
                # Eight groups, or fewer with one "::" (no ":::"): the rest is no address, and not parsed.
                if end - start >= 3 and ((text.count("::") == 1 and ":::" not in text)
                                         or (end - start == 8 and "::" not in text)):
                    with contextlib.suppress(ValueError):
                        found.setdefault(ipaddress.IPv6Address(text), None)
    return list(found)


def wildcard_dns_within(name: str) -> str | None:
    """The service of ``WILDCARD_DNS`` that ``name`` (lowercase, no trailing dot) is under or, for a wildcard
    (``*.cluster.local``), covers; None for none."""
    return under(name, WILDCARD_DNS) or next((service for service in WILDCARD_DNS
                                              if name.startswith("*.") and service.endswith(name[1:])), None)


def spelled_address(host: str) -> str | None:
    """The first of ``spelled_addresses`` (the one a name is shown as first), or None where it spells none."""
    spelled = spelled_addresses(host)
    return spelled[0] if spelled else None


def _spelled_problem(name: str) -> str:
    """What ``spelled_addresses`` finds in ``name``, said for a caution ("" where it finds nothing)."""
    spelled = spelled_addresses(name)
    if not spelled:
        return ""
    said, named = [], dict(_named_within(name))
    if ANY_ADDRESS in spelled:
        where = under(name, WILDCARD_DNS)
        said.append((f"it is a name under {where}" if where else f"it is a wildcard over {wildcard_dns_within(name)}")
                    + ", a wildcard DNS service that answers each name with the address it spells (IPv6 too): a "
                    "client connects to whatever address the name holds")
    for within, address in list(named.items())[:MAX_SHOWN_PROBLEMS]:
        if within in HOST_MACHINE_NAMES:
            said.append(f"it is, is under or covers {within}, the name a container reaches the host machine by (its "
                        "loopback, where bot-bottle's relay and dashboard listen): a client connects to the host")
            continue
        loopback = ipaddress.ip_address(address).is_loopback
        said.append(f"it is, is under or covers {within}, which resolves to {address}"
                    + (", the loopback," if loopback else "") + " where a sidecar may run (public DNS, /etc/hosts, or "
                    "the cloud's resolver): a client connects to "
                    + ("the machine it runs on" if loopback else address))
    numbers = [address for address in spelled if address != ANY_ADDRESS and address not in named.values()]
    # The ones no public host has (loopback, private, link-local: the metadata service) first, so padding the
    # name with public decoys (1.1.1.1.1.1.1.169.254.169.254.nip.io) cannot push them past what is shown.
    numbers.sort(key=lambda address: ipaddress.ip_address(address).is_global)
    if numbers:
        listed = " or ".join(numbers[:MAX_SHOWN_PROBLEMS]) + (f" (or {len(numbers) - MAX_SHOWN_PROBLEMS} more)" if
                                                               len(numbers) > MAX_SHOWN_PROBLEMS else "")
        said.append(f"it spells the address {listed}, which such a name resolves to (wildcard DNS services such as "
                    f"nip.io answer so, and so can the domain's owner): a client connects to {listed}")
    return "; ".join(said)


def _named_within(name: str) -> list[tuple[str, str]]:
    """The loopback and named names ``name`` is, is under, or (a wildcard) covers, each with its address."""
    found = []
    for named, address in (*((loopback, "127.0.0.1") for loopback in LOOPBACK_NAMES), *NAMED_ADDRESSES.items()):
        if named == name or (named in LOOPBACK_NAMES and name.endswith("." + named)) \
                or (name.startswith("*.") and named.endswith(name[1:])):
            found.append((named, address))
    return found  # each, for a rejection to compare; the caution shows the first MAX_SHOWN_PROBLEMS


_PORT_RE = re.compile(r":[0-9]{1,5}$")
_BRACKETED_RE = re.compile(r"\[([^\]]*)\](?::[0-9]{1,5})?")


def without_port(host: str) -> str:
    """``host`` without a ``:port`` (a token report's host may carry one) and an IPv6 address without its
    brackets (``[::1]:8080`` is ::1); anything else as it is, so no character after a colon is dropped unread."""
    bracketed = _BRACKETED_RE.fullmatch(host)
    if bracketed is not None:
        return bracketed.group(1)
    return _PORT_RE.sub("", host) if host.count(":") == 1 else host


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def host_problems(host: str) -> list[str]:
    """Why ``host`` may not be what it looks like (empty: it is plain ASCII, without ``xn--`` labels).

    Each item names the characters (code point, name, what they read as) or
    the ``xn--`` label and what it decodes to; a host with characters
    outside ASCII also gets its IDNA form. An IPv4 address written otherwise
    than in plain dotted decimal (``ipv4_reading``) is named as the address
    a client connects to, and so is a name that spells one
    (``spelled_address``: ``169.254.169.254.nip.io``, ``localtest.me``).
    """
    problems: list[str] = []
    bare = without_port(host)  # a report's host may carry a port, and an IPv6 address its brackets
    address, decimal = ipv4_reading(bare), _decimal_reading(bare)
    if address is not None and address != bare:
        problems.append(f"it is the IPv4 address {address} written in another form (a leading 0 is octal, 0x hex, "
                        f"and fewer than four parts fill the rest): a client connects to {address}"
                        + (f", or, reading a leading 0 as decimal (as Java does), to {decimal}"
                           if decimal not in (None, address) else ""))
    elif address is None and decimal is not None:
        problems.append(f"it is an IPv4 address to a client that reads a leading 0 as decimal (as Java does): it "
                        f"connects to {decimal} (others look it up as a name)")
    spelled = _spelled_problem(bare.strip().lower().rstrip("."))
    if spelled:
        problems.append(spelled)
    if _is_ipv6(bare):
        return problems  # colons, an address's own characters
    odd = [_named(char, index) for index, char in enumerate(bare, start=1) if char not in _PLAIN_HOST_CHARS]
    if odd:
        more = f" and {len(odd) - MAX_SHOWN_PROBLEMS} more" if len(odd) > MAX_SHOWN_PROBLEMS else ""
        problems.append(f"it holds {', '.join(odd[:MAX_SHOWN_PROBLEMS])}{more}; its IDNA form (the name a client "
                        f"that applies IDNA connects to) is {idna_form(bare)}")
    for label in re.split(f"[.{DOT_LIKE}]", bare):
        if label[:4].lower() == "xn--":
            problem = _label_problem(label.lower())
            if problem:
                problems.append(problem)
    return problems


def asked_as(host: str) -> tuple[str, ...]:
    """``host`` as written and as a client asks for it, where that differs: a JSON reader's surrogate pair
    joined and IDNA's mapping applied (``\uff43rates.io``, ``crates\u3002io``, ``cra\u00adtes.io`` are
    crates.io), an IPv6 address that carries an IPv4 one as that one (``::ffff:102:304``, NAT64's
    ``64:ff9b::102:304``, 6to4's ``2002:102:304::``: ``carried_ipv4``)."""
    try:
        joined = host.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeError:
        joined = host
    forms = [host]
    if not joined.isascii():
        with contextlib.suppress(UnicodeError):
            forms.append(joined.encode("idna").decode("ascii").lower())
    if ":" in host:
        with contextlib.suppress(ValueError):
            address = ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
            carried = address.ipv4_mapped or carried_ipv4(address)
            if carried is not None:
                forms.append(str(carried))
    return tuple(dict.fromkeys(forms))


# IPv6 addresses that carry an IPv4 one a client's network connects to: NAT64's well-known and local-use
# prefixes (64:ff9b::a9fe:a9fe is 169.254.169.254 through the network's NAT64), SIIT's IPv4-translated form
# and the IPv4-compatible one (its last 32 bits), and 6to4 (2002:a9fe:a9fe::, bits 16 to 48).
_EMBEDDING = tuple(ipaddress.ip_network(network) for network in ("64:ff9b::/96", "64:ff9b:1::/48",
                                                                   "::ffff:0:0:0/96", "::/96"))


def carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``ip`` carries for a translator or tunnel to connect to (``_EMBEDDING``, 6to4), or None;
    :: and ::1 are themselves."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if int(ip) > 1 and any(ip in network for network in _EMBEDDING):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
