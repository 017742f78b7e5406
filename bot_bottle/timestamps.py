"""Time as bot-bottle stores it and reads it from people: UTC ISO 8601 text, and durations.

Stored times are fixed-width UTC strings (``2026-12-04T20:18:56.123456Z``),
so text order is time order and the file reads well in ``sqlite3``. A person
gives a time as any ISO 8601 date or time (UTC when no zone is given) and a
duration as ``90m``, ``8h``, ``7d``, ``2w`` or a mix (``1d12h``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot_bottle.errors import ValidationError

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# The stored form: fixed width, so text order is time order.
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def utc_now() -> str:
    """The current UTC time in the stored ISO 8601 form (microseconds, ``Z``)."""
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    """``moment`` (aware, any zone) as the stored UTC ISO 8601 string."""
    if moment.tzinfo is None:
        raise ValidationError("timestamp", "needs a time zone (for example 2026-11-27T08:00:00Z)")
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError("timestamp", f"{moment.isoformat()} is outside the years 0001-9999 in UTC") from None
    # Not strftime: its %Y does not pad years before 1000 on every platform, and stored times must sort as text.
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
            f"{utc.microsecond:06d}Z")


def parse_timestamp(field_name: str, text: str) -> str:
    """Parse an ISO 8601 date or time given by a person into the stored UTC form.

    A date alone means its midnight UTC; a time without a zone is taken as UTC.
    """
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        raise ValidationError(
            field_name, f"{text!r} is not an ISO 8601 date or time (for example 2026-11-27T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return format_timestamp(moment)
    except ValidationError:
        raise ValidationError(field_name, f"{text!r} is outside the years 0001-9999 in UTC") from None


def moment_of(timestamp: object) -> datetime | None:
    """A stored UTC timestamp as a datetime; None for None or anything that is not one.

    Sidecars can write the database file, so a time read back is not trusted
    to parse: a screen shows what this cannot read as unreadable.
    """
    if not isinstance(timestamp, str) or not TIMESTAMP_RE.fullmatch(timestamp):
        return None
    try:
        return datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
