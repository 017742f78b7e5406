"""The pre-receive decision: scan the push, and ask the operator about what the agent marked allowed.

A finding blocks the push outright. A line the agent marked ``# gitleaks:allow``
is suppressed by gitleaks, so the hook scans with ``--ignore-gitleaks-allow``
and, if that finds anything, again without it: if the second scan finds
nothing, what the first found (every finding marked) is let through when the
bottle holds live ``gitleaks-allow`` grants covering each of those findings
(an earlier approval, until its end: ``bot-bottle grants``), and otherwise
the findings no grant covers are filed as a ``gitleaks-allow`` proposal and
the push waits for the operator. Only a grant or an approval lets it
through. Everything else fails closed: a rejection, the wait running out, a
malformed response, gitleaks missing or failing, git failing, the database
unavailable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from bot_bottle.errors import BotBottleError
from bot_bottle.policy.subjects import finding_fingerprint, granted_findings
from bot_bottle.records import STATUS_APPROVED, STATUS_REJECTED, TOOL_GITLEAKS_ALLOW
from bot_bottle.sidecar.git_gate.applied import check_applies
from bot_bottle.sidecar.git_gate.findings import (
    MAX_FINDINGS,
    describe_finding,
    report_payload,
    secrets_of,
    shown,
)
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits, mib
from bot_bottle.sidecar.git_gate.refs import (
    parse_hook_input,
    refused_ref,
)
from bot_bottle.sidecar.git_gate.scan import (
    PushScan,
)
from bot_bottle.sidecar.git_gate.serial import PushLock
from bot_bottle.sidecar.transport import Transport

DEFAULT_TIMEOUT_SEC = 300.0


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
    limits: Limits | None = None,
    lock: PushLock | None = None,
) -> int:
    """Decide a push: 0 lets it through, 1 refuses it. Every path prints one line on ``err``.

    Fails closed: any error, timeout or anything but an approval refuses the
    push, and so does a push past one of ``limits`` (the scan's time counts
    from here; the operator's ``timeout`` comes after it). With ``lock``, the
    push is judged holding the repository's gate lock (``serial``), let go
    while the operator decides and taken again after an approval: a push
    whose repository's refs moved meanwhile is refused. The caller keeps it
    (``hand_over``) on an acceptance, until the refs are written.
    """
    def say(message: str) -> None:
        print(f"git-gate: {message}", file=err, flush=True)

    limits = limits or Limits()
    deadline = Deadline(limits.max_seconds)
    try:
        updates = parse_hook_input(lines)
        problem = refused_ref(updates)
        if problem:
            say(f"push refused: {problem}")
            return 1
        if len(updates) > limits.max_refs:
            say(f"push refused: it updates {len(updates)} refs, more than the {limits.max_refs} one push may "
                "(--max-refs): push them in parts")
            return 1
        # Judged against the refs as they are: no other push may move them until git has written ours.
        snapshot: tuple[str, dict[str, str]] = ("", {})
        if lock is not None:
            lock.acquire(deadline)
            snapshot = lock.refs(deadline)
        # Judged with all its updates in: git must write all of them, or a failing one changes what is served.
        check_applies(repo, updates, deadline)
        # The copies of the pushed content live only while they are scanned: the
        # directory is gone before the push waits for the operator.
        with PushScan(repo, gitleaks, limits, deadline) as scan:
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
            say(f"push refused: gitleaks found a secret: {describe_finding(findings[0])}{more}; "
                "remove it from the commits (rewrite them) and push again")
            return 1
        suppressed = findings
        if not suppressed:
            say("push accepted: gitleaks found no secrets")
            return 0
        if len(suppressed) > MAX_FINDINGS:
            say(f"push refused: {len(suppressed)} findings marked gitleaks:allow is too many to review; split the push")
            return 1
        refs = shown(", ".join(sorted({u.ref for u in updates})), masker, (), what="ref")
        # The host's database on its mount (used as it is, never migrated), or the relay.
        queue = transport.open(bottle)
        try:
            # Asked of the grants in force now, never of memory: a revoked or ended grant covers nothing.
            grants = queue.live_grants(TOOL_GITLEAKS_ALLOW)
            covered = granted_findings([grant.subject for grant in grants])
            asked = [f for f in suppressed if finding_fingerprint(f.to_dict()) not in covered]
            if not asked:
                ends = max(grant.ends_at for grant in grants)
                say(f"push accepted: the {len(suppressed)} finding(s) marked gitleaks:allow are each covered by the "
                    f"operator's grant (until {ends} at the latest; 'bot-bottle grants list' shows them)")
                return 0
            count = len(asked)
            granted = f"; {len(suppressed) - count} more are covered by a grant" if count < len(suppressed) else ""
            proposal = queue.submit(
                TOOL_GITLEAKS_ALLOW,
                report_payload(updates, asked, masker),
                f"push to {refs}: {count} gitleaks finding(s) "
                f"marked '# gitleaks:allow'{granted}; the push waits for your approval",
            )
            say(f"{count} finding(s) marked gitleaks:allow (first: {describe_finding(asked[0])}); "
                f"waiting up to {timeout:g} s for the operator (proposal {proposal.short_id})")
            if lock is not None:
                lock.release()  # a push waiting for a person must not stall every other push
            response = queue.wait_for_response(proposal.id, timeout, poll_interval)
            if response is None:
                say(f"push refused: no decision within {timeout:g} s; proposal {proposal.short_id} stays "
                    "pending: push again once the operator has approved it")
                return 1
            if response.status == STATUS_APPROVED:
                queue.archive(proposal.id)  # decided: out of the pending list (its grant stays until its end)
                if lock is not None:
                    # A deadline of its own: the scan's counted from the hook's start, and a person's pace
                    # outlives it (an approved push was refused as a scan that 'did not finish').
                    again = Deadline(limits.max_seconds)
                    lock.acquire(again)
                    if lock.refs(again) != snapshot:
                        say("push refused: the operator approved, but another push moved this repository's refs "
                            "meanwhile, and this one was judged against the refs before: push again (the "
                            "approval's grant covers the same findings)")
                        return 1
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
    except MemoryError:
        say(f"push refused: scanning it needs more than {mib(limits.max_memory_bytes)} of memory (--max-memory): "
            "push fewer or smaller objects at a time")
        return 1
    except Exception as exc:  # fail closed on anything unforeseen, with a line the agent can read
        say(f"push refused: internal error in git-gate: {exc!r}")
        return 1
