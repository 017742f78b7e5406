"""Credentials of relay-backed bottles: one token each, of which the host keeps only the sha256, masked.

A sidecar in a VM reaches the host database only through ``bot-bottle relay``
(docs/architecture.md, "The relay"). ``Supervise.prepare`` mints the bottle's
token (``RelayCredentials.mint``, 256 random bits), stores its sha256 in
``relay_credentials`` (migration 0005) and writes ``relay.json``
(``wire.relay_file``) into a directory of the bottle's own
(``bottle_relay_dir``: ``~/.bot-bottle/relay/bottles/SLUG``), which the
backend mounts read-only at ``/run/supervise`` instead of the database
directory. How both ends sign with it is ``wire.signing``. A revoked or
replaced credential verifies nothing from the next request on.

Both ends sign with the token's sha256, so that value is a key: the file
holds it masked (XOR with an HMAC, under a secret of the host's own,
``~/.bot-bottle/relay/credentials.key``, over the bottle and the mint's
time). Every sidecar on the mount can read the database file; none can
read that secret, so none can sign as a relay-backed bottle, or forge the
relay's answers to one, with what it reads there.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.audit.seal import write_synced
from bot_bottle.db import DatabaseUser
from bot_bottle.errors import BotBottleError, Unauthorized, ValidationError
from bot_bottle.paths import bot_bottle_root, private_dir
from bot_bottle.records import validate_bottle_slug, validate_queue_key
from bot_bottle.timestamps import utc_now
from bot_bottle.wire.relay_file import (
    TOKEN_BYTES,
)
from bot_bottle.wire.signing import (
    SignedRequest,
    request_mac,
    token_sha256,
)


def relay_root() -> Path:
    """``~/.bot-bottle/relay``: the relay's lock and log, and each relay-backed bottle's directory."""
    return bot_bottle_root() / "relay"


MASK_FILENAME = "credentials.key"
_MASK_BYTES = 32


def _mask_secret(*, create: bool) -> bytes | None:
    """The host's secret that masks stored credentials (None: there is none and ``create`` is False)."""
    path = relay_root() / MASK_FILENAME
    for _ in range(2):
        try:
            secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            if not create:
                return None
            private_dir(path.parent)
            temporary = path.with_name(f".{MASK_FILENAME}.{os.getpid()}.new")
            try:
                write_synced(temporary, secrets.token_bytes(_MASK_BYTES).hex() + "\n")
                with contextlib.suppress(FileExistsError):  # another process made it first: theirs it is
                    os.link(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
            continue
        except (OSError, ValueError) as exc:
            raise BotBottleError(f"cannot read the relay's credential secret {path}: {exc}") from None
        if len(secret) != _MASK_BYTES:
            raise BotBottleError(f"the relay's credential secret {path} is damaged: remove it, and prepare every "
                                 "relay-backed bottle again")
        return secret
    raise BotBottleError(f"cannot create the relay's credential secret {path}")


LIVE_DIRNAME = "live"  # one file per bottle: the time of its live credential's mint (none: revoked)


def _live_path(slug: str) -> Path:
    return relay_root() / LIVE_DIRNAME / validate_queue_key(slug, "bottle")


def _set_live(slug: str, created_at: str | None) -> None:
    """Record (or, with None, forget) which mint of ``slug`` is live, outside the database."""
    path = _live_path(slug)
    if created_at is None:
        path.unlink(missing_ok=True)
        return
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        write_synced(temporary, created_at + "\n")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _live_mint(slug: str) -> str | None:
    """The mint time of ``slug``'s live credential as the host recorded it; None when it has none."""
    try:
        return _live_path(slug).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError, ValidationError):
        return None


def _masked(key_hex: str, slug: str, created_at: str, secret: bytes) -> str:
    """``key_hex`` XOR an HMAC of ``secret`` over the bottle and the mint's time (its own inverse)."""
    pad = hmac.new(secret, f"bot-bottle relay credential\0{slug}\0{created_at}".encode(), hashlib.sha256).digest()
    return bytes(a ^ b for a, b in zip(bytes.fromhex(key_hex), pad, strict=True)).hex()


