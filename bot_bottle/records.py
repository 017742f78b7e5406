"""Records of the supervise queue and the audit log, their constants, and validation.

Everything here is plain data: frozen dataclasses, the closed sets of tools
and statuses, and ``validate_*`` functions that raise ``ValidationError`` (a
``ValueError``) naming the offending field. The stores validate with these
before they write, and the schema's CHECK constraints hold the same rules a
second time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from bot_bottle.errors import ValidationError

TOOL_EGRESS_BLOCK = "egress-block"
TOOL_EGRESS_ALLOW = "egress-allow"
TOOL_GITLEAKS_ALLOW = "gitleaks-allow"
TOOL_EGRESS_TOKEN_ALLOW = "egress-token-allow"
TOOLS = (TOOL_EGRESS_BLOCK, TOOL_EGRESS_ALLOW, TOOL_GITLEAKS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW)
# Report-only tools carry a report, not a file: the operator may approve (with a
# reason) or reject, never modify.
REPORT_ONLY_TOOLS = frozenset({TOOL_GITLEAKS_ALLOW, TOOL_EGRESS_TOKEN_ALLOW})

STATUS_APPROVED = "approved"
STATUS_MODIFIED = "modified"
STATUS_REJECTED = "rejected"
# What the operator (or a standing rule on the operator's behalf) may decide.
STATUSES = (STATUS_APPROVED, STATUS_MODIFIED, STATUS_REJECTED)
# Nobody decided before the proposal's end: closed by the host, fail closed.
STATUS_EXPIRED = "expired"
RESPONSE_STATUSES = (*STATUSES, STATUS_EXPIRED)
# Not a stored status: how listings describe a proposal without a response.
STATUS_PENDING = "pending"

ACTION_OPERATOR_EDIT = "operator-edit"
ACTION_EXPIRED = STATUS_EXPIRED
ACTION_GRANT_REVOKED = "grant-revoked"
ACTION_RULE_ADDED = "rule-added"
ACTION_RULE_REVOKED = "rule-revoked"
ACTION_SETTING_CHANGED = "setting-changed"
AUDIT_ACTIONS = (*RESPONSE_STATUSES, ACTION_OPERATOR_EDIT, ACTION_GRANT_REVOKED, ACTION_RULE_ADDED,
                 ACTION_RULE_REVOKED, ACTION_SETTING_CHANGED)
# How a standing rule answers a matching proposal.
EFFECT_APPROVE = "approve"
EFFECT_REJECT = "reject"
EFFECTS = (EFFECT_APPROVE, EFFECT_REJECT)
# --remember: the same decision for this bottle's matching proposals, or for every bottle's.
REMEMBER_BOTTLE = "bottle"
REMEMBER_ALL = "all"
REMEMBER_SCOPES = (REMEMBER_BOTTLE, REMEMBER_ALL)

DEFAULT_POLL_INTERVAL_SEC = 0.5

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_FILE_BYTES = 1024 * 1024
MAX_TEXT_BYTES = 64 * 1024
MAX_NAME_BYTES = 256
# A diff of two files of up to 1 MiB each can exceed either file.
MAX_DIFF_BYTES = 4 * MAX_PAYLOAD_BYTES
# Per bottle, what its pending (undecided, unarchived) proposals may add up to:
# far above what an honest agent files while it waits for one person, far below
# what fills a disk or an operator's screen.
DEFAULT_MAX_PENDING = 50
DEFAULT_MAX_PENDING_BYTES = 16 * 1024 * 1024
PROPOSAL_ID_LENGTH = 32
SHORT_ID_LENGTH = 8
# The fewest digits that name a proposal, grant or rule: one or two digits match whichever id happens to start
# so, and a revocation (of a standing rejection too) should not land on a rule the operator did not mean.
MIN_ID_PREFIX = 4

# Rules and settings for every bottle are audited under this queue key (the audit log names one bottle per entry),
# so no bottle may have it as its slug (``validate_bottle_slug``).
ALL_BOTTLES = "all-bottles"
QUEUE_KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PROPOSAL_ID_RE = re.compile(r"[0-9a-f]{32}")
ID_PREFIX_RE = re.compile(r"[0-9a-f]{1,32}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
def validate_text(
    field_name: str, value: object, *, max_bytes: int, required: bool = False
) -> str:
    """Check that ``value`` is a str that encodes as UTF-8 within ``max_bytes``, without NUL.

    ``required`` also refuses an empty or blank string. Returns the value unchanged.
    """
    if not isinstance(value, str):
        raise ValidationError(field_name, f"must be a string, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field_name, f"is not valid UTF-8 (an unpaired surrogate at character {exc.start})"
        ) from None
    if size > max_bytes:
        raise ValidationError(field_name, f"is {size} bytes, over the limit of {max_bytes} bytes")
    if "\x00" in value:
        raise ValidationError(field_name, f"contains a NUL character at {value.index(chr(0))}")
    if required and not value.strip():
        raise ValidationError(field_name, "must not be empty")
    return value


def validate_optional_text(field_name: str, value: object, *, max_bytes: int) -> str | None:
    """``validate_text`` for a field that may also be ``None``."""
    if value is None:
        return None
    return validate_text(field_name, value, max_bytes=max_bytes)


def validate_queue_key(value: object, field_name: str = "queue_key") -> str:
    """A bottle slug: lower-case letters, digits, ``.``, ``_``, ``-``; 1-64 chars; starts alphanumeric."""
    if not isinstance(value, str):
        raise ValidationError(field_name, f"must be a string, not {type(value).__name__}")
    if not QUEUE_KEY_RE.fullmatch(value):
        raise ValidationError(
            field_name,
            f"{value[:80]!r} is not a bottle slug (1-64 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter or digit)",
        )
    return value


def validate_bottle_slug(value: object, field_name: str = "bottle") -> str:
    """A bottle's own slug (``validate_queue_key``), but not ``ALL_BOTTLES``: the audit log's name for entries of
    every bottle, which a bottle of that name would share (its rules and filings read as every bottle's)."""
    slug = validate_queue_key(value, field_name)
    if slug == ALL_BOTTLES:
        raise ValidationError(field_name, f"{ALL_BOTTLES!r} is reserved: the audit log names every bottle's rules "
                                          "and settings so; give the bottle another slug")
    return slug


def validate_tool(value: object) -> str:
    """One of ``TOOLS``."""
    if not isinstance(value, str) or value not in TOOLS:
        raise ValidationError("tool", f"{value!r} is not one of {', '.join(TOOLS)}")
    return value


def validate_status(value: object) -> str:
    """One of ``STATUSES`` (approved, modified, rejected)."""
    if not isinstance(value, str) or value not in STATUSES:
        raise ValidationError("status", f"{value!r} is not one of {', '.join(STATUSES)}")
    return value


def validate_proposal_id(value: object) -> str:
    """A whole proposal id: 32 lower-case hex digits."""
    if not isinstance(value, str) or not PROPOSAL_ID_RE.fullmatch(value):
        raise ValidationError("proposal_id", f"{str(value)[:80]!r} is not a proposal id (32 hex digits)")
    return value


def validate_id_prefix(value: object, what: str = "proposal") -> str:
    """A prefix of a ``what``'s id (proposal, grant, rule: 4-32 hex digits); upper case is accepted and folded."""
    if not isinstance(value, str) or not ID_PREFIX_RE.fullmatch(value.lower()):
        raise ValidationError("id", f"{str(value)[:80]!r} is not a {what} id or prefix (hex digits)")
    if len(value) < MIN_ID_PREFIX:
        raise ValidationError("id", f"{value!r} is too short to name a {what}: give at least {MIN_ID_PREFIX} of "
                                    f"its digits (lists show {SHORT_ID_LENGTH})")
    return value.lower()


def validate_sha256(field_name: str, value: object) -> str | None:
    """``None`` or a sha256 digest as 64 lower-case hex digits."""
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value):
        raise ValidationError(field_name, f"{str(value)[:80]!r} is not a sha256 digest (64 lower-case hex digits)")
    return value


