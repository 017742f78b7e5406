"""Where a host reaches that no public host is: this machine, the host machine, a cloud's metadata service, a
private network.

An agent asking for ``169.254.169.254`` asks for the cloud's metadata service,
which hands out the machine's credentials; one asking for ``127.0.0.1`` asks
for the sidecar's own services, and one asking for ``10.0.0.5`` for whatever
the operator's network holds there. Such a host is what it looks like (a
``look-alike`` warning is for one that is not), yet approving it reaches past
the bottle's wall to the inside: ``inside_places`` says where, for an
``internal`` caution (``policy.approval``), which asks for a typed "yes" as a
widening does.

A host is read for every address a client may connect to: as an address
(``[fd00::1]``, or IPv4 in any of ``inet_aton``'s forms, ``0xa9fea9fe``), or
by what its name spells or names (``169.254.169.254.nip.io``, ``localhost``,
``host.docker.internal``, ``*.nip.io``: ``hosts.spelled_addresses``). Nothing
is looked up in DNS: an agent's own domain could answer one address at
approval and another at use (docs/decisions.md).
"""

from __future__ import annotations

import ipaddress
import re

from bot_bottle.policy.hosts import (
    ANY_ADDRESS,
    HOST_MACHINE_NAMES,
    LOOPBACK_NAMES,
    MAX_SHOWN_PROBLEMS,
    NAMED_ADDRESSES,
    carried_ipv4,
    ipv4_readings,
    spelled_addresses,
    under,
    without_port,
)
from bot_bottle.policy.suffixes import is_top_level_domain

