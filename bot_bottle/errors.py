"""Every exception bot-bottle defines, in one tree.

This module imports nothing from the project, so every layer can raise and
catch the same classes. ``BotBottleError`` is what bot-bottle raises on
purpose, with a message for a person (what happened, what to do); the CLI
turns any of them into one line on stderr. The few exceptions outside it are
signals between the parts of one server, caught where they are raised and
never shown as they are::

    BotBottleError                    raised on purpose; the message is for a person
    ├── ValidationError (ValueError)  a value refused before anything was written; .field names it
    ├── DatabaseError                 the database file cannot be used as it is (left untouched)
    │   ├── SQLiteTooOld              Python's SQLite is older than bot-bottle needs
    │   ├── NotADatabase              the path holds something else
    │   ├── CorruptDatabase           SQLite reports it malformed
    │   ├── ReadOnlyDatabase          the file, or the directory its journal needs, is not writable
    │   ├── CannotOpenDatabase        the path cannot be opened or created
    │   ├── DatabaseBusy              another process held the lock past the busy timeout
    │   └── DatabaseReplaced          the file at the path is not the one this process opened
    ├── MigrationError                a migration could not be discovered, applied or reverted
    │   ├── MigrationFilesError       the migration files themselves are wrong
    │   ├── MigrationDrift            an applied migration's file changed since
    │   ├── SchemaTooNew              a newer bot-bottle migrated the database
    │   ├── SchemaTooOld              a sidecar met an older schema (migrating is the host's job)
    │   ├── WouldDropProtected        a downgrade would drop audit entries nobody wrote out
    │   └── VersionOutOfReach         (and a ValidationError) a --to the database cannot go to from where it is
    ├── BackupError                   a backup could not be written
    ├── AuditTampered                 the audit log shows a change made without the host's key
    ├── AuditKeyError                 the host's audit key is missing, damaged or not the one that sealed the log
    ├── AnchorNotWritten              recorded and committed, but the audit anchor could not be moved past it
    ├── NotFound                      no record has that id (or prefix)
    ├── AmbiguousId                   an id prefix matches several records
    ├── AlreadyDecided                the proposal has a decision; the first one stands
    ├── ReadChanged                   a routes file was approved for the bottle since the one decided was shown
    ├── AlreadyEnded                  the grant or rule asked to end has ended already
    ├── ProposalExpired               the proposal's end passed: it can no longer be decided
    ├── StillPending                  the operation needs a decided proposal
    ├── QuotaExceeded                 the bottle has as much pending as it may
    ├── MissingMount                  a sidecar finds neither the host's database nor a relay file
    │   ├── MountAccessDenied         it is mounted, but the sidecar's user may not use it
    │   └── UnsafeMount               it is mounted where SQLite's locks or shared memory may not reach the host
    ├── Unauthorized                  a relay request without a live credential of its bottle
    ├── RelayUnreachable              the sidecar could not reach the operator's relay
    ├── RelayError                    the relay answered, but not with what was asked
    ├── RelayAlreadyRunning           another relay holds this host's relay lock
    ├── GitGateError                  git-gate could not scan a push (so it refuses it)
    │   └── ScanLimitExceeded         the push asks more of git-gate than its limits allow
    ├── GitObjectsError               git could not list or read a push's objects
    └── UnsafePath                    a private file or directory is a link, or not what it should be

    Signals inside one server (never shown as they are):
    RpcError              a JSON-RPC error to answer with: its code and message
    ToolInputError        an MCP tool call whose arguments the model must correct (an isError result)
    RetryLater            the relay was not reached, or asked to be asked again: retry until the deadline
    Refused               a dashboard request answered with a status and a page saying why
    DeadlineExceeded      (a TimeoutError) a request was not sent within its deadline
    HeadersTooLarge       a request's line and headers went past their byte limit
"""

from __future__ import annotations


class BotBottleError(Exception):
    """Base class of every error bot-bottle raises on purpose.

    The message is meant for a person: it says what happened and, where there
    is one, what to do about it.
    """


class ValidationError(BotBottleError, ValueError):
    """A value given to bot-bottle is not acceptable; ``field`` names which.

    Raised before anything is written, so the database is unchanged.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class DatabaseError(BotBottleError):
    """The database file cannot be used as it is (and was left untouched)."""


class SQLiteTooOld(DatabaseError):
    """The SQLite library Python is linked against is older than we need."""


class NotADatabase(DatabaseError):
    """The path holds a file that is not an SQLite database."""


class CorruptDatabase(DatabaseError):
    """SQLite reports the database as malformed."""


class ReadOnlyDatabase(DatabaseError):
    """The database, or the directory that must hold its journal, is not writable."""


class CannotOpenDatabase(DatabaseError):
    """The database path cannot be opened or created (a directory, a missing parent, ...)."""


class DatabaseBusy(DatabaseError):
    """Another process held the database lock for longer than the busy timeout."""


class DatabaseReplaced(DatabaseError):
    """The file at the database's path is not the one this process opened: removed, or another put there.

    ``title``, ``explanation`` and ``todo`` say it for a page: what, how, and what to do.
    """

    def __init__(self, title: str, explanation: str, todo: str) -> None:
        super().__init__(f"{explanation} {todo}")
        self.title, self.explanation, self.todo = title, explanation, todo


class MigrationError(BotBottleError):
    """A migration could not be discovered, applied or reverted."""


class VersionOutOfReach(MigrationError, ValidationError):
    """A version to migrate to (``--to``) that the database cannot go to from where it is: what was asked is
    refused (exit 2), nothing done."""

    def __init__(self, message: str) -> None:
        ValidationError.__init__(self, "to", message)


class MigrationFilesError(MigrationError):
    """The migration files themselves are wrong (naming, gaps, a missing down file...)."""


class MigrationDrift(MigrationError):
    """An applied migration's file has changed since it was applied."""


