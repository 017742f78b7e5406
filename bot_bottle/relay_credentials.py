"""Credentials of relay-backed bottles: one bearer token each, of which the host keeps only the sha256.

A sidecar in a VM reaches the host database only through ``bot-bottle relay``
(docs/architecture.md, "The relay"). ``Supervise.prepare`` mints the bottle's
token (``RelayCredentials.mint``, 256 random bits), stores its sha256 in
``relay_credentials`` (migration 0005) and writes ``{url, token, bottle}`` to
``relay.json`` in a directory of the bottle's own
(``~/.bot-bottle/relay/bottles/SLUG``), which the backend mounts read-only at
``/run/supervise`` instead of the database directory. The relay maps each
request's token back to its bottle (``bottle_of``); a revoked or replaced
token maps to nothing from the next request on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
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
    """What the host stores of a token: its sha256, in hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


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

    def bottle_of(self, token: str) -> str:
        """The bottle whose live credential ``token`` is; ``Unauthorized`` for any other string."""
        if not _TOKEN_RE.fullmatch(token):
            raise Unauthorized("the relay credential is malformed: use the token in this bottle's relay.json")
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT queue_key, revoked_at FROM relay_credentials WHERE token_sha256 = :sha",
                {"sha": token_sha256(token)},
            ).fetchone()
        if row is None:
            raise Unauthorized("the relay knows no such credential (it was replaced, or never minted): "
                               "prepare the bottle again")
        if row[1] is not None:
            raise Unauthorized(f"bottle {row[0]}'s relay credential was revoked at {row[1]}: prepare the "
                               "bottle again for a new one")
        return str(row[0])

    def listing(self) -> list[Credential]:
        """Every bottle that has (or had) a credential, by slug."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue_key, created_at, revoked_at FROM relay_credentials ORDER BY queue_key"
            ).fetchall()
        return [Credential(*row) for row in rows]
