"""The shape every backend shares: the mount, the plan the host prepares, and the backend interface.

A bottle's sidecar reaches the queue by one of two transports
(docs/architecture.md, "Transports"): ``mount``, the host's database
directory bind-mounted read-write, where the sidecar shares the host's
kernel (Docker on Linux); or ``relay``, a read-only directory holding only
the host relay's URL and the bottle's token, where the sidecar runs in a VM
whose file sharing does not carry SQLite's locks. Each backend says which it
needs on this host (``Backend.transport``); ``Supervise.prepare`` builds the
plan for either.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.backends.launch import DEFAULT_IMAGE, Launch, LaunchOptions, validate_image
from bot_bottle.bottles import BottleStore
from bot_bottle.connection import DIR_MODE, FILE_MODE
from bot_bottle.db import open_db
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.paths import DB_DIR_IN_CONTAINER, host_db_dir, host_db_path
from bot_bottle.records import validate_bottle_slug
from bot_bottle.relay.credentials import RelayCredentials, bottle_relay_dir
from bot_bottle.relay.process import DEFAULT_RELAY_HOST, DEFAULT_RELAY_PORT, ensure_relay
from bot_bottle.sidecar.server import DEFAULT_PORT
from bot_bottle.sidecar.transport import MOUNT, RELAY
from bot_bottle.wire.jsonrpc_server import SIDECAR_HOSTNAME
from bot_bottle.wire.relay_file import RelayEndpoint, write_endpoint_file

__all__ = ["MOUNT", "RELAY", "SIDECAR_HOSTNAME", "TRANSPORTS", "Backend", "Mount", "Supervise", "SupervisePlan",
           "validate_relay_address"]

TRANSPORTS = (MOUNT, RELAY)


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host directory into a container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class SupervisePlan:
    """What the host prepared for one bottle's supervise plane."""

    slug: str
    mount: Mount
    #: The arguments after the image: its ENTRYPOINT runs the supervise server, these say for which bottle.
    entrypoint_args: tuple[str, ...]
    mcp_url: str
    uid: int
    gid: int
    transport: str = MOUNT
    #: Why this transport (the backend's reason on this host, or that it was asked for).
    transport_reason: str = "the default"
    #: The relay's URL as the sidecar reaches it (relay transport only).
    relay_url: str | None = None
    #: The address the relay listens on (relay transport only).
    relay_listen: str | None = None


def validate_relay_address(text: str) -> str:
    """An IPv4 address of this host for the relay to listen on and sidecars to reach (``--relay-address``).

    Not a name (the relay must bind it), not IPv6 (the relay's server
    listens on IPv4), and not ``0.0.0.0`` (sidecars cannot reach "every
    address"); ``ValidationError`` otherwise.
    """
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise ValidationError("relay_address", f"{text[:80]!r} is not an IPv4 address: name an address of this host "
                              "that the sidecars' containers reach (the relay listens on it)") from None
    if address.is_unspecified or address.is_multicast:
        raise ValidationError("relay_address", f"{text[:80]} is not one address sidecars can reach: name an "
                              "address of this host on the network its containers reach")
    return str(address)


def relay_url(host: str, port: int) -> str:
    """``http://HOST:PORT/``."""
    return f"http://{host}:{port}/"


