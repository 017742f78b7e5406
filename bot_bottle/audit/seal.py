"""The host's audit key, and the seal it puts on every entry.

Every sidecar has the database directory mounted read-write, so it could
rewrite ``audit_log`` and recompute the sha256 chain. The **key** stops that
from going unnoticed: 32 random bytes in ``~/.bot-bottle/audit.key`` (0600,
created on first use), outside ``~/.bot-bottle/db``, the only directory
sidecars see. Each entry's seal is ``HMAC-SHA256(key, seq:previous seal:entry
hash)``; without the key no seal can be made, so a rewritten chain fails
(docs/architecture.md, "The audit log proves itself"). The proof never
restarts by itself: once a log was sealed, a missing key, or another key in
its place (told apart by ``key_id``, which the anchor keeps), stops every
decision with one line saying how to restore it; a new key is only ever
started by ``bot-bottle audit new-key``.

What this does not prove: a host user who can read the key can still forge
seals; entries sealed for the first time (a log older than sealing, or one
whose seals a downgrade dropped) are trusted as they stand when sealed, or
proven by the anchor (``audit.anchor``) when one exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from bot_bottle.errors import AuditKeyError
from bot_bottle.leftovers import hidden_name, remove_stale
from bot_bottle.paths import bot_bottle_root

KEY_FILE = "audit.key"


GENESIS_SEAL = "0" * 64


KEY_BYTES = 32


def seal_of(key: bytes, seq: int, previous: str, entry_hash: str) -> str:
    """The seal of entry ``seq``: keyed over its place, its hash and the seal before it."""
    # hmac.digest is OpenSSL's one-shot HMAC, the same value as hmac.new(...).hexdigest(); a walk over many
    # entries uses Sealer instead.
    return hmac.digest(key, f"{seq}:{previous}:{entry_hash}".encode("ascii"), "sha256").hex()


class Sealer:
    """``seal_of`` with one key for many entries (verify seals every entry of the log).

    HMAC-SHA256 as RFC 2104 defines it, from the two hash states of the
    padded key, computed once and copied per entry: four times faster than
    a one-shot HMAC per entry, and the same value (``tests/test_audit_store.py``).
    """

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def seal(self, seq: int, previous: str, entry_hash: str) -> str:
        """``seal_of(key, seq, previous, entry_hash)``."""
        inner = self._inner.copy()
        inner.update(f"{seq}:{previous}:{entry_hash}".encode("ascii"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def key_path() -> Path:
    """``~/.bot-bottle/audit.key``: outside the directory that sidecars get."""
    return bot_bottle_root() / KEY_FILE


def key_id(key: bytes) -> str:
    """A name for ``key`` that does not give it away: which key sealed a log (the anchor keeps it)."""
    return hmac.digest(key, b"bot-bottle audit key id", "sha256").hex()[:16]


NEW_KEY_HINT = ("if it is lost for good, start a new one with 'bot-bottle audit new-key --yes' (the log so far stays "
                "checkable by its hash chain, up to where the new key takes over)")


def key_missing(path: Path) -> str:
    """Why nothing is recorded while the key is missing, and how to restore it: one line."""
    return (f"the host's audit key {path} is missing, and this host's audit logs were sealed with it: nothing more "
            f"is recorded until it is back. Restore the file from your copy (0600, 64 hex digits), or, {NEW_KEY_HINT}")


def key_replaced(path: Path, sealed_with: str, current: str) -> str:
    """Why nothing is recorded while another key is in the key's place, and how to restore it: one line."""
    return (f"the host's audit key {path} (key {current}) is not the key that sealed this audit log (key "
            f"{sealed_with}): nothing more is recorded with it. Put the right key back from your copy, or, "
            f"{NEW_KEY_HINT}")


# The key as last read, by file and what stat said of it then: every decision needs the key inside its
# write transaction, and a stat is a tenth of opening and reading the file (docs/benchmarks.md).
_loaded_keys: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}


def load_key() -> bytes | None:
    """The host's audit key, or None if there is none; ``AuditKeyError`` if it cannot be read or is damaged.

    Read again whenever the file's device, inode, size or mtime differ from
    the last read. Never creates it: ``create_key`` does, on first use.
    """
    path = key_path()
    try:
        info = os.stat(path)
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _loaded_keys.get(str(path))
        if cached is not None and cached[0] == seen:
            return cached[1]
        # A key file (or its hard link) left by a creator killed mid-way is removed on the first read.
        remove_stale(path.parent, "new", path.name)
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"cannot read the audit key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise AuditKeyError(f"the audit key {path} is damaged (not {KEY_BYTES} bytes of hex): nothing more is "
                            f"recorded until it is restored from your copy, or, {NEW_KEY_HINT}")
    _loaded_keys[str(path)] = (seen, key)
    return key


# One key creation at a time in a process: its temporary file is named by the process id, and a second
# thread writing it (O_TRUNC) after the first had linked it as the key rewrote the key in place.
_CREATING = threading.Lock()


def create_key() -> bytes:
    """A new key in ``key_path()`` (0600), unless another process or thread made one first (then that one)."""
    with _CREATING:
        return _create_key()


def _create_key() -> bytes:
    path = key_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    remove_stale(path.parent, "new", path.name)
    key = secrets.token_bytes(KEY_BYTES)
    temporary = hidden_name(path, "new")
    try:
        write_synced(temporary, key.hex() + "\n")
        try:
            # link() fails if another process created the key first: theirs is the key then.
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: create the name exclusively and write it
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(key.hex() + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
    except OSError as exc:
        raise AuditKeyError(f"cannot create the audit key {path}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return load_key() or key


def write_synced(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (created 0600, or truncated) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