class _ProposalView:
    """What a whole proposal and a listing's summary of it have in common."""

    id: str
    tool: str

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, as the CLI and TUI show the id."""
        return self.id[:SHORT_ID_LENGTH]

    @property
    def report_only(self) -> bool:
        """True for the tools whose proposals may be approved or rejected but not modified."""
        return self.tool in REPORT_ONLY_TOOLS

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict, its fields in order."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Proposal(_ProposalView):
    """A request filed by a bottle's sidecar for the operator to decide."""

    id: str
    queue_key: str
    tool: str
    payload: str
    justification: str
    current_file: str | None
    current_file_hash: str | None
    created_at: str
    archived_at: str | None = None
    # After this the proposal can no longer be approved (None: filed before proposals expired).
    expires_at: str | None = None


@dataclass(frozen=True)
class ProposalSummary(_ProposalView):
    """What a listing shows of a proposal: everything but the payload and the current file.

    Listings read these so that a bottle's large proposals cost nothing until
    one is opened (``QueueStore.get``).
    """

    id: str
    queue_key: str
    tool: str
    justification: str
    current_file_hash: str | None
    created_at: str
    archived_at: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class Quota:
    """How much one bottle may have pending at once: proposals, and their stored bytes.

    The bytes are the UTF-8 sizes of each pending proposal's payload,
    justification and current file; one a rule decided, or that expired,
    counts for an hour from its filing (``queue_reads.RULE_DECIDED_WINDOW_SEC``). ``QueueStore.submit`` checks
    both in its write transaction, so concurrent submitters cannot overshoot.
    """

    max_pending: int = DEFAULT_MAX_PENDING
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES

    def __post_init__(self) -> None:
        for name in ("max_pending", "max_pending_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(name, "must be a whole number of at least 1")


DEFAULT_QUOTA = Quota()


@dataclass(frozen=True)
class Decision:
    """An operator's decision before it is recorded: validated once, when it is made.

    The fields' own rules are checked here (a known status, UTF-8 text within
    its limits, a decider); which decisions a proposal allows is
    ``decisions.check_decision``'s, and the schema holds the basic rules a
    second time.
    """

    status: str
    notes: str
    final_file: str | None
    decided_by: str
    # How long what an approval grants lasts, in seconds (None: the tool's default); for a rejection
    # remembered, how long the rule stands (None: for good). Held to the tool's maximum when recorded.
    grant_seconds: int | None = None
    # None, or REMEMBER_BOTTLE / REMEMBER_ALL: the same decision for matching proposals, as a standing rule.
    remember: str | None = None

    def __post_init__(self) -> None:
        validate_status(self.status)
        validate_text("notes", self.notes, max_bytes=MAX_TEXT_BYTES)
        validate_optional_text("final_file", self.final_file, max_bytes=MAX_FILE_BYTES)
        validate_text("decided_by", self.decided_by, max_bytes=MAX_NAME_BYTES, required=True)
        if self.grant_seconds is not None and (isinstance(self.grant_seconds, bool)
                                               or not isinstance(self.grant_seconds, int) or self.grant_seconds < 1):
            raise ValidationError("for", "must be a whole number of seconds, at least 1")
        if self.remember is not None and self.remember not in REMEMBER_SCOPES:
            raise ValidationError("remember", f"{self.remember!r} is not one of {', '.join(REMEMBER_SCOPES)}")
        # A rejection grants nothing that could end: a length given alone would be dropped without a word.
        if self.status == STATUS_REJECTED and self.grant_seconds is not None and self.remember is None:
            # (In words every screen can show: the CLI names its option before them, --for.)
            raise ValidationError("for", "a rejection has no length: a length says how long a remembered rejection "
                                  "(a rule) stands, so remember it, for this bottle or every bottle, or give no "
                                  "length")


@dataclass(frozen=True)
class Response:
    """The operator's decision on one proposal. There is at most one per proposal."""

    proposal_id: str
    status: str
    notes: str
    final_file: str | None
    decided_by: str
    decided_at: str

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return {
            "proposal_id": self.proposal_id,
            "status": self.status,
            "notes": self.notes,
            "final_file": self.final_file,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the append-only, hash-chained audit log.

    Build one with ``seq``, ``ts`` and the hashes left at their defaults;
    ``AuditStore.append`` fills them in and returns the stored entry.
    """

    queue_key: str
    action: str
    actor: str
    tool: str | None = None
    proposal_id: str | None = None
    notes: str = ""
    diff: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    ts: str | None = None
    prev_hash: str | None = None
    hash: str | None = None
    seal: str | None = None  # the host's keyed seal (audit.seal), None until sealed

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict (the form ``audit export`` writes)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "queue_key": self.queue_key,
            "action": self.action,
            "tool": self.tool,
            "proposal_id": self.proposal_id,
            "actor": self.actor,
            "notes": self.notes,
            "diff": self.diff,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "seal": self.seal,
        }


def sha256_text(text: str) -> str:
    """The sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: dict[str, Any]) -> str:
    """``value`` as the JSON text the audit log stores and hashes: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validated_details(entry: AuditEntry) -> str:
    """Check an audit entry before it is appended; its ``details`` as canonical JSON.

    Raises ``ValidationError`` naming the first field that is wrong.
    """
    validate_queue_key(entry.queue_key)
    if entry.action not in AUDIT_ACTIONS:
        raise ValidationError("action", f"{entry.action!r} is not one of {', '.join(AUDIT_ACTIONS)}")
    validate_text("actor", entry.actor, max_bytes=MAX_NAME_BYTES, required=True)
    validate_optional_text("tool", entry.tool, max_bytes=MAX_NAME_BYTES)
    if entry.proposal_id is not None:
        validate_proposal_id(entry.proposal_id)
    validate_text("notes", entry.notes, max_bytes=MAX_TEXT_BYTES)
    validate_text("diff", entry.diff, max_bytes=MAX_DIFF_BYTES)
    if not isinstance(entry.details, dict):
        raise ValidationError("details", "must be a JSON object (a dict)")
    try:
        details_json = canonical_json(entry.details)
    except (TypeError, ValueError) as exc:
        raise ValidationError("details", f"is not JSON-serialisable ({exc})") from None
    validate_text("details", details_json, max_bytes=MAX_DIFF_BYTES)
    return details_json
