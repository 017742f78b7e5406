"""gitleaks' findings made safe to file: every piece of a secret masked, or the line left out.

The secret itself never leaves this process: every piece of every secret the
scan found, raw or encoded (base64, hex, percent), is masked as ``********``
in whatever is filed; a line gitleaks only flagged after decoding it, or a
secret spanning lines, is filed without its text (file, line, rule and commit
only). Every field is one printable line, bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bot_bottle.errors import GitGateError
from bot_bottle.sidecar.git_gate.refs import (
    RefUpdate,
)
from bot_bottle.text.redaction import REDACTED, Masker

MAX_LINE_CHARS = 200


MAX_FINDINGS = 200  # a push with more is refused outright: no operator reviews 200 suppressed secrets


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


def redact_line(text: str, secrets: Iterable[str], matches: Iterable[str] = ()) -> str:
    """``text`` with every piece of each secret (raw or encoded) and each whole match masked, bounded.

    Control characters are escaped so the line cannot drive the operator's
    terminal, and a long line is cut to ``MAX_LINE_CHARS``.
    """
    return display(Masker(secrets).mask(_mask_whole(text, matches)))


def _mask_whole(text: str, matches: Iterable[str]) -> str:
    for match in sorted({m for m in matches if m}, key=len, reverse=True):
        text = text.replace(match, REDACTED)
    return text


def shown(text: str, masker: Masker, matches: Iterable[str], *, what: str) -> str:
    """A field of the report: ``text`` masked and bounded, or left out if decoding it reveals a secret.

    A ref or a name (``what``) is cut in the middle, a line at its end.
    """
    masked = masker.mask(_mask_whole(text, matches))
    if masker.reveals_decoded(masked):  # a secret two or more encodings deep: no window matched it
        return f"({what} not shown: it holds a secret in an encoded form)"
    return display(masked, keep_end=what != "line")


def display(text: str, *, keep_end: bool = False) -> str:
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


def decoded(item: dict[str, Any]) -> bool:
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
        "pushed": [{"ref": shown(u.ref, masker, (), what="ref"), "old": u.old, "new": u.new}
                   for u in updates if not u.deleted],
        "findings": [f.to_dict() for f in ordered],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def describe_finding(finding: Finding) -> str:
    return f"{finding.rule} in {finding.file}:{finding.line} (commit {finding.commit[:8]}, {finding.ref})"
