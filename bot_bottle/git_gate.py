"""git-gate: the pre-receive hook that scans everything a push adds with gitleaks, and asks the operator.

What is scanned is every object the push would make reachable on this
repository that it does not have yet (see ``git_objects``): each new blob in
full (binary ones too), each new tree's entry names (and a gitlink's id),
each new commit and annotated tag as its raw object (headers and message),
a commit with an ``encoding`` header also as ``git log`` re-encodes it, also where a ref
points straight at a blob or a tree, every object the push carries that no pushed
ref reaches, and the pushed ref names. git reads them
with replace objects and grafts disabled. Each one is written to a private
temporary directory under a neutral name (``<n>.txt``, so no path rule of
gitleaks' default configuration skips it), behind a one-line header that
keeps gitleaks from sniffing it as an archive or binary and skipping it, with
NUL bytes turned into spaces, and ending with a canary line (a random token
gitleaks must report for every copy, or the push is refused as not scanned
completely); then ``gitleaks dir`` scans the directory and the findings are
mapped back to ref, commit, path and line.

Only branches and tags may be pushed: any other ref (``refs/replace/``,
``refs/notes/``, ...) refuses the push with one line saying why.

A finding blocks the push outright. A line the agent marked ``# gitleaks:allow``
is suppressed by gitleaks, so the hook scans with ``--ignore-gitleaks-allow``
and, if that finds anything, again without it: if the second scan finds
nothing, what the first found (every finding marked) is filed as a
``gitleaks-allow`` proposal (each finding: ref, commit, file, line, rule and
the flagged line with the secret masked) and the push waits for the
operator. Only an approval lets it through. Everything else fails closed:
a rejection, the wait running out, a malformed response, gitleaks missing or
failing, git failing, the database unavailable.

The secret itself never leaves this process: every piece of every secret the
scan found, raw or encoded (base64, hex, percent), is masked as ``********``
in whatever is filed; a line gitleaks only flagged after decoding it, or a
secret spanning lines, is filed without its text (file, line, rule and commit
only). gitleaks' report is read from a pipe, and the temporary copies of the
pushed content are deleted when the scan ends.

git calls the hook with ``old new ref`` lines on stdin::

    python -m bot_bottle.git_gate pre-receive --bottle SLUG [--db PATH | --relay FILE] [--timeout S] [--gitleaks PATH]

Without --db or --relay, the queue is what the backend mounted at /run/supervise
(``sidecar_queue.find_transport``): the host's database, or the relay file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot_bottle.db import DB_PATH_IN_CONTAINER
from bot_bottle.errors import BotBottleError, ValidationError
from bot_bottle.git_objects import (
    REENCODED,
    PushedObject,
    checkout_encodings,
    git_env,
    last_error_line,
    pushed_objects,
    tree_blobs,
)
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_GITLEAKS_ALLOW, validate_queue_key
from bot_bottle.redaction import REDACTED, Masker
from bot_bottle.relay_credentials import RELAY_FILE_IN_CONTAINER
from bot_bottle.sidecar_queue import Transport, find_transport

DEFAULT_TIMEOUT_SEC = 300.0
MAX_TIMEOUT_SEC = 24 * 3600.0
GITLEAKS_TIMEOUT_SEC = 600.0
MAX_LINE_CHARS = 200
MAX_DECODE_DEPTH = 5  # gitleaks' default, pinned: how many layers of base64/hex/percent it decodes
MAX_FINDINGS = 200  # a push with more is refused outright: no operator reviews 200 suppressed secrets
_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ZERO_RE = re.compile(r"0{40}|0{64}")
ALLOWED_REF_PREFIXES = ("refs/heads/", "refs/tags/")
# gitleaks sniffs the start of a file and skips it as binary when it looks like
# an archive, a PDF, SQLite, ... (any application/* type, with magic bytes as
# far in as 32 KiB). A GIF signature first makes every copy an image to it,
# which it scans; the newline keeps the content's first line apart from it.
SNIFF_HEADER = b"GIF89a\n"
HEADER_LINES = 1
# Each copy ends with a line holding this scan's canary, a random token in
# GitHub's format: a copy whose canary gitleaks does not report was not
# scanned to its end (skipped for whatever reason), and the push is refused.
CANARY_LINE = "git-gate canary {}\n"
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class GitGateError(BotBottleError):
    """Scanning could not be done (gitleaks missing or failing, a bad report, bad hook input)."""


@dataclass(frozen=True)
class Finding:
    """One gitleaks finding, safe to store: every field has the secrets masked (or the line left out)."""

    ref: str
    commit: str
    file: str
    line: int
    rule: str
    line_text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the proposal's report lists it."""
        return {"ref": self.ref, "commit": self.commit, "file": self.file, "line": self.line,
                "rule": self.rule, "line_text": self.line_text}

    @property
    def key(self) -> tuple[str, str, int, str]:
        """What makes two findings the same finding (the ref aside)."""
        return (self.commit, self.file, self.line, self.rule)


