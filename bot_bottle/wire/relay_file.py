"""``relay.json``: what a relay-backed sidecar finds at its constant path, written by the host.

``Supervise.prepare`` writes ``{url, token, bottle}`` into the bottle's own
directory (``relay.credentials.bottle_relay_dir``), which the backend mounts
read-only at ``/run/supervise``; the sidecar reads it there
(``read_endpoint_file``), and refuses, in one line, a file it cannot use.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.connection import FILE_MODE
from bot_bottle.errors import MissingMount, ValidationError
from bot_bottle.paths import DB_DIR_IN_CONTAINER, private_dir
from bot_bottle.records import validate_queue_key

TOKEN_BYTES = 32  # 256 bits, from the operating system's CSPRNG


RELAY_FILENAME = "relay.json"


RELAY_FILE_IN_CONTAINER = f"{DB_DIR_IN_CONTAINER}/{RELAY_FILENAME}"


MAX_RELAY_FILE_BYTES = 4096


# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


_URL_RE = re.compile(r"http://[A-Za-z0-9.\-\[\]:]{1,300}/")


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
    private_dir(directory)
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
