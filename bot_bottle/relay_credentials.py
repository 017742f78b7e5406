"""Credentials of relay-backed bottles: one token each, of which the host keeps only the sha256.

A sidecar in a VM reaches the host database only through ``bot-bottle relay``
(docs/architecture.md, "The relay"). ``Supervise.prepare`` mints the bottle's
token (``RelayCredentials.mint``, 256 random bits), stores its sha256 in
``relay_credentials`` (migration 0005) and writes ``{url, token, bottle}`` to
``relay.json`` in a directory of the bottle's own
(``~/.bot-bottle/relay/bottles/SLUG``), which the backend mounts read-only at
``/run/supervise`` instead of the database directory.

The token never crosses the wire. Both ends key HMAC-SHA256 with its sha256
(``credential_key``): each request carries its bottle, a time, a nonce, the
sha256 of its body and their MAC (``sign_request``); each answer carries a
MAC over the request's nonce, the status and the answer's body
(``sign_answer``). So whoever can watch or intercept the traffic between a
VM and the host (an agent on the same virtual network, say) learns no
credential, cannot file or wait as the bottle, and cannot answer for the
relay: a forged "approved" fails the sidecar's check. A revoked or replaced
credential verifies nothing from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.connection import DIR_MODE, FILE_MODE
from bot_bottle.db import DB_DIR_IN_CONTAINER, DatabaseUser
from bot_bottle.errors import MissingMount, Unauthorized, ValidationError
from bot_bottle.paths import bot_bottle_root
from bot_bottle.records import utc_now, validate_queue_key

TOKEN_BYTES = 32  # 256 bits, from the operating system's CSPRNG
RELAY_FILENAME = "relay.json"
RELAY_FILE_IN_CONTAINER = f"{DB_DIR_IN_CONTAINER}/{RELAY_FILENAME}"
MAX_RELAY_FILE_BYTES = 4096
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_URL_RE = re.compile(r"http://[A-Za-z0-9.\-\[\]:]{1,300}/")


def relay_root() -> Path:
    """``~/.bot-bottle/relay``: the relay's lock and log, and each relay-backed bottle's directory."""
    return bot_bottle_root() / "relay"


def bottle_relay_dir(slug: str) -> Path:
    """The directory mounted read-only at ``/run/supervise`` in a relay-backed bottle's sidecar."""
    return relay_root() / "bottles" / validate_queue_key(slug, "bottle")


def token_sha256(token: str) -> str:
    """What the host stores of a token: its sha256, in hex (also the key both ends sign with)."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


AUTH_SCHEME = "BotBottle-HMAC"
SIGNATURE_HEADER = "X-Bot-Bottle-Signature"
CLOCK_SKEW_SEC = 300  # how far a request's time may be from the relay's
_AUTH_FIELDS = ("bottle", "ts", "nonce", "body", "mac")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]{1,12}")


def _mac(key_hex: str, *parts: str) -> str:
    return hmac.new(bytes.fromhex(key_hex), "\n".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def request_mac(key_hex: str, bottle: str, ts: str, nonce: str, body_sha256: str) -> str:
    """The MAC a request carries over its bottle, time, nonce and body digest."""
    return _mac(key_hex, "bot-bottle relay request", bottle, ts, nonce, body_sha256)


def answer_mac(key_hex: str, nonce: str, status: int, body_sha256: str) -> str:
    """The MAC the relay's answer carries over the request's nonce, its status and its body digest."""
    return _mac(key_hex, "bot-bottle relay answer", nonce, str(status), body_sha256)


def sign_request(endpoint: RelayEndpoint, body: bytes, *, ts: int | None = None,
                 nonce: str | None = None) -> tuple[str, str]:
    """The ``Authorization`` value for a request with ``body``, and its nonce (to check the answer with)."""
    nonce = nonce or secrets.token_hex(16)
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hashlib.sha256(body).hexdigest()
    mac = request_mac(token_sha256(endpoint.token), endpoint.bottle, stamp, nonce, digest)
    return f"{AUTH_SCHEME} bottle={endpoint.bottle},ts={stamp},nonce={nonce},body={digest},mac={mac}", nonce


def sign_answer(key_hex: str, nonce: str, status: int, body: bytes) -> str:
    """The signature header's value for an answer of the relay."""
    return answer_mac(key_hex, nonce, status, hashlib.sha256(body).hexdigest())