def bottle_relay_dir(slug: str) -> Path:
    """The directory mounted read-only at ``/run/supervise`` in a relay-backed bottle's sidecar."""
    return relay_root() / "bottles" / validate_queue_key(slug, "bottle")


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
        validate_bottle_slug(slug)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        secret = _mask_secret(create=True)
        assert secret is not None
        now = utc_now()
        # Which mint is live is kept outside the database too: a sidecar on the mount can write the row back
        # (an older mint, or its revocation undone), never this.
        _set_live(slug, now)
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO relay_credentials (queue_key, token_sha256, created_at, revoked_at) "
                "VALUES (:slug, :sha, :now, NULL) ON CONFLICT (queue_key) DO UPDATE SET "
                "token_sha256 = excluded.token_sha256, created_at = excluded.created_at, revoked_at = NULL",
                {"slug": slug, "sha": _masked(token_sha256(token), slug, now, secret), "now": now},
            )
        return token

    @staticmethod
    def _key(slug: str, stored: object, created_at: object, *, live: bool = True) -> str | None:
        """The signing key a stored credential masks; None for a row that holds none (no secret, not ours) and,
        with ``live``, for one that is not the mint the host last made for the bottle (or was revoked)."""
        secret = _mask_secret(create=False)
        if secret is None or not isinstance(stored, str) or not isinstance(created_at, str) \
                or (live and _live_mint(slug) != created_at):
            return None
        try:
            return _masked(stored, slug, created_at, secret)
        except ValueError:  # not 32 bytes of hex: a row no bot-bottle wrote
            return None

    def revoke(self, slug: str) -> bool:
        """Revoke ``slug``'s credential; False if it had none live. The relay refuses it from the next request."""
        validate_queue_key(slug, "bottle")
        _set_live(slug, None)
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
                "SELECT token_sha256, revoked_at, created_at FROM relay_credentials WHERE queue_key = :slug",
                {"slug": request.bottle},
            ).fetchone()
        key = self._key(request.bottle, row[0], row[2], live=False) if row is not None else None
        expected = request_mac(key or "00" * 32, request.bottle, request.ts, request.nonce, request.body_sha256)
        if key is None or not hmac.compare_digest(expected, request.mac):
            raise Unauthorized(f"the request is not signed with bottle {request.bottle}'s live relay credential "
                               "(it was replaced, or never minted): prepare the bottle again")
        if row[1] is not None or _live_mint(request.bottle) != row[2]:
            # Revoked in the row, or (whatever the row says) not the mint the host keeps as live.
            raise Unauthorized(f"bottle {request.bottle}'s relay credential was revoked"
                               f"{f' at {row[1]}' if row[1] is not None else ' or replaced'}: prepare the bottle "
                               "again for a new one")
        return key

    def is_live(self, slug: str, key: str) -> bool:
        """Whether ``key`` is still ``slug``'s live credential (neither revoked nor replaced)."""
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT token_sha256, created_at FROM relay_credentials WHERE queue_key = :slug "
                "AND revoked_at IS NULL", {"slug": slug},
            ).fetchone()
        live = self._key(slug, row[0], row[1]) if row is not None else None
        return live is not None and hmac.compare_digest(live, key)

    def live_keys(self, slugs: list[str]) -> dict[str, str]:
        """The live credential's key of each of ``slugs`` that has one (one query, for the revocation watch)."""
        if not slugs:
            return {}
        marks = ", ".join("?" * len(slugs))
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT queue_key, token_sha256, created_at FROM relay_credentials WHERE revoked_at IS NULL "
                f"AND queue_key IN ({marks})", slugs,
            ).fetchall()
        keys = {str(slug): self._key(str(slug), stored, created_at) for slug, stored, created_at in rows}
        return {slug: key for slug, key in keys.items() if key is not None}

    def listing(self) -> list[Credential]:
        """Every bottle that has (or had) a credential, by slug."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue_key, created_at, revoked_at FROM relay_credentials ORDER BY queue_key"
            ).fetchall()
        return [Credential(*row) for row in rows]
