"""Time as bot-bottle stores it and reads it from people: UTC ISO 8601 text, and durations.

Stored times are fixed-width UTC strings (``2026-12-04T20:18:56.123456Z``),
so text order is time order and the file reads well in ``sqlite3``. A person
gives a time as any ISO 8601 date or time (UTC when no zone is given) and a
duration as ``90m``, ``8h``, ``7d``, ``2w`` or a mix (``1d12h``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from bot_bottle.errors import ValidationError

# The stored form: fixed width and ASCII digits, so text order is time order (a Unicode digit that \d takes,
# such as a full-width one, sorts after every ASCII one).
TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


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


_DURATION_RE = re.compile(r"(?:(\d{1,6})w)?(?:(\d{1,7})d)?(?:(\d{1,8})h)?(?:(\d{1,9})m)?(?:(\d{1,10})s)?")
# The same units with any number of digits: a duration too long for the one above (999999999999d), said so.
_LONG_DURATION_RE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(field_name: str, text: str, *, now: str | None = None, times: bool = True) -> int:
    """Seconds from ``now`` (default: the present) to what a person wrote: a duration or a later time.

    A duration is whole units, largest first: ``90m``, ``8h``, ``7d``, ``2w``,
    ``1d12h``. A time is ISO 8601 (UTC when it has no zone), and must lie in
    the future (the seconds to it rounded up); ``times=False`` refuses one (a setting that is a length, such
    as ``pending-ttl``, has no moment to end at). ``ValidationError`` (naming
    ``field_name``) for anything else, a duration of nothing, or a time that
    has passed.
    """
    spelled = text.strip().lower()
    match = _DURATION_RE.fullmatch(spelled)
    if spelled and match is not None and any(match.groups()):
        seconds = sum(int(part) * size for part, (_, size) in zip(match.groups(), _UNITS, strict=True) if part)
        if seconds < 1:
            raise ValidationError(field_name, f"{text.strip()[:40]!r} is no time at all: give one, such as 8h or 7d")
        return seconds
    too_long = _LONG_DURATION_RE.fullmatch(spelled)
    if too_long is not None and any(too_long.groups()):
        raise ValidationError(field_name, f"{text.strip()[:40]!r} is longer than anything here may last: give a "
                              "duration such as 8h, 7d or 2w")
    if not times:
        raise ValidationError(field_name, f"{text.strip()[:40]!r} is not a length of time: give a duration such as "
                              "90m, 8h, 7d, 2w or 1d12h")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", spelled):
        raise ValidationError(field_name, f"{text.strip()[:40]!r} is neither a duration (90m, 8h, 7d, 2w, 1d12h) "
                              "nor a time (2026-12-31T18:00Z)")
    until = parse_timestamp(field_name, text)
    start = now if now is not None else utc_now()
    # Up to the next whole second, so that what starts after this look (a decision) ends at the time asked, or
    # within the second after it; cut down, '--for 2026-12-31T18:00Z' ended at 17:59:59.38.
    seconds = math.ceil((as_datetime(until) - as_datetime(start)).total_seconds())
    if seconds < 1:
        raise ValidationError(field_name, f"{until} has passed (it is {start} now): give a later time")
    return seconds


def as_datetime(timestamp: str) -> datetime:
    """A stored timestamp as an aware datetime; ``ValidationError`` for anything not in the stored form."""
    moment = moment_of(timestamp)
    if moment is None:
        raise ValidationError("timestamp", f"{str(timestamp)[:40]!r} is not a stored UTC time")
    return moment


def later(timestamp: str, seconds: float) -> str:
    """The stored time ``seconds`` after ``timestamp`` (capped at the year 9999)."""
    try:
        return format_timestamp(as_datetime(timestamp) + timedelta(seconds=seconds))
    except (OverflowError, ValidationError):
        return "9999-12-31T23:59:59.999999Z"


def spell_duration(seconds: float) -> str:
    """``seconds`` as a person reads a duration: ``7d``, ``8h``, ``1d12h``, ``45m``, ``20s`` (the two largest units)."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in _UNITS[1:]:
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def seconds_between(start: str, end: str) -> float:
    """How many seconds after ``start`` ``end`` is (negative when it is before), both stored times."""
    return (as_datetime(end) - as_datetime(start)).total_seconds()


def time_left(now: str, ends_at: str | None) -> str:
    """How long from ``now`` until ``ends_at``, for a screen: ``7d``, ``3h20m``; ``for good`` for no end,
    ``ended`` when it is past, ``unreadable`` where either is not a stored time (a sidecar can write any text
    into the file: the screen still shows the row)."""
    if ends_at is None:
        return "for good"
    start, end = moment_of(now), moment_of(ends_at)
    if start is None or end is None:
        return "unreadable"
    seconds = (end - start).total_seconds()
    return spell_duration(seconds) if seconds > 0 else "ended"


def moment_of(timestamp: object) -> datetime | None:
    """A stored UTC timestamp as a datetime; None for None or anything that is not one.

    Sidecars can write the database file, so a time read back is not trusted
    to parse: a screen shows what this cannot read as unreadable.
    """
    if not isinstance(timestamp, str) or not TIMESTAMP_RE.fullmatch(timestamp):
        return None
    try:
        # The form is checked above, so fromisoformat reads exactly what strptime did, fifty times faster:
        # a decision computes a grant's end in its write transaction, and a screen one time left per row.
        return datetime.fromisoformat(timestamp)
    except ValueError:  # a day or an hour that does not exist
        return None
