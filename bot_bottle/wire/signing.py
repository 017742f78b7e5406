"""The relay's signed protocol: each request signed with its bottle's credential, each answer by the relay.

The token never crosses the wire. Both ends key HMAC-SHA256 with its sha256
(``token_sha256``): each request carries its bottle, a time, a nonce, the
sha256 of its body and their MAC (``sign_request``, checked by the relay
through ``SignedRequest``); each answer carries a MAC over the request's
nonce, the status and the answer's body (``sign_answer``,
``answer_is_genuine``). So whoever can watch or intercept the traffic between
a VM and the host (an agent on the same virtual network, say) learns no
credential, cannot file or wait as the bottle, and cannot answer for the
relay: a forged "approved" fails the sidecar's check.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from bot_bottle.errors import Unauthorized, ValidationError
from bot_bottle.records import validate_queue_key
from bot_bottle.wire.relay_file import (
    RelayEndpoint,
)


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
