"""How a sidecar process reaches its bottle's queue: the host's database on a safe mount, or the relay.

The backend mounts one of two things at the constant ``/run/supervise``
(docs/architecture.md, "Transports"):

- ``mount``: the host's database directory, where the host and the sidecar
  share a kernel (Docker on Linux), so SQLite's locks hold. The sidecar opens
  ``/run/supervise/bot-bottle.db`` as it is (never creating or migrating it).
- ``relay``: a directory holding only ``relay.json`` (the host relay's URL and
  this bottle's token), read-only, where the sidecar runs in a VM. The
  sidecar then never opens a SQLite file: every operation goes to
  ``bot-bottle relay`` (``relay_client.RelayQueue``).

``find_transport`` looks at the constant path (or at what ``--db`` or
``--relay`` name, for tests and workstations) and refuses, in one line, when
it finds neither; ``Transport.open`` gives the supervise server, git-gate and
egress one queue handle with ``BottleQueue``'s interface either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot_bottle.bottles import TRANSPORT_MOUNT, TRANSPORT_RELAY
from bot_bottle.errors import CannotOpenDatabase, MissingMount, ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.paths import DB_DIR_IN_CONTAINER, DB_PATH_IN_CONTAINER
from bot_bottle.queue_store import BottleQueue, QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, DEFAULT_QUOTA, Proposal, Quota, Response
from bot_bottle.sidecar.mount_check import access_denied, require_sidecar_database
from bot_bottle.sidecar.relay_queue import RelayQueue
from bot_bottle.wire.relay_file import RELAY_FILE_IN_CONTAINER, RelayEndpoint, read_endpoint_file

MOUNT, RELAY = TRANSPORT_MOUNT, TRANSPORT_RELAY
FILE = "file"  # a --db file named on the command line: a test's or a workstation's


class SidecarQueue(Protocol):
    """One bottle's queue as a sidecar uses it (``BottleQueue`` directly, ``RelayQueue`` through the relay)."""

    @property
    def queue_key(self) -> str:
        """The bottle slug."""

    def submit(self, tool: str, payload: str, justification: str, current_file: str | None = None,
               current_file_hash: str | None = None) -> Proposal:
        """File a proposal for this bottle."""

    def get(self, proposal_id: str) -> Proposal:
        """This bottle's proposal; ``NotFound`` for any other."""

    def response(self, proposal_id: str) -> Response | None:
        """The decision, or ``None`` while pending."""

    def wait_for_response(self, proposal_id: str, timeout: float,
                          poll_interval: float = DEFAULT_POLL_INTERVAL_SEC) -> Response | None:
        """Wait for the decision, at most ``timeout`` seconds."""

    def archive(self, proposal_id: str) -> Proposal:
        """Archive a decided proposal."""

    def live_grants(self, tool: str) -> list[Grant]:
        """This bottle's grants of ``tool`` in force now."""

    def heartbeat(self) -> None:
        """Say this bottle's sidecar is alive (running, seen now)."""

    def stopped(self) -> None:
        """Say this bottle's sidecar stopped."""

    def close(self) -> None:
        """Release what the handle holds."""


class OwnedBottleQueue(BottleQueue):
    """A ``BottleQueue`` over a store of its own, closed with it."""

    def __init__(self, store: QueueStore, queue_key: str, *, quota: Quota | None) -> None:
        super().__init__(store, queue_key, quota=quota)
        self._owned = store

    def close(self) -> None:
        """Close the store's connection."""
        self._owned.close()


@dataclass(frozen=True)
class Transport:
    """Which way this sidecar reaches the queue, found before anything is opened."""

    kind: str  # MOUNT, RELAY, or FILE (a --db file of a test or workstation, migrated as the host would)
    database: Path | None = None
    endpoint: RelayEndpoint | None = None

    def describe(self) -> str:
        """One line for the sidecar's log."""
        if self.endpoint is not None:
            return f"filing through the operator's relay at {self.endpoint.url}"
        return f"filing into the database at {self.database}"

    def open(self, bottle: str, *, quota: Quota | None = DEFAULT_QUOTA) -> SidecarQueue:
        """The bottle's queue handle (``quota`` applies on a mount; the relay applies its own)."""
        if self.endpoint is not None:
            if self.endpoint.bottle != bottle:
                raise MissingMount(f"the relay file at {DB_DIR_IN_CONTAINER} is bottle {self.endpoint.bottle}'s, "
                                   f"not {bottle}'s: the backend mounted another bottle's directory")
            return RelayQueue(self.endpoint)
        assert self.database is not None
        if self.kind == FILE:
            _require_directory(self.database)
        # The host's database as the host left it: a sidecar never migrates it.
        store = QueueStore(self.database, migrate_schema=self.kind == FILE)
        try:
            return OwnedBottleQueue(store, bottle, quota=quota)
        except BaseException:
            store.close()
            raise


