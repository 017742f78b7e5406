"""Credentials of relay-backed bottles: one token each, of which the host keeps only the sha256.

A sidecar in a VM reaches the host database only through ``bot-bottle relay``
(docs/architecture.md, "The relay"). ``Supervise.prepare`` mints the bottle's
token (``RelayCredentials.mint``, 256 random bits), stores its sha256 in
``relay_credentials`` (migration 0005) and writes ``relay.json``
(``wire.relay_file``) into a directory of the bottle's own
(``bottle_relay_dir``: ``~/.bot-bottle/relay/bottles/SLUG``), which the
backend mounts read-only at ``/run/supervise`` instead of the database
directory. How both ends sign with it is ``wire.signing``. A revoked or
replaced credential verifies nothing from the next request on.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.db import DatabaseUser
from bot_bottle.errors import Unauthorized
from bot_bottle.paths import bot_bottle_root
from bot_bottle.records import validate_queue_key
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

    def live_keys(self, slugs: list[str]) -> dict[str, str]:
        """The live credential's key of each of ``slugs`` that has one (one query, for the revocation watch)."""
        if not slugs:
            return {}
        marks = ", ".join("?" * len(slugs))
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT queue_key, token_sha256 FROM relay_credentials WHERE revoked_at IS NULL "
                f"AND queue_key IN ({marks})", slugs,
            ).fetchall()
        return {str(slug): str(key) for slug, key in rows}

    def listing(self) -> list[Credential]:
        """Every bottle that has (or had) a credential, by slug."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT queue_key, created_at, revoked_at FROM relay_credentials ORDER BY queue_key"
            ).fetchall()
        return [Credential(*row) for row in rows]