def answer_is_genuine(endpoint: RelayEndpoint, nonce: str, status: int, body: bytes, signature: str | None) -> bool:
    """True when ``signature`` is the relay's MAC over this answer to the request with ``nonce``."""
    if signature is None:
        return False
    expected = sign_answer(token_sha256(endpoint.token), nonce, status, body)
    return hmac.compare_digest(expected, signature.strip())


@dataclass(frozen=True)
class SignedRequest:
    """An ``Authorization`` header of the relay's scheme, parsed and checked for form (not yet verified)."""

    bottle: str
    ts: str
    nonce: str
    body_sha256: str
    mac: str

    @classmethod
    def parse(cls, value: str, now: float | None = None) -> SignedRequest:
        """The header's fields; ``Unauthorized`` for any other form, or a time too far from ``now``."""
        scheme, _, rest = value.strip().partition(" ")
        if scheme != AUTH_SCHEME:
            raise Unauthorized(f"the relay takes only 'Authorization: {AUTH_SCHEME} ...', signed with the key "
                               "of the bottle's relay.json")
        fields: dict[str, str] = {}
        for item in rest.split(","):
            name, equals, field = item.strip().partition("=")
            if not equals or name not in _AUTH_FIELDS or name in fields:
                raise Unauthorized("malformed relay authorization")
            fields[name] = field
        if set(fields) != set(_AUTH_FIELDS):
            raise Unauthorized("malformed relay authorization")
        try:
            validate_queue_key(fields["bottle"], "bottle")
            # ASCII digits only: str.isdigit() also takes '²' (one latin-1 byte), which int() refuses.
            stamp = int(fields["ts"]) if _DIGITS.fullmatch(fields["ts"]) else None
        except ValidationError:
            stamp = None
        if stamp is None or not _HEX32.fullmatch(fields["nonce"]) or not _HEX64.fullmatch(fields["body"]) \
                or not _HEX64.fullmatch(fields["mac"]):
            raise Unauthorized("malformed relay authorization")
        if abs(stamp - (time.time() if now is None else now)) > CLOCK_SKEW_SEC:
            raise Unauthorized(f"the request's time is more than {CLOCK_SKEW_SEC} s from the relay's clock: "
                               "check the clocks of the VM and the host")
        return cls(fields["bottle"], fields["ts"], fields["nonce"], fields["body"], fields["mac"])


@dataclass(frozen=True)
class RelayEndpoint:
    """What a relay-backed sidecar finds at its constant path: where the relay is, and its bottle's token."""

    url: str
    token: str
    bottle: str

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not _URL_RE.fullmatch(self.url):
            raise ValidationError("url", "must be an http:// URL of a host and port, ending in '/'")
        if not isinstance(self.token, str) or not _TOKEN_RE.fullmatch(self.token):
            raise ValidationError("token", f"must be {TOKEN_BYTES} random bytes in URL-safe base64 (43 characters)")
        validate_queue_key(self.bottle, "bottle")

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps({"url": self.url, "token": self.token, "bottle": self.bottle}, indent=2) + "\n"