def _present(path: str) -> bool:
    """Whether ``path`` exists; an error saying so when this process may not even look (``os.path.lexists``
    would answer False, and the sidecar would report a missing mount that is there)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        raise access_denied(DB_DIR_IN_CONTAINER, DB_DIR_IN_CONTAINER, "look into") from None
    return True


def _require_directory(database: Path) -> Path:
    """``database``, if the directory it names exists: a sidecar never creates one (a mistyped --db would
    otherwise collect proposals in a new tree nobody looks at)."""
    if not database.parent.is_dir():
        raise CannotOpenDatabase(f"--db {database}: the directory {database.parent} does not exist, and a sidecar "
                                 "never creates one (create the database on the host: 'bot-bottle db upgrade --db "
                                 "PATH', or name the right path)")
    return database


def find_transport(db: str | os.PathLike[str] | None = None,
                   relay_file: str | os.PathLike[str] | None = None) -> Transport:
    """The transport at the constant path, or the one ``db`` / ``relay_file`` names.

    Raises ``MissingMount`` (one line) when the constant path holds neither
    the mounted database nor a relay file, ``MountAccessDenied`` when one is
    mounted but this process's user may not use it (the message names its
    owner and the ``--user`` that would), ``ValidationError`` when both
    ``db`` and ``relay_file`` are given, and ``CannotOpenDatabase`` when
    ``db`` is in a directory that does not exist (nothing is created).
    """
    if db is not None and relay_file is not None:
        raise ValidationError("--relay", "give either --db or --relay, not both")
    if db is not None:
        return Transport(FILE, database=_require_directory(Path(db)))
    if relay_file is not None:
        return Transport(RELAY, endpoint=read_endpoint_file(relay_file))
    if _present(DB_PATH_IN_CONTAINER):
        # Never create the host's database: a fresh file here would collect
        # proposals the operator never sees.
        require_sidecar_database(DB_PATH_IN_CONTAINER)
        # SQLite writes its journal beside the file: the directory must be writable too.
        if not os.access(DB_DIR_IN_CONTAINER, os.W_OK | os.X_OK):
            if os.statvfs(DB_DIR_IN_CONTAINER).f_flag & os.ST_RDONLY:
                raise MissingMount(f"{DB_DIR_IN_CONTAINER} is mounted read-only, but SQLite writes the database's "
                                   "journal beside it: mount the host's database directory read-write, as the "
                                   "command 'bot-bottle prepare SLUG --backend NAME' prints does")
            raise access_denied(DB_DIR_IN_CONTAINER, DB_DIR_IN_CONTAINER, "write the database's journal into")
        if not os.access(DB_PATH_IN_CONTAINER, os.R_OK | os.W_OK):
            raise access_denied(DB_DIR_IN_CONTAINER, DB_PATH_IN_CONTAINER, "read and write")
        return Transport(MOUNT, database=Path(DB_PATH_IN_CONTAINER))
    if _present(RELAY_FILE_IN_CONTAINER):
        if not os.access(RELAY_FILE_IN_CONTAINER, os.R_OK):
            raise access_denied(DB_DIR_IN_CONTAINER, RELAY_FILE_IN_CONTAINER, "read")
        return Transport(RELAY, endpoint=read_endpoint_file(RELAY_FILE_IN_CONTAINER))
    raise MissingMount(
        f"neither the host's database ({DB_PATH_IN_CONTAINER}) nor a relay file ({RELAY_FILE_IN_CONTAINER}) is "
        f"at {DB_DIR_IN_CONTAINER}: the backend mounts one of them there ('bot-bottle prepare SLUG --backend "
        "NAME' shows which); the sidecar never creates a database of its own")