@dataclass(frozen=True)
class RefUpdate:
    """One line of pre-receive input: a ref moving from ``old`` to ``new``."""

    old: str
    new: str
    ref: str

    @property
    def deleted(self) -> bool:
        """True when the push deletes the ref (nothing to scan)."""
        return bool(_ZERO_RE.fullmatch(self.new))

    @property
    def created(self) -> bool:
        """True when the push creates the ref."""
        return bool(_ZERO_RE.fullmatch(self.old))


def parse_hook_input(lines: Iterable[str]) -> list[RefUpdate]:
    """Parse git's ``old new ref`` lines; ``GitGateError`` on anything else."""
    updates = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not _SHA_RE.fullmatch(parts[0]) or not _SHA_RE.fullmatch(parts[1]) \
                or not parts[2].startswith("refs/"):
            raise GitGateError(f"hook input line {number} is not 'old-sha new-sha refs/...': {line[:100]!r}")
        updates.append(RefUpdate(*parts))
    return updates


def redact_line(text: str, secrets: Iterable[str], matches: Iterable[str] = ()) -> str:
    """``text`` with every piece of each secret (raw or encoded) and each whole match masked, bounded.

    Control characters are escaped so the line cannot drive the operator's
    terminal, and a long line is cut to ``MAX_LINE_CHARS``.
    """
    return _display(Masker(secrets).mask(_mask_whole(text, matches)))


def _mask_whole(text: str, matches: Iterable[str]) -> str:
    for match in sorted({m for m in matches if m}, key=len, reverse=True):
        text = text.replace(match, REDACTED)
    return text


def _shown(text: str, masker: Masker, matches: Iterable[str], *, what: str) -> str:
    """A field of the report: ``text`` masked and bounded, or left out if decoding it reveals a secret.

    A ref or a name (``what``) is cut in the middle, a line at its end.
    """
    masked = masker.mask(_mask_whole(text, matches))
    if masker.reveals_decoded(masked):  # a secret two or more encodings deep: no window matched it
        return f"({what} not shown: it holds a secret in an encoded form)"
    return _display(masked, keep_end=what != "line")


def _display(text: str, *, keep_end: bool = False) -> str:
    """``text`` on one line, printable, at most ``MAX_LINE_CHARS`` characters.

    A name (``keep_end``: a path, a ref) is cut in the middle, so its end
    stays: ``fixtures/aaaa…`` would hide that the file is ``…/prod/keys.env``.
    """
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text.strip())
    if len(text) <= MAX_LINE_CHARS:
        return text
    if keep_end:
        head = MAX_LINE_CHARS // 3
        return text[:head] + "…" + text[len(text) - (MAX_LINE_CHARS - head - 1) :]
    return text[: MAX_LINE_CHARS - 1] + "…"