# The metadata services of the clouds a sidecar may run in, by address: each answers any process on the
# machine with the instance's credentials.
METADATA_SERVICES = {
    "169.254.169.254": "the cloud's metadata service (AWS, Google Cloud, Azure and others), which hands any "
                       "caller the machine's credentials",
    "fd00:ec2::254": "EC2's metadata service over IPv6, which hands any caller the machine's credentials",
    "169.254.170.2": "ECS's task metadata service, which hands any caller the task's credentials",
    "100.100.100.200": "Alibaba Cloud's metadata service, which hands any caller the machine's credentials",
    "168.63.129.16": "Azure's platform address (its WireServer hands the VM agent its configuration and "
                     "extensions' settings; Azure's DNS), an address no host outside Azure reaches",
}
_PRIVATE = tuple(ipaddress.ip_network(network) for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                                "fc00::/7"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")
# IANA's IETF protocol assignments (RFC 6890), reachable on no public network but for two anycast services.
# Python's own verdict differs by version (3.11 calls 192.0.0.192 global, 3.12.4 and 3.13 do not): said here once.
_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
_GLOBAL_ANYCAST = frozenset({ipaddress.ip_address("192.0.0.9"), ipaddress.ip_address("192.0.0.10")})
# Domains no public DNS answers, whose names only a private resolver does: ICANN's .internal, mDNS's .local
# (RFC 6762), .home.arpa (RFC 8375), the never-delegated .home, .corp and .lan and .localdomain that networks
# use, and Kubernetes' cluster DNS (.svc, .cluster.local: its services and pods).
PRIVATE_USE_DOMAINS = ("cluster.local", "home.arpa", "internal", "local", "localdomain", "home", "corp", "lan",
                       "intranet", "svc")
# The top-level domains set aside for documentation and for failure (RFC 2606, RFC 6761), left plain where a name
# under any other TLD public DNS lacks (kubernetes.default, db.test) is flagged: documentation, the demo and the tests
# write them for public hosts. A choice, not a proof: public DNS answers them no more than .test, and a resolver's
# search domains can complete one (db.example to a cluster's namespace "example") as they can a name under any TLD.
_STAND_IN_DOMAINS = ("example", "invalid")
# The names of the sidecar's own loopback: the loopback names, and the named ones that are not the host machine's.
_OWN_LOOPBACK = (*LOOPBACK_NAMES, *(name for name, address in NAMED_ADDRESSES.items()
                                    if name not in HOST_MACHINE_NAMES and ipaddress.ip_address(address).is_loopback))
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")  # one DNS label: a name without a dot
# The order places are named in: the worst first, so a name spelling many addresses cannot push it out of view.
_ORDER = range(8)
_METADATA, _THIS_MACHINE, _HOST_MACHINE, _ANY, _LINK_LOCAL, _PRIVATE_NETWORK, _SHARED_SPACE, _RESERVED = _ORDER


def inside_places(host: str) -> list[str]:
    """Where ``host`` reaches inside, worst first, each said in a few words (empty: nowhere a public host is not).

    ``host`` as a route or a report names it: a name, a wildcard, an
    address (IPv6 in brackets or not), with a ``:port`` or not.
    """
    return [place for place, _ in _ranked_places(host)]


def _ranked_places(host: str) -> list[tuple[str, int]]:
    """``inside_places`` with each place's rank (``_METADATA`` first)."""
    bare = without_port(host.strip()).lower().rstrip(".")
    places: dict[str, int] = {}
    # host.docker.internal is listed as 127.0.0.1 (a rejection of this machine rejects it), but it is the host
    # machine's loopback, not the sidecar's: named so, and this machine only where the name also is, is under or
    # covers a name of the sidecar's own loopback (*.localhost covers localhost and docker.for.mac.localhost).
    host_machine = _is_or_covers(bare, HOST_MACHINE_NAMES)
    if host_machine:
        places["the host machine (a container reaches its loopback by this name: bot-bottle's relay and "
               "dashboard listen there)"] = _HOST_MACHINE
    this_machine = not host_machine or _is_or_covers(bare, _OWN_LOOPBACK)
    for address in _addresses(bare):
        place = _place(address)
        if place is not None and (place[2] != _THIS_MACHINE or this_machine):
            reached, what, rank = place
            # The address is named where the host is another spelling of it; "169.254.169.254: 169.254.169.254,
            # the metadata service" would say it twice.
            places.setdefault(what if reached in ("", bare) else f"{reached}, {what}", rank)
    private = _private_name(_idna_name(bare)) if not places else None
    if private is not None:
        places[private] = _PRIVATE_NETWORK
    ranked = sorted(places.items(), key=lambda item: item[1])
    return [(place, rank) for place, rank in ranked[:MAX_SHOWN_PROBLEMS]] + (
        [(f"and {len(ranked) - MAX_SHOWN_PROBLEMS} more", len(_ORDER))] if len(ranked) > MAX_SHOWN_PROBLEMS else [])


def inside_worst_first(hosts: list[str]) -> list[tuple[str, list[str]]]:
    """Each of ``hosts`` that reaches inside with its places (``inside_places``), the worst first (a host reaching
    the metadata service before one reaching a private network), else in their order: a list cut short (a routes
    file's many new lines) cannot leave the metadata service among the ones not shown."""
    found = [(host, _ranked_places(host)) for host in hosts]
    inside = sorted(((host, places) for host, places in found if places), key=lambda item: item[1][0][1])
    return [(host, [place for place, _ in places]) for host, places in inside]


def _idna_name(name: str) -> str:
    """``name`` as a client that applies IDNA asks DNS for it (``db.\u30c6\u30b9\u30c8`` is db.xn--zckzah,
    ``kubernetes\u3002default`` and full-width letters their ASCII), lower case; as it is where IDNA cannot encode
    it (a look-alike caution says so) or it is ASCII already."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return name


def _private_name(name: str) -> str | None:
    """Why ``name`` (lowercase, no trailing dot) is one only the resolver where the sidecar runs answers, said for
    a caution, or None: a name under a private-use domain (``PRIVATE_USE_DOMAINS``; ``*.internal`` too), under a
    top-level domain the Public Suffix List does not name (``kubernetes.default``; not ``.example`` nor
    ``.invalid``, the stand-ins for documentation), or one without a dot (``redis``), which the resolver
    completes with its search domains."""
    if not name or name == "*" or ":" in name or ipv4_readings(name):
        return None
    unstarred = name.removeprefix("*.")
    if _LABEL_RE.fullmatch(name):
        return ("a name without a dot, which the resolver where the sidecar runs completes with its search domains: "
                "another container on its network, or a host on the operator's")
    domain = under(unstarred, PRIVATE_USE_DOMAINS)
    if domain is not None:
        return (f"a name under .{domain}, which no public DNS answers: only the resolver where the sidecar runs "
                "does, with a host on its own network (another container, a cluster's service, the operator's LAN)")
    top = unstarred.rsplit(".", 1)[-1]  # (ASCII where IDNA can write the name: _idna_name)
    if "." not in name or not _LABEL_RE.fullmatch(top) or top.isdigit() or top in _STAND_IN_DOMAINS \
            or is_top_level_domain(top):
        return None
    return (f"a name under .{top}, a top-level domain public DNS does not have: only the resolver where the sidecar "
            "runs answers it, completing it with its search domains or from its own zones (kubernetes.default is "
            "a cluster's API server)")


def _is_or_covers(name: str, names: tuple[str, ...]) -> bool:
    """Whether ``name`` is or is under one of ``names``, or is a wildcard over one (``*.docker.internal``)."""
    return under(name, names) is not None or (name.startswith("*.") and any(n.endswith(name[1:]) for n in names))


def _addresses(name: str) -> list[str]:
    """Every address a client may connect to for ``name``: the address it is, or the ones it spells or names."""
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    return ipv4_readings(name) or spelled_addresses(name)


def _place(address: str) -> tuple[str, str, int] | None:
    """The address as a client reads it, what it is inside, and its rank (``_METADATA`` first); None for a public
    address."""
    if address == ANY_ADDRESS:
        return ("", "any address at all, as the name asks (the metadata service and this machine among them)", _ANY)
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is the IPv4 address to a dual-stack client
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := carried_ipv4(ip)) is not None:
        place = _place(str(embedded))
        if place is None:
            # The address a client reaches is the IPv4 one it carries, and that one is public. Python's own
            # verdict on the IPv6 form differs by version (3.13 calls 6to4's 2002::/16 not global; 3.12 did not).
            return None
        return (str(embedded), f"{place[1]}, which the IPv6 address {ip} carries (NAT64, SIIT or 6to4 connect "
                "a client to it)", place[2])
    if str(ip) in METADATA_SERVICES:
        return (str(ip), METADATA_SERVICES[str(ip)], _METADATA)
    if ip.is_loopback or ip.is_unspecified:
        return (str(ip), "this machine (the sidecar's own services listen on its loopback)", _THIS_MACHINE)
    if ip.is_link_local:
        return (str(ip), "a link-local address (where clouds put their metadata services)", _LINK_LOCAL)
    if any(ip in network for network in _PRIVATE if network.version == ip.version):
        return (str(ip), "a private network's address (the operator's network, a cloud's, other containers)",
                _PRIVATE_NETWORK)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return (str(ip), "shared address space (carrier-grade NAT, and inside clouds)", _SHARED_SPACE)
    reserved = (str(ip), "an address no public host has (reserved for special uses)", _RESERVED)
    if isinstance(ip, ipaddress.IPv4Address) and ip in _PROTOCOL_ASSIGNMENTS:
        return None if ip in _GLOBAL_ANYCAST else reserved
    return reserved if not ip.is_global and not ip.is_multicast else None
