"""The push's new objects, copied under neutral names into a private directory and scanned by gitleaks.

Each one is written to a private temporary directory under a neutral name
(``<n>.txt``, so no path rule of gitleaks' default configuration skips it,
and no archive name makes it open or drop the file), behind a one-line
header that keeps gitleaks from sniffing it as an archive or binary and
skipping it, with NUL bytes turned into spaces, and ending with a canary line
(a random token gitleaks must report for every copy, or the push is refused
as not scanned completely); then ``gitleaks dir`` scans the directory and the
findings are mapped back to ref, commit, path and line. So is every other
form of it a reader meets (``views``), every member of it that is an archive
(``archives``), and every file a checkout converts (``attributes``,
``checkout``), each as a copy of its own, all within the push's ``Limits``.
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

from bot_bottle.errors import GitGateError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.archives import expand
from bot_bottle.sidecar.git_gate.attributes import encoded_files
from bot_bottle.sidecar.git_gate.checkout import checkout_forms, converts
from bot_bottle.sidecar.git_gate.findings import (
    MAX_LINE_CHARS,
    Finding,
    decoded,
    display,
    parse_report,
    shown,
)
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits, child_limits, mib
from bot_bottle.sidecar.git_gate.objects import (
    REENCODED,
    PushedObject,
    added_paths,
    git_env,
    last_error_line,
    pushed_objects,
    read_objects,
    root_tree,
)
from bot_bottle.sidecar.git_gate.refs import (
    RefUpdate,
)
from bot_bottle.sidecar.git_gate.substitutions import changed_tips, pushed_tips, substituted_files
from bot_bottle.sidecar.git_gate.views import (
    other_views,
    whole_paths,
)
from bot_bottle.text.redaction import Masker

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
    group: int = -1  # for what was taken out of an archive: the number of the pushed object's first copy


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

    def __init__(self, repo: Path, gitleaks: str, limits: Limits | None = None,
                 deadline: Deadline | None = None) -> None:
        self.repo = repo
        self.gitleaks = gitleaks
        self.limits = limits or Limits()
        self.deadline = deadline or Deadline(self.limits.max_seconds)
        self.written = 0  # bytes handed to gitleaks so far, against limits.max_scan_bytes
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
        self.written += len(data)
        if self.written > self.limits.max_scan_bytes:
            raise ScanLimitExceeded(f"the push needs more than {mib(self.limits.max_scan_bytes)} scanned, with its "
                                    "other forms and archive members (--max-scan-size): push it in parts")
        self.deadline.check()
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
        roots: dict[str, tuple[str, str]] = {}  # tree a checkout (or git archive) writes -> (ref, commit)
        commits: list[tuple[str, str, str]] = []  # every new commit: (ref, commit, its tree), for git archive
        new_blobs: dict[str, int] = {}  # a pushed blob -> the number of its first copy
        for obj in pushed_objects(self.repo, [(u.ref, u.new) for u in kept], self.limits, self.deadline):
            label = _label(obj)
            first = self._add_copies(_Scanned(obj.ref, obj.commit, label), obj.data)
            if obj.kind == "tree" and obj.path:  # its entries as a tarball or a checkout names them
                self._add_views(first, _Scanned(obj.ref, obj.commit, label),
                                [("entries by their whole paths", whole_paths(obj.path, obj.data))])
            if obj.kind == "blob":
                new_blobs.setdefault(obj.oid, first)
            elif obj.kind == "commit" and (tree := root_tree(obj.data)):
                roots.setdefault(tree, (obj.ref, obj.oid))
                commits.append((obj.ref, obj.oid, tree))
            elif obj.kind == "tree" and not obj.path:  # a commit's tree, one a ref points at, one nothing reaches
                roots.setdefault(obj.oid, (obj.ref, obj.commit))
        # Every path each new commit adds, whole: a tree already on the remote (or pushed at another path first)
        # put at a new path is in no new object under it, and a tarball writes its entries under it.
        for ref, commit, _ in commits:
            if paths := added_paths(self.repo, commit, self.deadline):
                self._add_copies(_Scanned(ref, commit, "(the paths the commit adds, whole)"), paths)
        # Each file a checkout converts, new or already on the remote (a pushed .gitattributes can name an
        # old file), as the checkout writes it.
        converted = [f for f in encoded_files(self.repo, roots, self.limits, self.deadline) if converts(f.encoding)]
        contents = read_objects(self.repo, [f.oid for f in converted], self.limits, self.deadline)
        for encoded, (_, _, data) in zip(converted, contents, strict=True):
            ref, commit = roots[encoded.root]
            first = new_blobs.get(encoded.oid, -1)
            path = encoded.path if first >= 0 else f"{encoded.path} (already on the remote)"
            for how, form in checkout_forms(data, encoded.encoding):
                self._add_copies(_Scanned(ref, commit, f"{path} ({how})", copy_of=first), form)
        # Each export-subst file as git archive (a forge's tarball) writes it for each new commit, and each commit
        # a pushed ref names: its $Format: filled in from the commit's message, author and refs, an old blob's too.
        # A ref moved away changes its old commit's %D; a tag or .mailmap changes every tip's.
        named = [*kept, *changed_tips(self.repo, updates, self.deadline)]
        known = {commit for _, commit, _ in commits}
        for tip in pushed_tips(self.repo, named, self.deadline):
            if tip[1] not in known:
                known.add(tip[1])
                commits.append(tip)
        for filled in substituted_files(self.repo, commits, updates, self.limits, self.deadline,
                                        self.limits.max_scan_bytes - self.written):
            # Labelled with a mark of the bytes: the commit does not fix them (Substituted.label).
            self._add_copies(_Scanned(filled.ref, filled.commit, filled.label, copy_of=new_blobs.get(filled.oid, -1)),
                             filled.data)
        return len(self._files)

    def _add_copies(self, scanned: _Scanned, data: bytes) -> int:
        """Write ``data``, its other views and whatever its archives hold; the number of its first copy."""
        first = len(self._files)
        self._write(scanned, data)
        own = scanned.copy_of if scanned.copy_of >= 0 else first
        self._add_views(own, scanned, other_views(data))
        for leaf in expand(data, scanned.label, self.limits, self.deadline):
            number = len(self._files)
            member = _Scanned(scanned.ref, scanned.commit, leaf.label, group=own)
            self._write(member, leaf.data)
            self._add_views(number, member, other_views(leaf.data))
        return first

    def _add_views(self, first: int, scanned: _Scanned, views: Iterable[tuple[str, bytes]]) -> None:
        for how, data in views:
            self._write(_Scanned(scanned.ref, scanned.commit, f"{scanned.label} ({how})", copy_of=first,
                                 group=scanned.group), data)

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
                                    timeout=self.deadline.remaining(), preexec_fn=child_limits)
        except FileNotFoundError:
            raise GitGateError(f"gitleaks is not installed ({self.gitleaks} not found)") from None
        except OSError as exc:
            raise GitGateError(f"cannot run gitleaks ({self.gitleaks}): {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise self.deadline.exceeded() from None
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
        # What an archive holds is often also in the archive as it is (a stored member, a decompressed
        # tar): a secret already listed for the pushed object is not listed again from inside it.
        listed: set[tuple[int, str, str]] = set()
        findings = []
        for item in sorted(items, key=lambda i: (self._index(i), i["StartLine"])):
            number = self._index(item)
            scanned = self._files[number]
            same = (scanned.copy_of, item["StartLine"], item["RuleID"], item["Secret"])
            if scanned.copy_of >= 0 and same in in_first:
                continue
            whole = (scanned.group if scanned.group >= 0 else self._object(item), item["RuleID"], item["Secret"])
            if scanned.group >= 0 and whole in listed:
                continue
            listed.add(whole)
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