def write_endpoint_file(directory: Path, endpoint: RelayEndpoint) -> Path:
    """Write ``relay.json`` into ``directory`` (made 0700), whole or not at all (0600, renamed into place)."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    directory.chmod(DIR_MODE)
    target = directory / RELAY_FILENAME
    temporary = directory / f".{RELAY_FILENAME}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(endpoint.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def read_endpoint_file(path: str | os.PathLike[str]) -> RelayEndpoint:
    """The endpoint in a ``relay.json``; ``MissingMount`` (one line) when it is missing or unusable."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_RELAY_FILE_BYTES + 1)
    except OSError as exc:
        raise MissingMount(f"cannot read the relay file {name}: {exc.strerror}") from None
    if len(data) > MAX_RELAY_FILE_BYTES:
        raise MissingMount(f"the relay file {name} is over {MAX_RELAY_FILE_BYTES} bytes: it is not one "
                           "'bot-bottle prepare' wrote")
    try:
        document = json.loads(data.decode("utf-8"))
        if not isinstance(document, dict) or set(document) != {"url", "token", "bottle"}:
            raise ValueError("it must hold exactly url, token and bottle")
        return RelayEndpoint(url=document["url"], token=document["token"], bottle=document["bottle"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise MissingMount(f"the relay file {name} is not one 'bot-bottle prepare' wrote ({exc}): prepare the "
                           "bottle again") from None


@dataclass(frozen=True)
class Credential:
    """What the host knows of one bottle's relay credential (never the token itself)."""

    queue_key: str
    created_at: str
    revoked_at: str | None


class RelayCredentials(DatabaseUser):
    """The ``relay_credentials`` table: minting, revoking and looking up bottles' tokens."""

    def mint(self, slug: str) -> str:
        """A new token for ``slug``, replacing (and so revoking) any earlier one; only its hash is stored."""
        validate_queue_key(slug, "bottle")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO relay_credentials (queue_key, token_sha256, created_at, revoked_at) "
                "VALUES (:slug, :sha, :now, NULL) ON CONFLICT (queue_key) DO UPDATE SET "
                "token_sha256 = excluded.token_sha256, created_at = excluded.created_at, revoked_at = NULL",
                {"slug": slug, "sha": token_sha256(token), "now": utc_now()},
            )
        return token

    def revoke(self, slug: str) -> bool:
        """Revoke ``slug``'s credential; False if it had none live. The relay refuses it from the next request."""
        validate_queue_key(slug, "bottle")
        with self.db.write() as conn:
            changed = conn.execute(
                "UPDATE relay_credentials SET revoked_at = :now WHERE queue_key = :slug AND revoked_at IS NULL",
                {"slug": slug, "now": utc_now()},
            ).rowcount
        return changed > 0

    def verify(self, request: SignedRequest) -> str:
        """The key ``request`` was signed with, when it is its bottle's live credential; ``Unauthorized`` else.

        The MAC is checked first, so only the credential's holder learns that
        it was revoked.
        """
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT token_sha256, revoked_at FROM relay_credentials WHERE queue_key = :slug",
                {"slug": request.bottle},
            ).fetchone()
        key = str(row[0]) if row is not None else None
        expected = request_mac(key or "00" * 32, request.bottle, request.ts, request.nonce, request.body_sha256)
        if key is None or not hmac.compare_digest(expected, request.mac):
            raise Unauthorized(f"the request is not signed with bottle {request.bottle}'s live relay credential "
                               "(it was replaced, or never minted): prepare the bottle again")
        if row[1] is not None:
            raise Unauthorized(f"bottle {request.bottle}'s relay credential was revoked at {row[1]}: prepare the "
                               "bottle again for a new one")
        return key

    def is_live(self, slug: str, key: str) -> bool:
        """Whether ``key`` is still ``slug``'s live credential (neither revoked nor replaced)."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT token_sha256 FROM relay_credentials WHERE queue_key = :slug AND revoked_at IS NULL",
                {"slug": slug},
            ).fetchone()
        return row is not None and hmac.compare_digest(str(row[0]), key)

    def listing(self) -> list[Credential]:
        """Every bottle that has (or had) a credential, by slug."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue_key, created_at, revoked_at FROM relay_credentials ORDER BY queue_key"
            ).fetchall()
        return [Credential(*row) for row in rows]