def parse_report(raw: str) -> list[dict[str, Any]]:
    """gitleaks' JSON report: a list of finding objects. ``GitGateError`` if it is anything else."""
    try:
        report = json.loads(raw) if raw.strip() else []
    except ValueError:
        raise GitGateError("gitleaks' report is not JSON") from None
    if not isinstance(report, list):
        raise GitGateError("gitleaks' report is not a list of findings")
    for item in report:
        if not isinstance(item, dict):
            raise GitGateError("gitleaks' report holds something that is not a finding")
        for key, kind in (("RuleID", str), ("File", str), ("Commit", str), ("StartLine", int), ("Secret", str)):
            if not isinstance(item.get(key), kind):
                raise GitGateError(f"a gitleaks finding lacks {key}")
        optional: tuple[tuple[str, type], ...] = (("Match", str), ("EndLine", int), ("StartColumn", int),
                                                  ("Tags", list))
        for key, expected in optional:
            if key in item and not isinstance(item[key], expected):
                raise GitGateError(f"a gitleaks finding has a malformed {key}")
    return report


def refused_ref(updates: Sequence[RefUpdate]) -> str | None:
    """Why the push may not touch one of its refs, or None: only branches and tags are accepted."""
    for update in updates:
        if not update.ref.startswith(ALLOWED_REF_PREFIXES):
            kind = update.ref.split("/")[1] if update.ref.count("/") >= 2 else update.ref
            return (f"{update.ref[:100]} is not a branch or a tag: git-gate accepts only refs/heads/ and "
                    f"refs/tags/ (refs/{kind}/ is not reviewed; replace refs and notes change what git shows)")
    return None


@dataclass(frozen=True)
class _Scanned:
    """What one scanned file holds, as the operator will be told: ref, commit and a file label."""

    ref: str
    commit: str
    label: str
    ref_names: bool = False  # the list of pushed ref names (a flag: a path may be called anything)
    copy_of: int = -1  # for a second copy of an object (its NUL bytes removed), the number of the first


def _label(obj: PushedObject) -> str:
    if not obj.reached:
        kind = "commit" if obj.kind == REENCODED else obj.kind
        return f"({kind} object no pushed ref reaches{', re-encoded' if obj.kind == REENCODED else ''})"
    if obj.kind in ("commit", "tag"):
        return f"({obj.kind} object)"  # its raw text: headers, a blank line, the message
    if obj.kind == REENCODED:
        return "(commit object, as git log shows it re-encoded from its encoding header)"
    if obj.kind == "tree":
        return f"{obj.path}/ (tree)" if obj.path else "(tree)"
    return obj.path or "(blob)"


_ARCHIVE_ESCAPE_RE = re.compile(rb"%(?:x([0-9a-fA-F]{2})|%|n)")
# Characters a page or an editor draws as nothing (zero-width spaces and joiners, bidi controls,
# soft hyphen, variation selectors, tags): a token with them inside reads, and copies, as one.
_INVISIBLE_RE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
                           "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f]")


def _archive_escape(match: re.Match[bytes]) -> bytes:
    if match[1] is not None:
        return bytes([int(match[1], 16)])
    return b"%" if match[0] == b"%%" else b"\n"


def _views(data: bytes) -> list[tuple[str, bytes]]:
    """Other ways the same content is shown, each to be scanned as well: ``(how, content)``.

    UTF-8 text with invisible characters (a zero-width space inside a token)
    is also read without them, as a reader sees it.
    UTF-16 and UTF-32 text is ASCII with NUL bytes between: gitleaks does not
    decode it, editors and forges show it as text; without its NULs it reads
    plainly in every byte alignment (lines stay where they were). A file with
    ``export-subst`` has each ``$Format:...$`` expanded by ``git archive``
    (and every forge's tarball download), where ``%x67`` is the byte ``g``.
    """
    views = []
    text = _wide_text(data)
    if text is not None and _INVISIBLE_RE.search(text):
        views.append(("invisible characters removed", _INVISIBLE_RE.sub("", text).encode("utf-8")))
    if b"\0" in data:
        views.append(("NUL bytes removed: UTF-16/32 text", data.replace(b"\0", b"")))
    if b"$Format:" in data:
        views.append(("$Format: escapes expanded, as git archive does", _ARCHIVE_ESCAPE_RE.sub(_archive_escape, data)))
    return views


