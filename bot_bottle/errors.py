"""The package's exceptions: one base class and a few named kinds.

This module imports nothing from the project, so every layer (records, the
connection, the migration runner, the stores, the CLI) can raise and catch the
same classes. The CLI turns any ``BotBottleError`` into one line on stderr.
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


class MigrationError(BotBottleError):
    """A migration could not be discovered, applied or reverted."""


class MigrationFilesError(MigrationError):
    """The migration files themselves are wrong (naming, gaps, a missing down file...)."""


class MigrationDrift(MigrationError):
    """An applied migration's file has changed since it was applied."""


class SchemaTooNew(MigrationError):
    """The database was migrated by a newer bot-bottle than this one."""


class AuditTampered(BotBottleError):
    """The audit log holds a change made without the host's key; nothing more is appended to it."""


class SchemaTooOld(MigrationError):
    """A sidecar met the host's database at an older schema than its own: migrating is the host's job."""


class NotFound(BotBottleError):
    """No record matches the id (or id prefix) that was asked for."""


class AmbiguousId(BotBottleError):
    """An id prefix matches more than one record."""


class AlreadyDecided(BotBottleError):
    """A decision was asked for a proposal that has one already (the first wins)."""


class StillPending(BotBottleError):
    """An operation needs a decided proposal, and this one has no decision yet."""


class QuotaExceeded(BotBottleError):
    """A bottle asked to file a proposal while it already has as many pending as it may."""


class MissingMount(BotBottleError):
    """A sidecar's database is not the host's mounted one, so nothing may be filed there."""


class Unauthorized(BotBottleError):
    """A request to the relay carries no credential, or one that is unknown or revoked."""


class RelayUnreachable(BotBottleError):
    """A relay-backed sidecar could not reach the operator's relay (so nothing was filed or decided)."""


class RelayError(BotBottleError):
    """The relay answered, but not with what the sidecar asked for (a refusal it cannot map, a bad answer)."""
