"""The push's new objects, copied under neutral names into a private directory and scanned by gitleaks.

Each one is written to a private temporary directory under a neutral name
(``<n>.txt``, so no path rule of gitleaks' default configuration skips it),
behind a one-line header that keeps gitleaks from sniffing it as an archive
or binary and skipping it, with NUL bytes turned into spaces, and ending with
a canary line (a random token gitleaks must report for every copy, or the
push is refused as not scanned completely); then ``gitleaks dir`` scans the
directory and the findings are mapped back to ref, commit, path and line.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.findings import (
    MAX_LINE_CHARS,
    Finding,
    decoded,
    display,
    parse_report,
    shown,
)
from bot_bottle.sidecar.git_gate.objects import (
    REENCODED,
    PushedObject,
    checkout_encodings,
    git_env,
    last_error_line,
    pushed_objects,
    tree_blobs,
)
from bot_bottle.sidecar.git_gate.refs import (
    RefUpdate,
)
from bot_bottle.sidecar.git_gate.views import (
    encode_as,
    other_views,
    wide_text,
)
from bot_bottle.text.redaction import Masker

GITLEAKS_TIMEOUT_SEC = 600.0


MAX_DECODE_DEPTH = 5  # gitleaks' default, pinned: how many layers of base64/hex/percent it decodes


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
            self._add_views(first, obj, other_views(obj.data))
            seen.add(obj.oid)
            if obj.kind == "commit" and obj.reached:
                commits.append(obj.oid)
            elif obj.kind == "blob" and (text := wide_text(obj.data)) is not None:
                wide.append((first, obj, text))
        encodings = sorted(checkout_encodings(self.repo, commits)) if commits else []
        if encodings:
            # A file already on the remote is checked out converted too, once a pushed tree says so.
            for oid, path, data in tree_blobs(self.repo, commits, seen):
                if (text := wide_text(data)) is not None:
                    old = PushedObject(oid=oid, kind="blob", ref="", commit="", path=f"{path} (already on the remote)",
                                       data=b"")
                    wide.append((-1, old, text))
        for encoding in encodings:
            for first, obj, text in wide:
                converted = encode_as(text, encoding)
                if converted is not None:
                    how = f"checked out as {encoding[:40]} (working-tree-encoding)"
                    views = [(how, converted), *((f"{how}, {more}", view) for more, view in other_views(converted))]
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
                               f"{display(self._files[missing].label)[:80]}); the push cannot be scanned completely")
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
        decoded_at = {(self._object(i), line) for i in items if decoded(i)
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
            if decoded(item) or (self._object(item), item["StartLine"]) in decoded_at:
                text = "(line not shown: gitleaks found a secret on it by decoding it)"
            elif item.get("EndLine", item["StartLine"]) != item["StartLine"] or "\n" in item["Secret"]:
                text = "(line not shown: the secret spans several lines)"
            else:
                raw = self._line(number, line, int(item.get("StartColumn", 1)))
                text = shown(raw, masker, matches, what="line")
            findings.append(Finding(
                ref=shown(ref, masker, matches, what="ref"), commit=commit,
                file=shown(scanned.label, masker, matches, what="name"), line=line,
                rule=display(str(item["RuleID"])), line_text=text,
            ))
        return findings
