"""``bot-bottle relay``: the host process through which sidecars in VMs reach the host database.

On backends whose sidecars run in a VM (Docker Desktop, Apple ``container``,
smolmachines on macOS) the database directory would be shared over the VM's
file sharing, where SQLite's locks may not reach the host's and a sidecar's
writes can corrupt the file. There the sidecar gets no database at all: it
sends each queue operation to this relay, the only process that opens the
host database on those sidecars' behalf (docs/architecture.md, "The relay").

- One relay per host: ``RelayLock`` holds an exclusive ``flock`` on
  ``~/.bot-bottle/relay/relay.lock`` for the relay's life and writes there
  who holds it (pid, address), so a second relay says which one runs.
  ``ensure_relay`` is what launch code calls: it starts one in the
  background unless one runs.
- Each request is authorized by its signature before its body is read
  (``RelayService.authorize``: a MAC keyed with the bottle's credential over
  its bottle, time, nonce and body digest; ``relay_credentials``), its body
  checked against that digest once it is in, and the credential checked
  again then (one revoked while its body trickled in is served nothing); a
  nonce is served once. Every answer is signed for the request's nonce, so a
  sidecar believes no one but the relay. The bottle is the credential's.
  Waits are long polls of at most ``MAX_LONG_POLL_SEC``, woken as a
  direct waiter is, and each bottle may hold at most
  ``max_waits_per_bottle`` of them at once, and twice that many requests in
  flight of any kind (``admit``, before a body is read): one bottle
  trickling bodies cannot hold every place the relay has for all.
- The HTTP side is the sidecar server's (``supervise_http``): one deadline
  per request, capped connections, requests in flight and body bytes, the
  Host allowlist, an answer to every request and no traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from types import FrameType
from typing import Any

from bot_bottle.connection import DIR_MODE, FILE_MODE
from bot_bottle.errors import BotBottleError, Unauthorized, ValidationError
from bot_bottle.mcp_service import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, rpc_error, safe_id
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import DEFAULT_POLL_INTERVAL_SEC, DEFAULT_QUOTA, Quota
from bot_bottle.relay_client import (
    ARCHIVE,
    BUSY_CODE,
    DATABASE_UNAVAILABLE_CODE,
    GET,
    HEARTBEAT,
    HELLO,
    MAX_LONG_POLL_SEC,
    RESPONSE,
    STOPPED,
    SUBMIT,
    VALIDATION_CODE,
    WAIT,
    code_of,
)
from bot_bottle.relay_credentials import (
    AUTH_SCHEME,
    CLOCK_SKEW_SEC,
    SIGNATURE_HEADER,
    RelayCredentials,
    SignedRequest,
    relay_root,
    sign_answer,
)
from bot_bottle.supervise_http import REQUEST_TIMEOUT_SEC, SuperviseHTTPServer, normalize_allowed_host

DEFAULT_RELAY_HOST = "127.0.0.1"
DEFAULT_RELAY_PORT = 9110  # fixed, so the URL in a bottle's relay.json outlives a restart of the relay
# The names VMs reach the host by (Docker Desktop, Podman, Apple container's default vmnet
# gateway); a Host header must name one of these, the listen address or an --allowed-host.
VM_HOST_NAMES = ("host.docker.internal", "host.containers.internal", "192.168.64.1")
DEFAULT_MAX_WAITS_PER_BOTTLE = 32
MIN_HEARTBEAT_GAP_SEC = 5.0  # a third of the sidecar's interval: a late beat is never dropped
RELAY_MAX_CONNECTIONS = 512
RELAY_MAX_IN_FLIGHT = 256
LOCK_FILENAME = "relay.lock"
LOG_FILENAME = "relay.log"
NONCES_FILENAME = "nonces"  # the spent nonces still in their window, so a restart does not reopen replays
START_TIMEOUT_SEC = 15.0
# Relays this process started and never waits on (they outlive it): kept so no Popen is collected while it runs.
_STARTED: list[subprocess.Popen[bytes]] = []
_SUBMIT_FIELDS = ("tool", "payload", "justification", "current_file", "current_file_hash")
_REQUIRED_SUBMIT_FIELDS = ("tool", "payload", "justification")


class RelayService:
    """The relay's JSON-RPC methods over one host ``QueueStore``, each for the bottle of the caller's token."""

    def __init__(
        self,
        store: QueueStore,
        credentials: RelayCredentials,
        *,
        quota: Quota = DEFAULT_QUOTA,
        poll_interval: float = DEFAULT_POLL_INTERVAL_SEC,
        max_waits_per_bottle: int = DEFAULT_MAX_WAITS_PER_BOTTLE,
        log: Callable[[str], None] = lambda line: None,
        nonce_journal: Path | None = None,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.quota = quota
        self.poll_interval = poll_interval
        self.max_waits_per_bottle = max_waits_per_bottle
        self._log = log
        self._waits: dict[str, int] = {}
        self._waits_lock = threading.Lock()
        self._nonces = NonceLedger(journal=nonce_journal)
        self._beats: dict[str, float] = {}
        # Requests in flight per bottle (a wait is one of them), so that the waits always leave room.
        self.max_requests_per_bottle = 2 * max_waits_per_bottle
        self._requests: dict[str, int] = {}

    def log(self, line: str) -> None:
        """One line to the relay's log."""
        self._log(line)

    def authorize(self, headers: Message) -> Caller:
        """The caller of a request signed with its bottle's live credential; ``Unauthorized`` otherwise."""
        values = headers.get_all("Authorization") or []
        if len(values) != 1:
            raise Unauthorized(f"a relay request needs exactly one 'Authorization: {AUTH_SCHEME} ...' header, "
                               "signed with the key of the bottle's relay.json")
        request = SignedRequest.parse(values[0])
        key = self.credentials.verify(request)
        # After the MAC: only a credential's holder can use up nonces.
        self._nonces.spend(request.nonce, int(request.ts), request.bottle)
        return Caller(bottle=request.bottle, key=key, nonce=request.nonce, body_sha256=request.body_sha256)

    def check_body(self, principal: object, body: bytes) -> None:
        """The body must be the one the signature covers; ``Unauthorized`` otherwise."""
        assert isinstance(principal, Caller)
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), principal.body_sha256):
            raise Unauthorized("the request's body is not the one its signature covers")

    def sign(self, principal: object, status: int, body: bytes) -> dict[str, str]:
        """The answer's signature, for the request's nonce, so the sidecar knows the relay sent it."""
        assert isinstance(principal, Caller)
        return {SIGNATURE_HEADER: sign_answer(principal.key, principal.nonce, status, body)}

    def admit(self, principal: object) -> str | None:
        """Take one of the caller's bottle's places in flight; why it must retry when it holds them all."""
        assert isinstance(principal, Caller)
        with self._waits_lock:
            held = self._requests.get(principal.bottle, 0)
            if held >= self.max_requests_per_bottle:
                return (f"bottle {principal.bottle} has {held} requests in flight at the relay, the most it may "
                        "have at once; retry")
            self._requests[principal.bottle] = held + 1
        return None

    def leave(self, principal: object) -> None:
        """Give back the place ``admit`` took."""
        assert isinstance(principal, Caller)
        with self._waits_lock:
            self._requests[principal.bottle] -= 1
            if not self._requests[principal.bottle]:
                del self._requests[principal.bottle]

    def close(self) -> None:
        """Close the nonce journal (the relay is stopping)."""
        self._nonces.close()

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` says: that this is the relay (nothing of any bottle)."""
        return {"service": "relay"}

    def handle(self, message: object, principal: object) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """Answer one relay request for ``principal``, the ``Caller`` that ``authorize`` found."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return rpc_error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 message"), None
        message_id = message.get("id")
        method, params = message.get("method"), message.get("params", {})
        if isinstance(message_id, bool) or not isinstance(message_id, str | int):
            return rpc_error(safe_id(message_id), INVALID_REQUEST, "a relay request needs an id "
                             "(a string or an integer)"), None
        if not isinstance(method, str):
            return rpc_error(message_id, INVALID_REQUEST, "method must be a string"), None
        if not isinstance(params, dict):
            return rpc_error(message_id, INVALID_PARAMS, "params must be an object"), None
        assert isinstance(principal, Caller)
        try:
            result = self._dispatch(principal, method, params)
        except _RequestError as exc:
            return rpc_error(message_id, exc.code, exc.message), None
        except ValidationError as exc:
            answer = rpc_error(message_id, VALIDATION_CODE, str(exc))
            answer["error"]["data"] = {"field": exc.field}
            return answer, None
        except BotBottleError as exc:
            code = code_of(exc)
            if code == DATABASE_UNAVAILABLE_CODE:
                self.log(f"error for {principal.bottle}: {exc}")
                return rpc_error(message_id, code, f"the host database is unavailable: {exc}"), None
            return rpc_error(message_id, code, str(exc)), None
        except Exception as exc:  # never a traceback to the client, never a dead thread
            self.log(f"internal error in {method[:40]!r} for {principal.bottle}: {exc!r}")
            return rpc_error(message_id, INTERNAL_ERROR, "internal error"), None
        return {"jsonrpc": "2.0", "id": message_id, "result": result}, None

    def _still_valid(self, caller: Caller) -> None:
        """Raise ``Unauthorized`` unless the caller's key is still its bottle's live credential."""
        if not self.credentials.is_live(caller.bottle, caller.key):
            raise Unauthorized(f"bottle {caller.bottle}'s relay credential was revoked or replaced during the "
                               "request: prepare the bottle again")

    def _dispatch(self, caller: Caller, method: str, params: dict[str, Any]) -> Any:
        # The signature was checked on the headers; its body may have arrived long after (up to the request
        # deadline), so it is checked again once the body is in: a revocation meanwhile serves nothing.
        self._still_valid(caller)
        bottle_slug = caller.bottle
        bottle = self.store.for_bottle(bottle_slug, quota=self.quota)
        if method in (HELLO, HEARTBEAT, STOPPED):
            _only(params, (), ())
            if method == HEARTBEAT and self._heartbeat_due(bottle_slug):
                bottle.heartbeat()
            elif method == STOPPED:
                bottle.stopped()
            return {"bottle": bottle_slug}
        if method == SUBMIT:
            _only(params, _SUBMIT_FIELDS, _REQUIRED_SUBMIT_FIELDS)
            # The store validates every field's type and size before anything is written.
            proposal = bottle.submit(params["tool"], params["payload"], params["justification"],
                                     params.get("current_file"), params.get("current_file_hash"))
            self.log(f"{bottle_slug}: filed {proposal.tool} {proposal.short_id}")
            return proposal.to_dict()
        if method in (GET, RESPONSE, ARCHIVE):
            _only(params, ("id",), ("id",))
            if method == GET:
                return bottle.get(params["id"]).to_dict()
            if method == ARCHIVE:
                return bottle.archive(params["id"]).to_dict()
            response = bottle.response(params["id"])
            return None if response is None else response.to_dict()
        if method == WAIT:
            _only(params, ("id", "timeout"), ("id", "timeout"))
            timeout = params["timeout"]
            if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                    or not 0 <= timeout <= MAX_LONG_POLL_SEC):
                raise ValidationError("timeout", f"must be a number of seconds from 0 to {MAX_LONG_POLL_SEC:g}")
            with self._wait_slot(bottle_slug):
                response = bottle.wait_for_response(params["id"], float(timeout), self.poll_interval)
            # A credential revoked while the call waited gets nothing more, not even the decision.
            self._still_valid(caller)
            return None if response is None else response.to_dict()
        raise _RequestError(METHOD_NOT_FOUND, f"method not found: {method[:100]}")

    def _heartbeat_due(self, bottle_slug: str) -> bool:
        """Whether to record this bottle's heartbeat: at most one write per ``MIN_HEARTBEAT_GAP_SEC``.

        A sidecar that beats as fast as it can would otherwise turn each beat
        into a database write, and every open dashboard into a page reloading
        under the operator's pointer.
        """
        now = time.monotonic()
        with self._waits_lock:
            last = self._beats.get(bottle_slug)
            if last is not None and now - last < MIN_HEARTBEAT_GAP_SEC:
                return False
            self._beats[bottle_slug] = now
        return True

    @contextlib.contextmanager
    def _wait_slot(self, bottle_slug: str) -> Any:
        """Hold one of the bottle's wait places (so one bottle cannot hold the relay's threads for all)."""
        with self._waits_lock:
            held = self._waits.get(bottle_slug, 0)
            if held >= self.max_waits_per_bottle:
                raise _RequestError(BUSY_CODE, f"bottle {bottle_slug} has {held} calls waiting at the relay, "
                                    "the most it may have at once; retry")
            self._waits[bottle_slug] = held + 1
        try:
            yield
        finally:
            with self._waits_lock:
                self._waits[bottle_slug] -= 1
                if not self._waits[bottle_slug]:
                    del self._waits[bottle_slug]


@dataclass(frozen=True)
class Caller:
    """Who sent a relay request: its bottle, the credential's key it signed with, its nonce and body digest."""

    bottle: str
    key: str = field(repr=False)
    nonce: str = ""
    body_sha256: str = ""


class NonceLedger:
    """Nonces served within the clock-skew window, so a captured request cannot be played again.

    With a ``journal`` (``~/.bot-bottle/relay/nonces``, beside the lock) each
    spent nonce is also appended there with the wall-clock time after which
    its request is stale anyway, and a new ledger reads the journal back: a
    request captured before a relay restart is refused after it too. The
    journal is rewritten with only the live nonces when it is read and when
    it has grown to twice what the ledger holds.
    """

    def __init__(self, window: float = 2 * CLOCK_SKEW_SEC, limit: int = 1_000_000,
                 journal: Path | None = None, per_bottle: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        # One bottle's share: a bottle spending nonces as fast as it can fills its own, not the ledger for all.
        self.per_bottle = per_bottle
        self.journal = journal
        # nonce -> (when it was spent, monotonic; the wall-clock time after which its request is stale; bottle)
        self._seen: dict[str, tuple[float, int, str]] = {}
        self._held: dict[str, int] = {}  # nonces in the ledger per bottle
        self._lock = threading.Lock()
        self._journal_lines = 0
        self._journal_fd: int | None = None
        if journal is not None:
            self._load(journal)

    def _load(self, journal: Path) -> None:
        now_wall, now = time.time(), time.monotonic()
        with contextlib.suppress(FileNotFoundError), open(journal, encoding="ascii", errors="replace") as handle:
            for text in handle:
                if not _NONCE_LINE.fullmatch(text.strip()):
                    continue
                nonce, expiry, bottle = text.split()
                if int(expiry) >= now_wall and nonce not in self._seen:
                    self._seen[nonce] = (now, int(expiry), bottle)
                    self._held[bottle] = self._held.get(bottle, 0) + 1
        self._rewrite()

    def _rewrite(self) -> None:
        """Replace the journal with the live nonces (whole or not at all), and append to it from now on."""
        assert self.journal is not None
        self.journal.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        temporary = self.journal.with_name(f".{self.journal.name}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            data = "".join(f"{nonce} {expiry} {bottle}\n"
                           for nonce, (_, expiry, bottle) in self._seen.items()).encode("ascii")
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(temporary, self.journal)
        if self._journal_fd is not None:
            os.close(self._journal_fd)
        self._journal_fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        self._journal_lines = len(self._seen)

    def spend(self, nonce: str, ts: int | None = None, bottle: str = "-") -> None:
        """Record ``bottle``'s ``nonce`` of a request stamped ``ts``; ``Unauthorized`` if it was served already."""
        now = time.monotonic()
        expiry = (int(time.time()) if ts is None else ts) + CLOCK_SKEW_SEC + 1
        with self._lock:
            # Oldest first (a dict keeps insertion order): each nonce is dropped once, never the whole ledger rebuilt.
            while self._seen:
                oldest = next(iter(self._seen))
                if self._seen[oldest][0] >= now - self.window:
                    break
                owner = self._seen.pop(oldest)[2]
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]
            if nonce in self._seen:
                raise Unauthorized("this request was served already (its nonce is spent): a replay is refused")
            if len(self._seen) >= self.limit or self._held.get(bottle, 0) >= self.per_bottle:
                raise Unauthorized("the relay has seen too many requests in the last minutes; retry")
            self._seen[nonce] = (now, expiry, bottle)
            self._held[bottle] = self._held.get(bottle, 0) + 1
            if self._journal_fd is not None:
                # Written before the request is served; a process crash keeps it (the kernel holds the page).
                os.write(self._journal_fd, f"{nonce} {expiry} {bottle}\n".encode("ascii"))
                self._journal_lines += 1
                if self._journal_lines > 2 * len(self._seen) + 1024:
                    self._rewrite()

    def close(self) -> None:
        """Close the journal (the ledger records nothing more in it)."""
        with self._lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None


_NONCE_LINE = re.compile(r"[0-9a-f]{32} [0-9]{1,13} [A-Za-z0-9._-]{1,128}")


class _RequestError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _only(params: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        # A bottle is never a parameter: the token names it.
        raise _RequestError(INVALID_PARAMS, f"unknown parameter(s): {', '.join(unknown)[:200]}")
    missing = [name for name in required if name not in params]
    if missing:
        raise _RequestError(INVALID_PARAMS, f"missing parameter(s): {', '.join(missing)}")


# One relay per host -------------------------------------------------------------


class RelayAlreadyRunning(BotBottleError):
    """Another relay holds this host's relay lock."""


@dataclass(frozen=True)
class RelayInfo:
    """What the running relay wrote into the lock file."""

    pid: int
    host: str
    port: int
    database: str

    @property
    def url(self) -> str:
        """Where it listens, as a URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def lock_path() -> Path:
    """``~/.bot-bottle/relay/relay.lock``: outside the database directory, which sidecars on a mount can write."""
    return relay_root() / LOCK_FILENAME


def _read_info(fd: int) -> RelayInfo | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8")
        document = json.loads(text)
        return RelayInfo(pid=int(document["pid"]), host=str(document["host"]), port=int(document["port"]),
                         database=str(document["database"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a relay that is starting and has not written yet


class RelayLock:
    """The exclusive ``flock`` that makes a relay the only one on this host, held until ``release``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path | None = None) -> RelayLock:
        """Take the lock, or raise ``RelayAlreadyRunning`` naming the relay that holds it."""
        path = path or lock_path()
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(fd)
            os.close(fd)
            who = f"pid {info.pid}, listening on {info.url}" if info else "it is starting"
            raise RelayAlreadyRunning(f"a relay already runs on this host ({who}; its lock is {path}): stop it "
                                      "first to start another") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(fd)

    def publish(self, info: RelayInfo) -> None:
        """Write who holds the lock, for ``running_relay`` and a second relay's message."""
        data = json.dumps({"pid": info.pid, "host": info.host, "port": info.port, "database": info.database})
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data.encode("utf-8"), 0)
        os.fsync(self._fd)

    def release(self) -> None:
        """Clear the file and let the lock go (the next relay may start)."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock


def _lock_state(path: Path | None = None) -> tuple[bool, RelayInfo | None]:
    """Whether a relay holds this host's lock, and what it wrote there (``None`` while it is starting)."""
    path = path or lock_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, _read_info(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)


def running_relay(path: Path | None = None) -> RelayInfo | None:
    """The relay that holds this host's lock (``None`` if none does, or it has not said where it listens yet)."""
    return _lock_state(path)[1]


def ensure_relay(host: str = DEFAULT_RELAY_HOST, port: int = DEFAULT_RELAY_PORT, *,
                 db_path: str | os.PathLike[str] | None = None, timeout: float = START_TIMEOUT_SEC) -> RelayInfo:
    """The running relay, started in the background (logging to ``~/.bot-bottle/relay/relay.log``) if none runs.

    Raises ``BotBottleError`` when the relay that runs listens elsewhere than
    ``host:port``, or when a new one does not start in ``timeout`` seconds
    (with the last line it logged).
    """
    info = running_relay()
    if info is None:
        log = relay_root() / LOG_FILENAME
        log.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        command = [sys.executable, "-m", "bot_bottle", "relay", "--host", host, "--port", str(port)]
        if db_path is not None:
            command += ["--db", os.fspath(db_path)]
        with open(log, "a", encoding="utf-8") as output:
            os.chmod(log, FILE_MODE)
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)},
            )
        _STARTED.append(process)
        deadline = time.monotonic() + timeout
        while (info := running_relay()) is None:
            # Ours may have exited because another (started at the same moment) took the lock: wait for that one.
            ended = process.poll() is not None and not _lock_state()[0]
            if ended or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                process.wait()
                lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
                raise BotBottleError("the relay did not start" + (f": {lines[-1]}" if lines else "")
                                     + f" (its log: {log})")
            time.sleep(0.05)
    if info.port != port or info.host not in (host, "0.0.0.0", "::"):
        raise BotBottleError(f"the relay that runs (pid {info.pid}) listens on {info.url}, but this backend's "
                             f"sidecars need {host}:{port}: stop it (kill {info.pid}) and prepare again")
    return info


# The process ---------------------------------------------------------------------


def allowed_hosts(listen: str, extra: Sequence[str]) -> list[str]:
    """The Host names the relay answers to: the VM names, the listen address and ``extra``."""
    names = [*VM_HOST_NAMES, *extra]
    if listen not in ("0.0.0.0", "::", ""):
        names.append(listen)
    return [normalize_allowed_host(name) for name in names]


def serve(
    host: str,
    port: int,
    *,
    db_path: str | os.PathLike[str] | None = None,
    extra_hosts: Sequence[str] = (),
    quota: Quota = DEFAULT_QUOTA,
    max_waits_per_bottle: int = DEFAULT_MAX_WAITS_PER_BOTTLE,
    max_connections: int = RELAY_MAX_CONNECTIONS,
    request_timeout: float = REQUEST_TIMEOUT_SEC,
    log: Callable[[str], None],
    ready: Callable[[str], None],
) -> int:
    """Run the relay until SIGTERM or SIGINT; returns the exit status.

    Takes the host's relay lock first (``RelayAlreadyRunning`` if another
    holds it), opens (and migrates) the database, listens, publishes where,
    and calls ``ready`` with the URL.
    """
    names = allowed_hosts(host, extra_hosts)
    lock = RelayLock.acquire()
    try:
        with QueueStore(db_path) as store:
            service = RelayService(store, RelayCredentials(database=store.db), quota=quota,
                                   max_waits_per_bottle=max_waits_per_bottle, log=log,
                                   nonce_journal=relay_root() / NONCES_FILENAME)
            server = SuperviseHTTPServer((host, port), service, allowed_hosts=names, software="bot-bottle-relay",
                                         max_connections=max_connections, max_in_flight=RELAY_MAX_IN_FLIGHT,
                                         request_timeout=request_timeout)
            try:
                bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
                info = RelayInfo(pid=os.getpid(), host=bound_host, port=bound_port, database=str(store.db.path))
                lock.publish(info)

                def stop(signum: int, frame: FrameType | None) -> None:
                    log(f"stopping on signal {signum}")
                    threading.Thread(target=server.shutdown, daemon=True).start()

                signal.signal(signal.SIGTERM, stop)
                signal.signal(signal.SIGINT, stop)
                ready(info.url)
                server.serve_forever(poll_interval=0.2)
            finally:
                server.server_close()
                service.close()
    finally:
        lock.release()
    log("stopped")
    return 0


__all__ = [
    "DEFAULT_RELAY_HOST",
    "DEFAULT_RELAY_PORT",
    "VM_HOST_NAMES",
    "RelayAlreadyRunning",
    "RelayInfo",
    "RelayLock",
    "RelayService",
    "ensure_relay",
    "running_relay",
    "serve",
]