def _wide_text(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 with more than ASCII (what a working-tree-encoding can turn into a token)."""
    if data.isascii():
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # git cannot convert it either, and checks it out as it is


def _encode(text: str, encoding: str) -> bytes | None:
    """``text`` in ``encoding`` as git would write it (iconv, like git, for what Python does not know).

    None if it cannot be converted (git would not check the file out either).
    ``GitGateError`` if the encoding is unknown to both and iconv is missing,
    since the file could not be scanned as it is checked out.
    """
    try:
        return text.encode(encoding)
    except LookupError:
        pass
    except (UnicodeError, ValueError):
        return None
    try:
        result = subprocess.run(["iconv", "-f", "UTF-8", "-t", encoding], input=text.encode("utf-8"),
                                capture_output=True, timeout=GITLEAKS_TIMEOUT_SEC)
    except (OSError, subprocess.TimeoutExpired):
        raise GitGateError(f"cannot convert a file to its working-tree-encoding {encoding[:40]!r} to scan it "
                           "(no iconv)") from None
    return result.stdout if result.returncode == 0 else None


class PushScan:
    """A push's new objects, copied under neutral names into a private directory and scanned by gitleaks.

    Use as a context manager: the directory (0700, files 0600) and every copy
    in it are deleted on leaving, whatever happened.
    """

    def __init__(self, repo: Path, gitleaks: str) -> None:
        self.repo = repo
        self.gitleaks = gitleaks
        self.folder: Path | None = None
        self._files: list[_Scanned] = []
        self._ref_lines: list[RefUpdate] = []
        self._cached: tuple[int, list[bytes]] = (-1, [])
        self.canary = "ghp_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))

    def __enter__(self) -> PushScan:
        self.folder = Path(tempfile.mkdtemp(prefix="git-gate-"))  # mkdtemp makes it 0700
        return self

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _write(self, scanned: _Scanned, data: bytes) -> None:
        assert self.folder is not None, "PushScan is used outside its with block"
        path = self.folder / f"{len(self._files)}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(SNIFF_HEADER)
            out.write(data.replace(b"\0", b" "))  # NUL is not text; a space keeps columns and lines
            out.write(b"\n" if data and not data.endswith(b"\n") else b"")
            out.write(CANARY_LINE.format(self.canary).encode("ascii"))
        self._files.append(scanned)

    def add(self, updates: Sequence[RefUpdate]) -> int:
        """Copy every object the (not deleted) updates add, and their ref names; how many files."""
        kept = [u for u in updates if not u.deleted]
        if kept:
            # The ref names are pushed too, one per line (line n = the n-th kept update).
            self._write(_Scanned("", "", "(ref name)", ref_names=True), "".join(f"{u.ref}\n" for u in kept).encode())
            self._ref_lines = kept
        commits: list[str] = []
        seen: set[str] = set()
        wide: list[tuple[int, PushedObject, str]] = []  # UTF-8 blobs with more than ASCII: (copy, object, text)
        for obj in pushed_objects(self.repo, [(u.ref, u.new) for u in kept]):
            first = len(self._files)
            self._write(_Scanned(obj.ref, obj.commit, _label(obj)), obj.data)
            self._add_views(first, obj, _views(obj.data))
            seen.add(obj.oid)
            if obj.kind == "commit" and obj.reached:
                commits.append(obj.oid)
            elif obj.kind == "blob" and (text := _wide_text(obj.data)) is not None:
                wide.append((first, obj, text))
        encodings = sorted(checkout_encodings(self.repo, commits)) if commits else []
        if encodings:
            # A file already on the remote is checked out converted too, once a pushed tree says so.
            for oid, path, data in tree_blobs(self.repo, commits, seen):
                if (text := _wide_text(data)) is not None:
                    old = PushedObject(oid=oid, kind="blob", ref="", commit="", path=f"{path} (already on the remote)",
                                       data=b"")
                    wide.append((-1, old, text))
        for encoding in encodings:
            for first, obj, text in wide:
                converted = _encode(text, encoding)
                if converted is not None:
                    how = f"checked out as {encoding[:40]} (working-tree-encoding)"
                    views = [(how, converted), *((f"{how}, {more}", view) for more, view in _views(converted))]
                    self._add_views(first, obj, views)
        return len(self._files)

    def _add_views(self, first: int, obj: PushedObject, views: Iterable[tuple[str, bytes]]) -> None:
        for how, data in views:
            self._write(_Scanned(obj.ref, obj.commit, f"{_label(obj)} ({how})", copy_of=first), data)

    def run(self, *, ignore_allow: bool) -> list[dict[str, Any]]:
        """gitleaks' findings over the copies (``--ignore-gitleaks-allow`` too, if asked)."""
        if self.folder is None or not self._files:
            return []
        command = [self.gitleaks, "dir", "--no-banner", "--log-level", "error", "--report-format", "json",
                   "--report-path", "-", "--exit-code", "0", "--max-decode-depth", str(MAX_DECODE_DEPTH),
                   "--gitleaks-ignore-path", str(self.folder)]
        if ignore_allow:
            command.append("--ignore-gitleaks-allow")
        command.append(".")
        # gitleaks' default configuration, always: no configuration from the environment.
        env = {k: v for k, v in git_env().items() if not k.startswith("GITLEAKS_")}
        try:
            result = subprocess.run(command, cwd=self.folder, env=env, capture_output=True,
                                    timeout=GITLEAKS_TIMEOUT_SEC)
        except FileNotFoundError:
            raise GitGateError(f"gitleaks is not installed ({self.gitleaks} not found)") from None
        except OSError as exc:
            raise GitGateError(f"cannot run gitleaks ({self.gitleaks}): {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise GitGateError(f"gitleaks did not finish within {GITLEAKS_TIMEOUT_SEC:g} s") from None
        if result.returncode != 0:
            raise GitGateError(f"gitleaks failed (exit {result.returncode}): {last_error_line(result.stderr)}")
        items = parse_report(result.stdout.decode("utf-8", errors="replace"))
        where = [self._index(item) for item in items]  # each must be a place gitleaks was given
        scanned = {number for number, item in zip(where, items, strict=True) if item["Secret"] == self.canary}
        if len(scanned) != len(self._files):
            missing = min(set(range(len(self._files))) - scanned)
            raise GitGateError(f"gitleaks did not scan {len(self._files) - len(scanned)} of the "
                               f"{len(self._files)} pushed objects to their end (first: "
                               f"{_display(self._files[missing].label)[:80]}); the push cannot be scanned completely")
        return [item for item in items if item["Secret"] != self.canary]

    def _index(self, item: dict[str, Any]) -> int:
        name = Path(str(item["File"])).name
        number = int(name[:-4]) if re.fullmatch(r"\d{1,9}\.txt", name) else -1
        if not 0 <= number < len(self._files) or item["StartLine"] <= HEADER_LINES:
            raise GitGateError(f"gitleaks reported a finding at {name[:40]!r}:{item['StartLine']}, "
                               "which is not a place it was given")
        return number

    def _object(self, item: dict[str, Any]) -> int:
        """The number of the (first) copy of the object a finding is in."""
        number = self._index(item)
        return self._files[number].copy_of if self._files[number].copy_of >= 0 else number

    def _line(self, number: int, line: int, column: int) -> str:
        """Line ``line`` (counted as gitleaks counts: only ``\\n`` ends one) of file ``number``, near ``column``."""
        assert self.folder is not None
        if self._cached[0] != number:  # findings come sorted by file: each copy is read once
            self._cached = (number, (self.folder / f"{number}.txt").read_bytes()[len(SNIFF_HEADER):].split(b"\n"))
        lines = self._cached[1][:-2]  # the canary's line, and the empty piece after its newline
        text = lines[line - 1] if 0 < line <= len(lines) else b""
        if len(text) > 2 * MAX_LINE_CHARS:
            # Only the part around the finding is shown; it is masked as a whole below.
            start = max(0, column - 1 - MAX_LINE_CHARS // 2)
            text = text[start : start + 2 * MAX_LINE_CHARS]
        return text.decode("utf-8", errors="replace")

    def findings(self, items: Sequence[dict[str, Any]], masker: Masker, matches: Sequence[str]) -> list[Finding]:
        """The report's findings, safe to store: every piece of a secret masked, or the line left out."""
        # Lines where gitleaks decoded something: the encoded text on them is a secret's too
        # (in both copies of an object that has two).
        decoded_at = {(self._object(i), line) for i in items if _decoded(i)
                      for line in range(i["StartLine"], max(i["StartLine"], i.get("EndLine", 0)) + 1)}
        # A finding the object's first copy has already (same line, rule and secret) is not listed
        # again from its second; another secret on that line is.
        in_first = {(self._object(i), i["StartLine"], i["RuleID"], i["Secret"]) for i in items
                    if self._files[self._index(i)].copy_of < 0}
        findings = []
        for item in sorted(items, key=lambda i: (self._index(i), i["StartLine"])):
            number = self._index(item)
            scanned = self._files[number]
            same = (scanned.copy_of, item["StartLine"], item["RuleID"], item["Secret"])
            if scanned.copy_of >= 0 and same in in_first:
                continue
            line = item["StartLine"] - HEADER_LINES
            ref, commit = scanned.ref, scanned.commit
            if scanned.ref_names:
                update = self._ref_lines[line - 1] if line <= len(self._ref_lines) else None
                ref, commit = (update.ref, update.new) if update else ("", "")
            if _decoded(item) or (self._object(item), item["StartLine"]) in decoded_at:
                text = "(line not shown: gitleaks found a secret on it by decoding it)"
            elif item.get("EndLine", item["StartLine"]) != item["StartLine"] or "\n" in item["Secret"]:
                text = "(line not shown: the secret spans several lines)"
            else:
                raw = self._line(number, line, int(item.get("StartColumn", 1)))
                text = _shown(raw, masker, matches, what="line")
            findings.append(Finding(
                ref=_shown(ref, masker, matches, what="ref"), commit=commit,
                file=_shown(scanned.label, masker, matches, what="name"), line=line,
                rule=_display(str(item["RuleID"])), line_text=text,
            ))
        return findings


def _decoded(item: dict[str, Any]) -> bool:
    """True if gitleaks found this secret only after decoding (base64, hex, percent) the text."""
    return any(str(tag).startswith("decoded:") for tag in item.get("Tags") or [])


def secrets_of(items: Iterable[dict[str, Any]]) -> tuple[Masker, list[str]]:
    """A masker for every secret in gitleaks' findings, and their whole matches."""
    items = list(items)
    return Masker(str(i["Secret"]) for i in items), [str(i.get("Match", "")) for i in items]


def report_payload(updates: Sequence[RefUpdate], findings: Sequence[Finding], masker: Masker | None = None) -> str:
    """The ``gitleaks-allow`` proposal's payload: the pushed refs and each suppressed finding, as JSON.

    The ref names pass through ``masker`` (the scan's secrets), like every field of the findings did.
    """
    ordered = sorted(findings, key=lambda f: (f.ref, f.commit, f.file, f.line, f.rule))
    masker = masker if masker is not None else Masker(())
    document = {
        "pushed": [{"ref": _shown(u.ref, masker, (), what="ref"), "old": u.old, "new": u.new}
                   for u in updates if not u.deleted],
        "findings": [f.to_dict() for f in ordered],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _describe(finding: Finding) -> str:
    return f"{finding.rule} in {finding.file}:{finding.line} (commit {finding.commit[:8]}, {finding.ref})"


def pre_receive(
    lines: Iterable[str],
    *,
    bottle: str,
    transport: Transport,
    repo: Path,
    gitleaks: str,
    timeout: float = DEFAULT_TIMEOUT_SEC,
    poll_interval: float = 0.5,
    err: TextIO = sys.stderr,
) -> int:
    """Decide a push: 0 lets it through, 1 refuses it. Every path prints one line on ``err``.

    Fails closed: any error, timeout or anything but an approval refuses the push.
    """
    def say(message: str) -> None:
        print(f"git-gate: {message}", file=err, flush=True)

    try:
        updates = parse_hook_input(lines)
        problem = refused_ref(updates)
        if problem:
            say(f"push refused: {problem}")
            return 1
        # The copies of the pushed content live only while they are scanned: the
        # directory is gone before the push waits for the operator.
        with PushScan(repo, gitleaks) as scan:
            scan.add(updates)
            # Everything, marked lines included, first: a clean push (the usual one) needs one
            # gitleaks run. Only when that finds something does a second run tell the unmarked apart.
            everything = scan.run(ignore_allow=True)
            unmarked = scan.run(ignore_allow=False) if everything else []
            masker, matches = secrets_of(everything + unmarked)
            blocking = bool(unmarked)
            findings = scan.findings(unmarked if blocking else everything, masker, matches)
        if blocking:
            more = f" and {len(findings) - 1} more" if len(findings) > 1 else ""
            say(f"push refused: gitleaks found a secret: {_describe(findings[0])}{more}; "
                "remove it from the commits (rewrite them) and push again")
            return 1
        suppressed = findings
        if not suppressed:
            say("push accepted: gitleaks found no secrets")
            return 0
        if len(suppressed) > MAX_FINDINGS:
            say(f"push refused: {len(suppressed)} findings marked gitleaks:allow is too many to review; split the push")
            return 1
        refs = _shown(", ".join(sorted({u.ref for u in updates})), masker, (), what="ref")
        # The host's database on its mount (used as it is, never migrated), or the relay.
        queue = transport.open(bottle)
        try:
            count = len(suppressed)
            proposal = queue.submit(
                TOOL_GITLEAKS_ALLOW,
                report_payload(updates, suppressed, masker),
                f"push to {refs}: {count} gitleaks finding(s) "
                "marked '# gitleaks:allow'; the push waits for your approval",
            )
            say(f"{count} finding(s) marked gitleaks:allow (first: {_describe(suppressed[0])}); "
                f"waiting up to {timeout:g} s for the operator (proposal {proposal.short_id})")
            response = queue.wait_for_response(proposal.id, timeout, poll_interval)
            if response is None:
                say(f"push refused: no decision within {timeout:g} s; proposal {proposal.short_id} stays "
                    "pending: push again once the operator has approved it")
                return 1
            if response.status == STATUS_APPROVED:
                queue.archive(proposal.id)  # the approval is spent on this push
                say(f"push accepted: the operator approved ({response.notes})")
                return 0
            if response.status == STATUS_REJECTED:
                say(f"push refused: the operator rejected it: {response.notes}")
                return 1
            say(f"push refused: unexpected decision {response.status!r} on a report-only proposal")
            return 1
        finally:
            queue.close()
    except BotBottleError as exc:
        say(f"push refused: {exc}")
        return 1
    except Exception as exc:  # fail closed on anything unforeseen, with a line the agent can read
        say(f"push refused: internal error in git-gate: {exc!r}")
        return 1


def render_hook(
    bottle: str,
    *,
    python: str = sys.executable,
    db_path: str | os.PathLike[str] | None = None,
    relay_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    gitleaks: str | None = None,
    pythonpath: str | None = None,
) -> str:
    """The text of a ``pre-receive`` hook that runs this gate for ``bottle``."""
    validate_queue_key(bottle, "bottle")
    command = [python, "-m", "bot_bottle.git_gate", "pre-receive", "--bottle", bottle]
    if db_path is not None:
        command += ["--db", os.fspath(db_path)]
    if relay_file is not None:
        command += ["--relay", os.fspath(relay_file)]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    if gitleaks is not None:
        command += ["--gitleaks", gitleaks]
    env = f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else ""
    return (
        "#!/bin/sh\n"
        "# Installed by bot-bottle git-gate: scans every object a push adds with gitleaks and asks\n"
        "# the operator about findings marked gitleaks:allow. Refuses the push on any error.\n"
        f"exec env {env}{shlex.join(command)}\n"
    )


def install_hook(repo: Path, bottle: str, **options: Any) -> Path:
    """Write the pre-receive hook into a (bare) repository; returns its path."""
    # A bare repository keeps hooks/ at its top; a work tree under .git/.
    hooks = repo / ".git" / "hooks" if (repo / ".git").is_dir() else repo / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-receive"
    hook.write_text(render_hook(bottle, **options))
    hook.chmod(0o755)
    return hook


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_TIMEOUT_SEC:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_TIMEOUT_SEC:g} seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    """git-gate's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bot_bottle.git_gate",
        description="git-gate: scan every object a push adds (blobs, trees, commits, tags, ref names) with "
        "gitleaks; ask the operator about findings marked gitleaks:allow. Only refs/heads/ and refs/tags/ "
        "may be pushed.",
        epilog="examples:\n"
        "  python -m bot_bottle.git_gate install-hook /srv/git/app.git --bottle web-1\n"
        "  (git runs) python -m bot_bottle.git_gate pre-receive --bottle web-1 < old-new-ref-lines",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, text in (("pre-receive", "run as git's pre-receive hook (reads 'old new ref' lines on stdin)"),
                       ("install-hook", "write the pre-receive hook into a repository")):
        verb = verbs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name == "install-hook":
            verb.add_argument("repo", type=Path, help="the repository (bare, as git-gate serves it)")
        verb.add_argument("--bottle", required=True, metavar="SLUG", help="the bottle that pushes here")
        verb.add_argument("--db", type=Path, metavar="PATH", default=None,
                          help=f"database file (default: {DB_PATH_IN_CONTAINER} on the sidecar's mount, or the "
                          f"relay file {RELAY_FILE_IN_CONTAINER}; a push is refused at once when neither is there)")
        verb.add_argument("--relay", type=Path, metavar="FILE", default=None,
                          help="a relay file ({url, token, bottle}): ask the operator through the host relay")
        verb.add_argument("--timeout", type=_timeout, metavar="SECONDS", default=None,
                          help=f"how long a push waits for the operator (default {DEFAULT_TIMEOUT_SEC:g})")
        verb.add_argument("--gitleaks", metavar="PATH", default=None, help="the gitleaks binary (default: on PATH)")
    return parser


def _exit_on_signal(number: int, frame: object) -> None:
    print(f"git-gate: push refused: stopped by signal {number}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status is the hook's verdict (0 accept, 1 refuse, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        validate_queue_key(args.bottle, "--bottle")
    except ValidationError as exc:
        print(f"git-gate: error: {exc}", file=sys.stderr)
        return 2
    if args.verb == "install-hook":
        if args.db is not None and args.relay is not None:
            print("git-gate: error: give either --db or --relay, not both", file=sys.stderr)
            return 2
        hook = install_hook(args.repo, args.bottle, db_path=args.db, relay_file=args.relay, timeout=args.timeout,
                            gitleaks=args.gitleaks)
        print(hook)
        return 0
    # The sidecar's queue must be the host's database on its mount, or the relay: refuse
    # at once rather than create a database and wait for a decision nobody can see.
    try:
        transport = find_transport(args.db, args.relay)
    except BotBottleError as exc:
        print(f"git-gate: push refused: {exc}", file=sys.stderr)
        return 1
    gitleaks = args.gitleaks or shutil.which("gitleaks") or "gitleaks"
    # Killed politely (the push abandoned, the server stopping), the hook unwinds
    # like on an error, so the copies of the pushed content are removed.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)
    return pre_receive(
        sys.stdin, bottle=args.bottle, transport=transport, repo=Path.cwd(), gitleaks=gitleaks,
        timeout=DEFAULT_TIMEOUT_SEC if args.timeout is None else args.timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
