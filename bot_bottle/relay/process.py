"""``bot-bottle relay`` as a process: started in the background by launch code, or served in the foreground.

``ensure_relay`` is what launch code calls: it starts one in the background
unless one runs. ``serve`` takes the host's relay lock, opens the database,
listens and serves until SIGTERM. The HTTP side is the sidecar server's
(``wire.jsonrpc_server``): one deadline per request, capped connections,
requests in flight and body bytes, the Host allowlist, an answer to every
request and no traceback.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from bot_bottle.connection import FILE_MODE
from bot_bottle.db.checkpointer import IdleCheckpointer
from bot_bottle.errors import BotBottleError
from bot_bottle.paths import open_private_file, private_dir
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_QUOTA, Quota
from bot_bottle.relay.credentials import RelayCredentials, relay_root
from bot_bottle.relay.lock import RelayInfo, RelayLock, lock_state, running_relay
from bot_bottle.relay.revocations import RevocationWatch
from bot_bottle.relay.service import (
    DEFAULT_MAX_WAITS_PER_BOTTLE,
    RelayService,
)
from bot_bottle.relay.shares import DEFAULT_WRITES_PER_SEC
from bot_bottle.standing import Keeper
from bot_bottle.wire.jsonrpc_server import REQUEST_TIMEOUT_SEC, SuperviseHTTPServer, normalize_allowed_host

DEFAULT_RELAY_HOST = "127.0.0.1"


DEFAULT_RELAY_PORT = 9110  # fixed, so the URL in a bottle's relay.json outlives a restart of the relay


# The names VMs reach the host by (Docker Desktop, Podman, Apple container's default vmnet
# gateway); a Host header must name one of these, the listen address or an --allowed-host.
VM_HOST_NAMES = ("host.docker.internal", "host.containers.internal", "192.168.64.1")


# Connections waiting to be authenticated (reading a request's headers), in all and from one peer: all that
# a client without a credential can hold. A bottle's authenticated requests are counted in its own share
# (relay.shares), never here.
RELAY_MAX_CONNECTIONS = 128


def per_peer(max_connections: int) -> int:
    """How many of ``max_connections`` waiting connections one peer may hold: a quarter."""
    return max(1, max_connections // 4)


LOG_FILENAME = "relay.log"


NONCES_FILENAME = "nonces"  # the spent nonces still in their window, so a restart does not reopen replays


START_TIMEOUT_SEC = 15.0


_CLI_ERROR_PREFIX = re.compile(r"^(bot-bottle: error: )+")


# Relays this process started and never waits on (they outlive it): kept so no Popen is collected while it runs.
_STARTED: list[subprocess.Popen[bytes]] = []


def ensure_relay(host: str = DEFAULT_RELAY_HOST, port: int = DEFAULT_RELAY_PORT, *,
                 db_path: str | os.PathLike[str] | None = None, options: Sequence[str] = (),
                 timeout: float = START_TIMEOUT_SEC, asked_by: str = "this backend's sidecars need",
                 then: str = "prepare again") -> RelayInfo:
    """The running relay, started in the background (logging to ``~/.bot-bottle/relay/relay.log``) if none runs.

    ``options`` are more of ``bot-bottle relay``'s arguments for a relay started here; one that already runs
    keeps its own.

    Raises ``BotBottleError`` when the relay that runs listens elsewhere than
    ``host:port`` (port 0 is any port; saying who wants that address, ``asked_by``, and what to
    do once it is stopped, ``then``: prepare's words by default), or when a
    new one does not start in ``timeout`` seconds (with the last line it
    logged).
    """
    info = running_relay()
    if info is None:
        log = relay_root() / LOG_FILENAME
        private_dir(log.parent)
        command = [sys.executable, "-m", "bot_bottle", "relay", "--host", host, "--port", str(port)]
        if db_path is not None:
            command += ["--db", os.fspath(db_path)]
        command += options
        with os.fdopen(open_private_file(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a",
                       encoding="utf-8") as output:
            os.fchmod(output.fileno(), FILE_MODE)
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)},
            )
        _STARTED.append(process)
        deadline = time.monotonic() + timeout
        while (info := running_relay()) is None:
            # Ours may have exited because another (started at the same moment) took the lock: wait for that one.
            ended = process.poll() is not None and not lock_state()[0]
            if ended or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait()
                raise BotBottleError("the relay did not start" + _last_reason(log) + f" (its log: {log})")
            time.sleep(0.05)
    if port not in (0, info.port) or info.host not in (host, "0.0.0.0", "::"):  # (port 0: any free one)
        raise BotBottleError(f"the relay that runs (pid {info.pid}) listens on {info.url}, but {asked_by} "
                             f"{host}:{port}: stop it ('bot-bottle relay stop') and {then}")
    return info


def _last_reason(log: Path) -> str:
    """``": REASON"`` from the log's last line, without the ``bot-bottle: error:`` the relay's CLI put before it
    (whoever reports it adds its own)."""
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if not lines:
        return ""
    return ": " + _CLI_ERROR_PREFIX.sub("", lines[-1], count=1)


# The process ---------------------------------------------------------------------


def allowed_hosts(listen: str, extra: Sequence[str]) -> list[str]:
    """The Host names the relay answers to: the VM names, the listen address and ``extra``."""
    names = [*VM_HOST_NAMES, *extra]
    if listen not in ("0.0.0.0", "::", ""):
        names.append(listen)
    return [normalize_allowed_host(name) for name in names]


def relay_server(address: tuple[str, int], service: RelayService, names: Sequence[str], max_connections: int,
                 request_timeout: float) -> SuperviseHTTPServer:
    """The relay's HTTP server: no budget shared by all bottles (each has its own, ``relay.shares``) and a
    pool of connections waiting to be authenticated that makes room by cutting its oldest."""
    return SuperviseHTTPServer(address, service, allowed_hosts=names, software="bot-bottle-relay",
                               max_connections=max_connections, max_per_peer=per_peer(max_connections), evict=True,
                               max_in_flight=None, body_budget=None, request_timeout=request_timeout)


def raise_open_files_limit(wanted: int = 16384) -> int:
    """Raise this process's soft limit of open files towards ``wanted`` (within the hard limit); the limit now.

    Every connection the relay holds, parked ones included, is a descriptor;
    macOS starts processes with 256, which a few bottles' waits would use up.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        for attempt in (target, 10240):  # macOS refuses more than OPEN_MAX (10240) whatever the hard limit
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(attempt, target), hard))
                break
            except (ValueError, OSError):
                continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def serve(
    host: str,
    port: int,
    *,
    db_path: str | os.PathLike[str] | None = None,
    extra_hosts: Sequence[str] = (),
    quota: Quota = DEFAULT_QUOTA,
    max_waits_per_bottle: int = DEFAULT_MAX_WAITS_PER_BOTTLE,
    writes_per_bottle: int = DEFAULT_WRITES_PER_SEC,
    max_connections: int = RELAY_MAX_CONNECTIONS,
    request_timeout: float = REQUEST_TIMEOUT_SEC,
    log: Callable[[str], None],
    ready: Callable[[str], None],
) -> int:
    """Run the relay until SIGTERM (then 0) or SIGINT (then 130); returns the exit status.

    Takes the host's relay lock first (``RelayAlreadyRunning`` if another
    holds it), opens (and migrates) the database, listens, publishes where,
    and calls ``ready`` with the URL.
    """
    names = allowed_hosts(host, extra_hosts)
    stopped_by: list[int] = []
    raise_open_files_limit()
    lock = RelayLock.acquire()
    try:
        with QueueStore(db_path) as store:
            service = RelayService(store, RelayCredentials(database=store.db), quota=quota,
                                   max_waits_per_bottle=max_waits_per_bottle,
                                   writes_per_bottle=writes_per_bottle, log=log,
                                   nonce_journal=relay_root() / NONCES_FILENAME)
            server = relay_server((host, port), service, names, max_connections, request_timeout)
            # The host's standing decisions for every bottle (a mount's sidecar files without the key).
            keeper = Keeper(store, log).start()
            watch = RevocationWatch(service, server.pool).start()
            # The WAL copied into the file when commits pause, so that a sidecar's commit seldom has to.
            checkpointer = IdleCheckpointer(store.db.path, log=log).start()
            try:
                bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
                info = RelayInfo(pid=os.getpid(), host=bound_host, port=bound_port, database=str(store.db.path))
                lock.publish(info)

                def stop(signum: int, frame: FrameType | None) -> None:
                    log(f"stopping on signal {signum}")
                    stopped_by.append(signum)
                    threading.Thread(target=server.shutdown, daemon=True).start()

                signal.signal(signal.SIGTERM, stop)
                signal.signal(signal.SIGINT, stop)
                ready(info.url)
                server.serve_forever(poll_interval=0.2)
            finally:
                watch.stop()
                keeper.stop()
                checkpointer.stop()
                server.server_close()
                service.close()
    finally:
        lock.release()
    log("stopped")
    # SIGTERM ('relay stop') is a clean stop; Ctrl-C in the foreground is reported as every verb does.
    return 130 if signal.SIGINT in stopped_by else 0

