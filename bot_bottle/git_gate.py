"""git-gate: the pre-receive hook that scans pushed commits with gitleaks, and asks the operator.

A finding blocks the push outright. A line the agent marked ``# gitleaks:allow``
is suppressed by gitleaks, so the hook scans a second time with
``--ignore-gitleaks-allow``; whatever that second scan adds is filed as a
``gitleaks-allow`` proposal (each finding: ref, commit, file, line, rule and
the flagged line with the secret redacted) and the push waits for the
operator. Only an approval lets it through. Everything else fails closed:
a rejection, the wait running out, a malformed response, gitleaks missing or
failing, the database unavailable.

The secret itself never leaves this process: it is replaced by ``********``
in the flagged line before anything is filed, and gitleaks' own report is
read from a pipe, never written to disk.

git calls the hook with ``old new ref`` lines on stdin::

    python -m bot_bottle.git_gate pre-receive --bottle SLUG [--db PATH] [--timeout S] [--gitleaks PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot_bottle.db import DB_PATH_IN_CONTAINER
from bot_bottle.errors import BotBottleError, MissingMount, ValidationError
from bot_bottle.mount_safety import require_sidecar_database
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_GITLEAKS_ALLOW, validate_queue_key

DEFAULT_TIMEOUT_SEC = 300.0
MAX_TIMEOUT_SEC = 24 * 3600.0
GITLEAKS_TIMEOUT_SEC = 600.0
REDACTED = "********"
MAX_LINE_CHARS = 200
MAX_FINDINGS = 200  # a push with more is refused outright: no operator reviews 200 suppressed secrets
_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ZERO_RE = re.compile(r"0{40}|0{64}")


class GitGateError(BotBottleError):
    """Scanning could not be done (gitleaks missing or failing, a bad report, bad hook input)."""


@dataclass(frozen=True)
class Finding:
    """One gitleaks finding, safe to store: the secret is redacted from ``line_text``."""

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


def redact_line(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``********``, bounded in length."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = text.strip()
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


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
    return report


class Scanner:
    """Runs gitleaks (and git, for the flagged lines) over exactly the pushed commits of a repository."""

    def __init__(self, repo: Path, gitleaks: str) -> None:
        self.repo = repo
        self.gitleaks = gitleaks

    def _line_of(self, commit: str, path: str, number: int) -> str:
        result = subprocess.run(["git", "-C", str(self.repo), "show", f"{commit}:{path}"],
                                capture_output=True, timeout=60)
        if result.returncode != 0:
            return ""
        lines = result.stdout.decode("utf-8", errors="replace").splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def scan(self, update: RefUpdate, *, ignore_allow: bool) -> list[Finding]:
        """Findings in the commits ``update`` adds (none for a deleted ref)."""
        if update.deleted:
            return []
        # A new ref: only the commits no existing ref already has. During
        # pre-receive the refs are not yet updated, so --all is the old state.
        log_opts = f"{update.new} --not --all" if update.created else f"{update.old}..{update.new}"
        command = [self.gitleaks, "git", "--no-banner", "--log-level", "error", "--report-format", "json",
                   "--report-path", "-", "--exit-code", "0", "--log-opts", log_opts]
        if ignore_allow:
            command.append("--ignore-gitleaks-allow")
        command.append(str(self.repo))
        try:
            result = subprocess.run(command, capture_output=True, timeout=GITLEAKS_TIMEOUT_SEC)
        except FileNotFoundError:
            raise GitGateError(f"gitleaks is not installed ({self.gitleaks} not found)") from None
        except OSError as exc:
            raise GitGateError(f"cannot run gitleaks ({self.gitleaks}): {exc.strerror}") from None
        except subprocess.TimeoutExpired:
            raise GitGateError(f"gitleaks did not finish within {GITLEAKS_TIMEOUT_SEC:g} s") from None
        if result.returncode != 0:
            last = result.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise GitGateError(f"gitleaks failed (exit {result.returncode}): {last[0][:200]}")
        findings = []
        for item in parse_report(result.stdout.decode("utf-8", errors="replace")):
            line = self._line_of(item["Commit"], item["File"], item["StartLine"])
            findings.append(Finding(
                ref=update.ref, commit=item["Commit"], file=item["File"], line=item["StartLine"],
                rule=item["RuleID"], line_text=redact_line(line, [item["Secret"], str(item.get("Match", ""))]),
            ))
        return findings


def report_payload(updates: Sequence[RefUpdate], findings: Sequence[Finding]) -> str:
    """The ``gitleaks-allow`` proposal's payload: the pushed refs and each suppressed finding, as JSON."""
    ordered = sorted(findings, key=lambda f: (f.ref, f.commit, f.file, f.line, f.rule))
    document = {
        "pushed": [{"ref": u.ref, "old": u.old, "new": u.new} for u in updates if not u.deleted],
        "findings": [f.to_dict() for f in ordered],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _describe(finding: Finding) -> str:
    return f"{finding.rule} in {finding.file}:{finding.line} (commit {finding.commit[:8]}, {finding.ref})"


def pre_receive(
    lines: Iterable[str],
    *,
    bottle: str,
    db_path: str | os.PathLike[str],
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
        scanner = Scanner(repo, gitleaks)
        blocking = [f for u in updates for f in scanner.scan(u, ignore_allow=False)]
        if blocking:
            more = f" and {len(blocking) - 1} more" if len(blocking) > 1 else ""
            say(f"push refused: gitleaks found a secret: {_describe(blocking[0])}{more}; "
                "remove it from the commits (rewrite them) and push again")
            return 1
        suppressed = [f for u in updates for f in scanner.scan(u, ignore_allow=True)]
        if not suppressed:
            say("push accepted: gitleaks found no secrets")
            return 0
        if len(suppressed) > MAX_FINDINGS:
            say(f"push refused: {len(suppressed)} findings marked gitleaks:allow is too many to review; split the push")
            return 1
        with QueueStore(db_path) as store:
            queue = store.for_bottle(bottle)
            count = len(suppressed)
            proposal = queue.submit(
                TOOL_GITLEAKS_ALLOW,
                report_payload(updates, suppressed),
                f"push to {', '.join(sorted({u.ref for u in updates}))}: {count} gitleaks finding(s) "
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
    timeout: float | None = None,
    gitleaks: str | None = None,
    pythonpath: str | None = None,
) -> str:
    """The text of a ``pre-receive`` hook that runs this gate for ``bottle``."""
    validate_queue_key(bottle, "bottle")
    command = [python, "-m", "bot_bottle.git_gate", "pre-receive", "--bottle", bottle]
    if db_path is not None:
        command += ["--db", os.fspath(db_path)]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    if gitleaks is not None:
        command += ["--gitleaks", gitleaks]
    env = f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else ""
    return (
        "#!/bin/sh\n"
        "# Installed by bot-bottle git-gate: scans pushed commits with gitleaks and asks the\n"
        "# operator about findings marked gitleaks:allow. Refuses the push on any error.\n"
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
        description="git-gate: scan pushed commits with gitleaks; ask the operator about findings "
        "marked gitleaks:allow.",
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
                          help=f"database file (default: {DB_PATH_IN_CONTAINER}, the sidecar's mount; a push "
                          "is refused at once when it is missing or not mounted)")
        verb.add_argument("--timeout", type=_timeout, metavar="SECONDS", default=None,
                          help=f"how long a push waits for the operator (default {DEFAULT_TIMEOUT_SEC:g})")
        verb.add_argument("--gitleaks", metavar="PATH", default=None, help="the gitleaks binary (default: on PATH)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status is the hook's verdict (0 accept, 1 refuse, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        validate_queue_key(args.bottle, "--bottle")
    except ValidationError as exc:
        print(f"git-gate: error: {exc}", file=sys.stderr)
        return 2
    if args.verb == "install-hook":
        hook = install_hook(args.repo, args.bottle, db_path=args.db, timeout=args.timeout, gitleaks=args.gitleaks)
        print(hook)
        return 0
    if args.db is None:
        # The sidecar's database must be the host's, on its mount: refuse at
        # once rather than create one and wait for a decision nobody can see.
        try:
            require_sidecar_database(DB_PATH_IN_CONTAINER)
        except MissingMount as exc:
            print(f"git-gate: push refused: {exc}", file=sys.stderr)
            return 1
    gitleaks = args.gitleaks or shutil.which("gitleaks") or "gitleaks"
    return pre_receive(
        sys.stdin, bottle=args.bottle, db_path=args.db if args.db is not None else DB_PATH_IN_CONTAINER,
        repo=Path.cwd(), gitleaks=gitleaks,
        timeout=DEFAULT_TIMEOUT_SEC if args.timeout is None else args.timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
