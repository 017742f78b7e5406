"""Migration files: where they are, what they hold, and whether they are well formed.

Migrations are SQL files ``NNNN_name.up.sql`` / ``NNNN_name.down.sql`` in the
top-level ``migrations/`` folder (shipped inside the package as
``bot_bottle/migrations``), numbered from 0001 without gaps, every up with its
down. ``discover`` reads them, splits each into statements (never
``executescript``, which commits first: docs/decisions.md, "Journal and
transactions"), refuses what the runner must own (transactions, the version,
the foreign-key switch), and computes each file's checksum over its
normalized statements, so comments can change without counting as drift.
Applying them is ``migrate``'s job.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.errors import MigrationFilesError

_FILE_RE = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.(?P<direction>up|down)\.sql")
# Statements a migration may not contain: the runner owns the transaction
# (a COMMIT inside a file would end it early and break atomicity) and the
# version number.
_FORBIDDEN_FIRST_WORDS = frozenset(
    {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH", "DETACH"}
)
_LEADING_COMMENTS_RE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_RUNNER_PRAGMA_RE = re.compile(r"PRAGMA\s+(?:main\.)?(user_version|journal_mode|foreign_keys)\b", re.I)


@dataclass(frozen=True)
class Migration:
    """One numbered migration: its up and down SQL, split into statements."""

    version: int
    name: str
    up_statements: tuple[str, ...]
    down_statements: tuple[str, ...]
    up_sha256: str
    down_sha256: str = ""

    @property
    def label(self) -> str:
        """``NNNN_name``, as the files are named."""
        return f"{self.version:04d}_{self.name}"



def migrations_dir() -> Path:
    """The folder that holds the migration files, wherever the package runs from.

    An installed wheel carries them inside the package (``bot_bottle/migrations``);
    a source checkout and the sidecar image keep them in the top-level
    ``migrations/`` beside ``bot_bottle/``.
    """
    package = Path(__file__).resolve().parent.parent  # bot_bottle/, above this schema/ package
    installed = package / "migrations"
    if installed.is_dir():
        return installed
    return package.parent / "migrations"


# SQL as tokens, each a run of what ``split_statements`` and ``normalized`` treat alike: a comment, a
# quoted string or name (a doubled quote stands for itself; ``[...]`` has none), whitespace, ``;``, or
# other code. One ``finditer`` walks a file instead of a Python step per character (a CLI verb's start-up
# reads every migration file: docs/benchmarks.md, "Start-up"). Every character belongs to one token; the
# quoted forms are unrolled loops, so an unclosed quote costs linear time, not backtracking.
_TOKEN_RE = re.compile(
    r"(?P<comment>--[^\n]*(?:\n|\Z)|/\*.*?\*/)"
    r"|(?P<open_comment>/\*)"
    r"|(?P<quoted>'[^']*(?:''[^']*)*'|\"[^\"]*(?:\"\"[^\"]*)*\"|`[^`]*(?:``[^`]*)*`|\[[^\]]*\])"
    r"|(?P<open_quote>['\"`\[])"
    r"|(?P<space>\s+)"
    r"|(?P<semicolon>;)"
    r"|(?P<code>[^-/'\"`\[\s;]+|[-/])",
    re.DOTALL,
)


def split_statements(sql: str, where: str = "SQL") -> list[str]:
    """Split ``sql`` into single statements, respecting quotes, comments and trigger bodies.

    ``executescript`` would do this for us, but it COMMITs first on every
    Python version, so the runner executes one statement at a time inside its
    own transaction. Statements that are only comments are dropped.
    """
    statements: list[str] = []
    start = 0
    has_code = False
    for token in _TOKEN_RE.finditer(sql):
        kind = token.lastgroup
        if kind == "open_comment":
            raise MigrationFilesError(f"{where}: a /* comment is never closed")
        if kind == "open_quote":
            raise MigrationFilesError(f"{where}: a quoted string or name is never closed")
        if kind == "semicolon":
            chunk = sql[start : token.end()]
            # A ';' inside a trigger body does not end the CREATE TRIGGER.
            if sqlite3.complete_statement(chunk):
                if has_code:
                    statements.append(chunk.strip())
                start = token.end()
                has_code = False
        elif kind in ("quoted", "code"):
            has_code = True
    if has_code:
        raise MigrationFilesError(f"{where}: the last statement is not complete (a missing ';'?)")
    return statements


def layout_aside(sql: str) -> str:
    """``sql`` with each run of whitespace made one space, quotes or not: how two texts of one schema object are
    compared where layout is no difference (``migrate.live_schema_drift``, ``schema.guard``)."""
    return " ".join(sql.split())


def normalized(statement: str) -> str:
    """``statement`` without comments and with each run of whitespace outside quotes made one space.

    What the checksums cover: a migration's meaning, not its comments, so a
    comment can be corrected without the file counting as edited (drift).
    """
    out: list[str] = []
    for token in _TOKEN_RE.finditer(statement):
        kind = token.lastgroup
        if kind == "open_quote":
            raise MigrationFilesError("statement: a quoted string or name is never closed")
        if kind in ("comment", "space", "open_comment"):
            if out and out[-1] != " ":
                out.append(" ")
            if kind == "open_comment":
                break  # an unclosed /* runs to the end
        else:
            out.append(token.group())
    return "".join(out).strip()


def statements_sha256(statements: tuple[str, ...]) -> str:
    """The checksum the history records for a migration file: over its normalized statements."""
    return hashlib.sha256("\n".join(normalized(s) for s in statements).encode("utf-8")).hexdigest()


# Before checksums covered statements only, the runner recorded the sha256 of
# the whole up file. These are those files' checksums, as released; a history
# row holding one is not drift, and the next upgrade rewrites it.
LEGACY_FILE_SHA256 = {
    1: "d9f07693de9692e475d7327bd5b3a65c3e051363672528dd216058271bdc6ca8",
    2: "92f27080d2b0d55968f7914243c07a515babc74d9387d308f334fd179e82676f",
    3: "b35c19a96dde083038a2fdb8d7fb3d831cbf0831c8a11ee16ce56052846efe01",
}


def strip_leading_comments(statement: str) -> str:
    """``statement`` from its first word of code on (leading whitespace and comments removed)."""
    skipped = _LEADING_COMMENTS_RE.match(statement)
    return statement[skipped.end() :] if skipped else statement


def _is_forbidden(statement: str) -> str | None:
    """The reason ``statement`` may not appear in a migration, or None."""
    code = strip_leading_comments(statement)
    match = re.match(r"[A-Za-z_]+", code)
    word = match.group(0).upper() if match else ""
    if word in _FORBIDDEN_FIRST_WORDS:
        return word
    pragma = _RUNNER_PRAGMA_RE.match(code)
    return f"PRAGMA {pragma.group(1).lower()}" if pragma else None


def _load_statements(path: Path) -> tuple[tuple[str, ...], bytes]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MigrationFilesError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise MigrationFilesError(f"cannot read {path}: {exc.strerror}") from None
    statements = split_statements(text, where=str(path))
    if not statements:
        raise MigrationFilesError(f"{path} holds no SQL statement: every migration file must do something")
    for number, statement in enumerate(statements, 1):
        forbidden = _is_forbidden(statement)
        if forbidden:
            raise MigrationFilesError(
                f"{path}, statement {number}: {forbidden} is not allowed in a migration; "
                "the runner owns the transaction, the foreign-key switch and user_version"
            )
    return tuple(statements), raw


def discover(directory: Path | None = None) -> tuple[Migration, ...]:
    """Read and validate every migration in ``directory`` (default: ``migrations_dir()``).

    Raises ``MigrationFilesError`` for a missing folder, a badly named ``.sql``
    file, a duplicate number, a gap, an up without its down (or the reverse),
    an empty file, or a statement the runner does not allow.
    """
    folder = directory if directory is not None else migrations_dir()
    if not folder.is_dir():
        raise MigrationFilesError(
            f"no migrations folder at {folder}: the bot-bottle installation is incomplete; reinstall it"
        )
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.fullmatch(entry.name)
        if not match:
            raise MigrationFilesError(
                f"{entry}: migration files are named NNNN_name.up.sql and NNNN_name.down.sql "
                "(four digits, lower-case name)"
            )
        version = int(match["version"])
        if version == 0:
            raise MigrationFilesError(f"{entry}: migrations are numbered from 0001")
        direction = match["direction"]
        if names.setdefault(version, match["name"]) != match["name"]:
            raise MigrationFilesError(
                f"{folder}: migration {version:04d} has two names, "
                f"{names[version]!r} and {match['name']!r}; each number has exactly one pair"
            )
        if direction in found.setdefault(version, {}):
            raise MigrationFilesError(f"{folder}: two {direction} files for migration {version:04d}")
        found[version][direction] = entry
    migrations: list[Migration] = []
    for expected, version in enumerate(sorted(found), 1):
        if version != expected:
            raise MigrationFilesError(
                f"{folder}: migration {expected:04d} is missing (the numbers jump to {version:04d}); "
                "migrations are numbered without gaps"
            )
        files = found[version]
        for direction in ("up", "down"):
            if direction not in files:
                other = files["down" if direction == "up" else "up"]
                raise MigrationFilesError(
                    f"{other.name} has no {direction} file "
                    f"({version:04d}_{names[version]}.{direction}.sql): every up needs its down"
                )
        up_statements, _ = _load_statements(files["up"])
        down_statements, _ = _load_statements(files["down"])
        migrations.append(
            Migration(
                version=version,
                name=names[version],
                up_statements=up_statements,
                down_statements=down_statements,
                up_sha256=statements_sha256(up_statements),
                down_sha256=statements_sha256(down_statements),
            )
        )
    return tuple(migrations)