class SchemaTooNew(MigrationError):
    """The database was migrated by a newer bot-bottle than this one."""


class SchemaTooOld(MigrationError):
    """A sidecar met the host's database at an older schema than its own: migrating is the host's job."""


class WouldDropProtected(MigrationError):
    """A down migration would drop rows of a protected table that nobody wrote out; ``table``, ``count``."""

    def __init__(self, message: str, table: str, count: int) -> None:
        super().__init__(message)
        self.table = table
        self.count = count


class BackupError(BotBottleError):
    """A backup could not be written (the database itself was not changed)."""


class AuditTampered(BotBottleError):
    """The audit log holds a change made without the host's key; nothing more is appended to it."""


class AuditKeyError(BotBottleError):
    """The host's audit key is missing, unreadable, damaged or another than the one that sealed the log.

    Nothing is recorded until it is restored, or a new key is started on
    purpose (``bot-bottle audit new-key``).
    """


class AnchorNotWritten(BotBottleError):
    """What was recorded is committed and stands, but the audit anchor could not be moved to it (a full disk).

    ``result`` is what the call would have returned (a decision's ``Response``),
    so the caller can say what was recorded.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class NotFound(BotBottleError):
    """No record matches the id (or id prefix) that was asked for."""


class AmbiguousId(BotBottleError):
    """An id prefix matches more than one record."""


class AlreadyDecided(BotBottleError):
    """A decision was asked for a proposal that has one already (the first wins)."""


class ReadChanged(BotBottleError):
    """What approving a proposal grants changed after it was shown, though the proposal did not: another routes
    file was approved for its bottle meanwhile (or the one on record revoked), so the one shown is read against
    another. Nothing recorded."""


class AlreadyEnded(BotBottleError):
    """A grant or a rule asked to end has ended already (revoked, or past its end): nothing to revoke."""


class ProposalExpired(BotBottleError):
    """A decision was asked for a proposal past its end (``expires_at``): silence is not consent."""


class StillPending(BotBottleError):
    """An operation needs a decided proposal, and this one has no decision yet."""


class QuotaExceeded(BotBottleError):
    """A bottle asked to file a proposal while it already has as many pending as it may."""


class MissingMount(BotBottleError):
    """A sidecar's database is not the host's mounted one, so nothing may be filed there."""


class MountAccessDenied(MissingMount):
    """What the backend mounted for the sidecar is there, but the user the sidecar runs as may not use it."""


class UnsafeMount(MissingMount):
    """The host's database is mounted where the sidecar and the host may not share one kernel: never opened."""


class Unauthorized(BotBottleError):
    """A request to the relay carries no credential, or one that is unknown or revoked."""


class RelayUnreachable(BotBottleError):
    """A relay-backed sidecar could not reach the operator's relay (so nothing was filed or decided)."""


class RelayError(BotBottleError):
    """The relay answered, but not with what the sidecar asked for (a refusal it cannot map, a bad answer)."""


class RelayAlreadyRunning(BotBottleError):
    """Another relay holds this host's relay lock."""


class GitGateError(BotBottleError):
    """Scanning could not be done (gitleaks missing or failing, a bad report, bad hook input)."""


class ScanLimitExceeded(GitGateError):
    """A push asks more of git-gate than its limits allow (refs, sizes, archive layers, time, memory)."""


class GitObjectsError(BotBottleError):
    """git could not list or read the pushed objects; the push cannot be scanned completely."""


# Signals inside one server ------------------------------------------------------------------------


class UnsafePath(BotBottleError):
    """A file or directory bot-bottle keeps private is a link, or not what it should be: nothing is done."""


class RpcError(Exception):
    """A JSON-RPC error to answer with: its code (``wire.jsonrpc``) and a message for the client."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ToolInputError(Exception):
    """A tool call whose arguments cannot be acted on: answered as a tool result with ``isError``.

    The message is for the agent's model, which reads it and tries again, so
    it says what was wrong and what is expected.
    """


class RetryLater(Exception):
    """The relay could not be reached, or asked to be asked again: the client retries until its deadline."""


class Refused(Exception):
    """A dashboard request answered with ``status`` (an HTTP status) and a page saying why."""

    def __init__(self, status: int, title: str, explanation: str) -> None:
        super().__init__(explanation)
        self.status, self.title, self.explanation = status, title, explanation


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before the client sent all of it."""


class HeadersTooLarge(Exception):
    """The request line and headers went past their byte limit."""