class Supervise:
    """The host side of a bottle's supervise plane."""

    @staticmethod
    def prepare(
        slug: str,
        *,
        backend: Backend | None = None,
        transport: str | None = None,
        platform: str = sys.platform,
        relay_port: int = DEFAULT_RELAY_PORT,
        relay_address: str | None = None,
        engine: str | None = None,
    ) -> SupervisePlan:
        """Open and migrate the host database, record the bottle, tighten the modes, and return its plan.

        The transport is ``transport`` when given, else what ``backend``
        needs on ``platform`` (``Backend.transport``), else ``mount``. For
        ``relay`` the host relay is started unless it runs
        (``relay.ensure_relay``), a new token minted (replacing the bottle's
        earlier one) and ``relay.json`` written into the bottle's own
        directory, which is what the sidecar gets mounted, read-only. The
        relay listens where ``backend`` says its sidecars reach the host
        (``Backend.relay_address``, which may depend on the ``engine``), or
        on ``relay_address``, which the sidecars then reach it at.

        The database path comes from ``HOME`` alone (``~/.bot-bottle/db``),
        never from another environment variable. The bottle is recorded as
        prepared, with its ``backend`` and ``transport`` (``mount`` or
        ``relay``), in the bottles table (``bottles.BottleStore``).
        """
        validate_bottle_slug(slug)
        if transport is not None and transport not in TRANSPORTS:
            raise ValidationError("transport", f"{transport[:40]!r} is not one of {', '.join(TRANSPORTS)}")
        if transport is not None:
            reason = "asked for with --transport"
        elif backend is not None:
            transport, reason = backend.transport(platform)
        else:
            transport, reason = MOUNT, "the default without a backend"
        # Every choice is checked before anything is created, started or minted.
        if transport != RELAY and relay_address is not None:
            raise ValidationError("relay_address", f"applies to the relay transport only, and this bottle's is "
                                  f"{transport}")
        if transport == RELAY:
            if relay_address is not None:
                listen = reached_as = validate_relay_address(relay_address)
            elif backend is not None:
                listen, reached_as = backend.relay_address(platform, engine)
            else:
                listen = reached_as = DEFAULT_RELAY_HOST
        open_db().close()
        directory, database = host_db_dir(), host_db_path()
        # The directory is shared with sidecars: nobody else may read it.
        if stat.S_IMODE(directory.stat().st_mode) != DIR_MODE and directory.stat().st_uid == os.getuid():
            directory.chmod(DIR_MODE)
        if stat.S_IMODE(database.stat().st_mode) != FILE_MODE and database.stat().st_uid == os.getuid():
            database.chmod(FILE_MODE)
        mount = Mount(source=directory, target=DB_DIR_IN_CONTAINER)
        url = relay_listen = None
        if transport == RELAY:
            try:
                info = ensure_relay(listen, relay_port)
            except BotBottleError as exc:
                if relay_address is not None:
                    raise
                raise BotBottleError(f"{exc}; {listen} is this backend's default: if the sidecars reach this host "
                                     "at another address, name it with --relay-address ADDRESS") from None
            url, relay_listen = relay_url(reached_as, info.port), listen
            with RelayCredentials() as credentials:
                token = credentials.mint(slug)
            folder = bottle_relay_dir(slug)
            write_endpoint_file(folder, RelayEndpoint(url=url, token=token, bottle=slug))
            # Read-only: the sidecar cannot change where it files, nor keep a token after a revoke.
            mount = Mount(source=folder, target=DB_DIR_IN_CONTAINER, read_only=True)
        with BottleStore() as bottles:  # once everything it needs is in place
            bottles.prepared(slug, backend.name if backend is not None else None, transport)
        return SupervisePlan(
            slug=slug,
            mount=mount,
            entrypoint_args=("--bottle", slug),
            mcp_url=f"http://{SIDECAR_HOSTNAME}:{DEFAULT_PORT}/",
            uid=os.getuid(),
            gid=os.getgid(),
            transport=transport,
            transport_reason=reason,
            relay_url=url,
            relay_listen=relay_listen,
        )


class Backend(ABC):
    """One way of launching bottles; renders the run arguments for the sidecar and the agent."""

    name: str
    #: How safe SQLite's locking is across this backend's mount, for docs and doctor.
    mount_safety: str
    #: The container engines whose command line runs this backend's sidecar; the first is the default.
    engines: tuple[str, ...]

    def relay_address(self, platform: str = sys.platform, engine: str | None = None) -> tuple[str, str]:
        """Where the relay listens for this backend's sidecars on ``platform``, and the name they reach it by.

        ``ValidationError`` (naming ``--relay-address``) where there is no
        such address to assume for ``engine``.
        """
        return DEFAULT_RELAY_HOST, DEFAULT_RELAY_HOST

    def launch_options(self, engine: str | None = None, image: str = DEFAULT_IMAGE,
                       publish: int | None = None) -> LaunchOptions:
        """The operator's choices, checked: ``ValidationError`` for an engine or image this backend cannot use."""
        chosen = self.engines[0] if engine is None else engine
        if chosen not in self.engines:
            raise ValidationError("engine", f"the {self.name} backend runs its sidecar with "
                                  f"{' or '.join(repr(name) for name in self.engines)}, not {engine!r}")
        if publish is not None and not 0 < publish < 65536:
            raise ValidationError("publish", f"{publish} is not a port number (1-65535)")
        return LaunchOptions(engine=chosen, image=validate_image(image), publish=publish)

    @abstractmethod
    def transport(self, platform: str = sys.platform) -> tuple[str, str]:
        """The transport this backend's sidecars need on ``platform`` (``sys.platform``), and why."""

    def prepare(self, slug: str, transport: str | None = None) -> SupervisePlan:
        """``Supervise.prepare`` for a bottle launched by this backend (its transport unless ``transport``)."""
        return Supervise.prepare(slug, backend=self, transport=transport)

    @abstractmethod
    def sidecar_args(self, plan: SupervisePlan, engine: str | None = None) -> list[str]:
        """Run arguments for the sidecar: the database directory's mount and the host user."""

    @abstractmethod
    def launch(self, plan: SupervisePlan, options: LaunchOptions | None = None) -> Launch:
        """The commands that start the bottle's sidecar as ``options`` say (default: this backend's engine)."""

    def agent_args(self, plan: SupervisePlan) -> list[str]:
        """Run arguments for the agent: its MCP server's URL, and never the database mount."""
        return ["--env", f"BOT_BOTTLE_SUPERVISE_URL={plan.mcp_url}"]
