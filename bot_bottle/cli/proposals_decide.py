"""``bot-bottle proposals approve|modify|reject``: a decision, bound to the proposal as the operator saw it."""

from __future__ import annotations

import argparse
import hmac
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from bot_bottle.audit.routes_approved import RoutesBase
from bot_bottle.cli.common import (
    EXIT_CANCELLED,
    EXIT_OK,
    confirm,
    db_path,
    leaf_epilog,
    print_json,
    print_untrusted,
    verb_parser,
    warn,
)
from bot_bottle.cli.grants_cmds import ended_lines, remembered_rule, replaced_json, replaced_lines, rule_made_line
from bot_bottle.cli.in_force import grant_subjects
from bot_bottle.cli.inbox import (
    decided_now,
    decided_now_line,
    decision_digest,
    file_approval,
    pending_ids,
    routes_base_of,
)
from bot_bottle.cli.render import describe, modification
from bot_bottle.decisions import check_decision, default_decider, expired, record_decisions
from bot_bottle.errors import (
    AlreadyDecided,
    AnchorNotWritten,
    AuditTampered,
    BotBottleError,
    ValidationError,
)
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import Approval
from bot_bottle.policy.lifetimes import grant_seconds
from bot_bottle.policy.subjects import subject_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    REMEMBER_BOTTLE,
    REMEMBER_SCOPES,
    STATUS_APPROVED,
    STATUS_EXPIRED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    Decision,
    Proposal,
    Response,
)
from bot_bottle.timestamps import parse_duration, spell_duration, time_left, utc_now


def _decide(args: argparse.Namespace, status: str, notes: str, final_file: str | None) -> int:
    """Decide each proposal ``args.ids`` names, as the operator saw it; each one named back.

    Every id is found, and every ``--digest`` checked, before anything is
    recorded: a mistyped id, a stale digest or a proposal decided already
    (or expired) records nothing, and is refused before anything is asked.
    On a terminal without ``--digest`` each approval is shown and asked for;
    a "no" cancels the command (exit 3, as for any cancelled confirmation)
    and Ctrl-C interrupts it (130): nothing is recorded, not even the ones
    agreed before it. What is recorded is recorded in one transaction
    (``record_decisions``): if any of it is refused (decided meanwhile by
    someone else, expired, rewritten), none of it is.
    """
    grant_for = parse_duration("for", args.duration) if getattr(args, "duration", None) is not None else None
    remember = getattr(args, "remember", None)
    digests: list[str] = list(args.digest or [])
    if digests and len(digests) != len(args.ids):
        raise ValidationError("digest", f"give one --digest for each ID, in the same order ({len(args.ids)} ID(s), "
                              f"{len(digests)} digest(s))")
    agreed: list[Proposal] = []
    with QueueStore(db_path(args)) as store:
        proposals = [store.find(each) for each in args.ids]
        if len({p.id for p in proposals}) != len(proposals):
            raise ValidationError("ids", "the same proposal is named twice")
        for proposal in proposals:
            # One decided or expired already ends the command before anything is asked: all or none would refuse
            # it at the end anyway, and one passed over unasked must never be recorded (a sidecar can write a
            # response row for the look here and take it away before the commit). Said before a digest that no
            # longer matches: that it can no longer be decided at all is the first thing to know.
            _refuse_decided(proposal, store.response(proposal.id))
        # What each routes file is read against, as checked by its digest or shown at its question: the
        # deciding transaction holds it to what it reads then (a routes file approved meanwhile changes it).
        bases = {proposal.id: routes_base_of(store, proposal) for proposal in proposals}
        for proposal, digest in zip(proposals, digests, strict=False):
            _check_digest(store, proposal, digest, bases[proposal.id])
        for proposal in proposals:
            if not digests and status == STATUS_APPROVED \
                    and not _approval_confirmed(proposal, notes, grant_for, remember, bases[proposal.id]):
                print(f"approval of {proposal.short_id} cancelled: nothing recorded"
                      + _also_not(agreed), file=sys.stderr)
                return EXIT_CANCELLED
            if status == STATUS_MODIFIED and final_file is not None \
                    and not _confirmed(args, proposal, notes, final_file, bases[proposal.id]):
                print("modification cancelled: nothing recorded", file=sys.stderr)
                return EXIT_CANCELLED
            agreed.append(proposal)
        waiting = pending_ids(db_path(args)) if remember is not None else []
        done = _record(store, agreed, Decision(status, notes, final_file, default_decider(), grant_seconds=grant_for,
                                               remember=remember),
                       {} if status == STATUS_REJECTED else {key: base.digest() for key, base in bases.items()})
    for each in done:  # the rule --remember made decides the pending ones it matches now, as 'rules add' does
        each["decided_now"] = [] if each["rule"] is None else \
            decided_now(db_path(args), each["rule"]["id"], warn, waiting)
    if args.json:
        print_json([{name: value for name, value in each.items() if name not in ("ended", "replaced_lines")}
                    for each in done])
    else:
        for each in done:
            print_untrusted(f"{each['status']} {each['short_id']} ({each['bottle']}, {each['tool']}) "
                            f"as {each['decided_by']}")
            if each["grant"] is not None:
                print_untrusted(f"grant {each['grant']['short_id']}: {each['grant']['grants']} until "
                                f"{each['grant']['ends_at']} ({each['grant']['left']})")
            print_untrusted(each["replaced_lines"])  # the routes files it replaced, their grants ended
            if each["rule"] is not None:
                print_untrusted(rule_made_line(each["rule"]))
                print_untrusted(decided_now_line(each["rule"]["effect"], each["decided_now"]))
            print_untrusted(each["ended"])  # as lines: a newline in a subject (a sidecar's row) is escaped
    for warning in dict.fromkeys(each["warning"] for each in done if each["warning"]):  # one commit, one warning
        warn(warning)
    return EXIT_OK


def _also_not(agreed: list[Proposal]) -> str:
    """For a cancelled question: the ones agreed before it, recorded neither (all or none), and how to decide them."""
    if not agreed:
        return ""
    ids = " ".join(proposal.short_id for proposal in agreed)
    return f", nor {ids} agreed before it (all or none): 'proposals approve {ids}' asks again"


def _record(store: QueueStore, proposals: list[Proposal], decision: Decision,
            read: dict[str, str]) -> list[dict[str, Any]]:
    """Record ``decision`` on each of ``proposals`` as it was shown (or named by its digest), and each routes file
    as ``read`` (by id: ``RoutesBase.digest``), in one transaction; what was done, as ``--json`` prints it."""
    if not proposals:
        return []
    replaced: dict[str, tuple[Grant, ...]] = {}  # by proposal: the routes grants its decision ended
    try:
        responses = record_decisions(store, [(proposal.id, decision, proposal) for proposal in proposals], read,
                                     replaced)
        warning = ""
    except AnchorNotWritten as exc:
        if not isinstance(exc.result, list):
            raise
        responses, warning = exc.result, str(exc)
    grants = GrantStore(database=store.db)
    done: list[dict[str, Any]] = []
    for proposal, response in zip(proposals, responses, strict=True):
        made = grants.for_proposal(proposal.id)
        ended = grants.ended_by_decision(proposal.id) if decision.remember is not None else []
        rule = remembered_rule(grants, proposal.id, response.decided_at) if decision.remember is not None else None
        # In the words 'grants list' shows it (a routes file's: what it adds), not a digest's.
        grant = None if made is None else {
            "id": made.id, "short_id": made.short_id, "grants": grant_subjects(store, [made])[made.id],
            "starts_at": made.starts_at, "ends_at": made.ends_at, "left": time_left(made.starts_at, made.ends_at)}
        done.append({"id": proposal.id, "short_id": proposal.short_id, "bottle": proposal.queue_key,
                     "tool": proposal.tool, "status": response.status, "notes": response.notes,
                     "decided_by": response.decided_by, "decided_at": response.decided_at, "grant": grant,
                     "rule": rule, "warning": warning or None, "ended_grants": [each.id for each in ended],
                     "ended": ended_lines(ended), "replaced": replaced_json(replaced.get(proposal.id, ())),
                     "replaced_lines": replaced_lines(replaced.get(proposal.id, ()))})
    return done


def _refuse_decided(proposal: Proposal, earlier: Response | None) -> None:
    """Refuse ``proposal`` when ``earlier`` (its response as read now) says it is decided or expired, or its end
    has passed with nobody to close it yet, in the words ``record_decisions`` refuses it in."""
    if earlier is None:
        if proposal.expires_at is not None and proposal.expires_at <= utc_now():
            raise expired(proposal, proposal.expires_at)
        return
    if earlier.status == STATUS_EXPIRED:
        raise expired(proposal, proposal.expires_at or earlier.decided_at)  # its end, not when it was closed
    raise AlreadyDecided(f"proposal {proposal.short_id} was already {earlier.status} by {earlier.decided_by} at "
                         f"{earlier.decided_at}; the first decision stands; nothing recorded")


def _check_digest(store: QueueStore, proposal: Proposal, digest: str, base: RoutesBase) -> None:
    """Refuse unless ``proposal`` is still the one whose ``proposals show`` printed ``digest``, read as it was."""
    if not hmac.compare_digest(digest.strip().lower().encode("utf-8", "replace"),
                               decision_digest(store, proposal, base).encode()):
        raise AuditTampered(f"proposal {proposal.short_id} is not the one whose digest you gave: it was rewritten in "
                            "the database since 'proposals show' printed it, or (a routes file) the one on record for "
                            "its bottle changed since (another approved, or it was revoked), or a standing rejection "
                            "for it was made or ended since, or the digest is another's; nothing recorded. Show it "
                            "again")


def _approval_confirmed(proposal: Proposal, notes: str, grant_for: int | None, remember: str | None,
                        base: RoutesBase) -> bool:
    """On a terminal: show what approving grants (read against ``base``) and ask, naming how long and any rule
    ``--remember`` makes; True to record. Elsewhere: ``--digest`` is needed."""
    check_decision(proposal, Decision(STATUS_APPROVED, notes, None, default_decider()))
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ValidationError("digest", "approving without a terminal needs --digest D, the digest 'bot-bottle "
                              "proposals show ID' printed, so the approval holds only for what you saw")
    approval = file_approval(proposal, proposal.payload, base)
    how_long = ""
    if _lasts(proposal):  # (one whose grant cannot be read grants nothing that lasts, and --for is refused)
        how_long = f" for {spell_duration(grant_seconds(proposal.tool, grant_for))}"
        if remember is not None:
            whose = proposal.queue_key if remember == REMEMBER_BOTTLE else "every bottle"
            how_long += f", and the same again for {whose} until then (--remember {remember})"
    print_untrusted(describe(proposal, None, base=base), page=True)
    return confirm(f"\napprove {proposal.short_id} ({proposal.queue_key}, {proposal.tool}){how_long}?",
                   _reaches_more(approval))


def _lasts(proposal: Proposal) -> bool:
    """Whether approving ``proposal`` makes a grant (its payload says what it grants), so it has a length."""
    try:
        subject_of(proposal.tool, proposal.payload)
    except ValidationError:
        return False
    return True


def _reaches_more(approval: Approval) -> str:
    """For ``confirm``: why approving reaches more than it reads as, or inside (its badges), or "" when it does
    not.

    Where it does, only a typed ``yes`` records, as the TUI and the dashboard ask a second time.
    """
    return approval.why_asked_twice


def _confirmed(args: argparse.Namespace, proposal: Proposal, notes: str, final_file: str, base: RoutesBase) -> bool:
    """Show the operator their own diff and what it grants (read against ``base``) and ask, on a terminal without
    ``--yes``; True to record.

    The file is checked first (``check_decision``), so an invalid one is one
    error before any question. What is recorded is the very text shown.
    """
    check_decision(proposal, Decision(STATUS_MODIFIED, notes, final_file, default_decider()))
    if args.yes or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return True
    print_untrusted(modification(proposal, final_file, base))
    question = f"\nrecord this modification of {proposal.short_id} ({proposal.queue_key}, {proposal.tool})?"
    why_typed = _reaches_more(file_approval(proposal, final_file, base))
    if str(args.file) != "-":
        return confirm(question, why_typed)
    try:  # stdin held the file: ask on the terminal itself
        with open("/dev/tty", encoding="utf-8") as tty:
            return confirm(question, why_typed, lambda prompt: _read_line(tty, prompt))
    except OSError:
        return False


def _read_line(tty: TextIO, prompt: str) -> str:
    """``input`` on another stream than stdin: print ``prompt``, read one line (EOF raises ``EOFError``)."""
    print(prompt, end="", flush=True)
    line = tty.readline()
    if not line:
        raise EOFError
    return line


def cmd_proposals_approve(args: argparse.Namespace) -> int:
    """Approve proposals as filed."""
    return _decide(args, STATUS_APPROVED, args.notes, None)


def _read_file(path: Path) -> str:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise BotBottleError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("file", f"{path} is not UTF-8 text") from None


def cmd_proposals_modify(args: argparse.Namespace) -> int:
    """Approve an edited version of a proposal, read from ``--file``."""
    return _decide(args, STATUS_MODIFIED, args.notes, _read_file(args.file))


def cmd_proposals_reject(args: argparse.Namespace) -> int:
    """Reject a proposal, with a reason."""
    return _decide(args, STATUS_REJECTED, args.reason, None)


_FIELD_OPTIONS = {"id": "ID", "ids": "ID", "notes": "--notes", "for": "--for", "remember": "--remember"}


def _digest(text: str) -> str:
    """argparse type: a digest as 'proposals show' prints it (64 hex digits; case and spaces around it aside)."""
    if re.fullmatch(r"[0-9a-f]{64}", text.strip().lower()) is None:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a digest: 'proposals show ID' prints one, "
                                         "64 hex digits")
    return text


def _add_digest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--digest", metavar="D", action="append", default=None, type=_digest,
                        help="the digest 'proposals show' printed: decide only if the proposal is still that one "
                        "(a routes file: read against the same approved file) (once per ID, in the same order)")


def _grant_options(parser: argparse.ArgumentParser) -> None:
    """``--for`` and ``--remember``, on approve and modify."""
    parser.add_argument("--for", dest="duration", metavar="DURATION",
                        help="how long what this approves lasts: 8h, 7d, 2w or a time (default and maximum by tool: "
                        "egress routes 7d/90d, a token 8h/7d, a push's findings 7d/90d)")
    parser.add_argument("--remember", choices=REMEMBER_SCOPES, default=None,
                        help="approve matching proposals the same way until then: this bottle's, or every "
                        "bottle's (a standing rule, named in the answer, --json: rule; 'rules list' shows it); "
                        "those already pending at once, named (--json: decided_now)")


def register_decisions(verbs: Any) -> None:
    """Add ``approve``, ``modify`` and ``reject`` to the ``proposals`` verb's subcommands."""
    p = verb_parser(verbs, "approve", help="approve proposals as filed", json=True,
                    description="Approve one or more proposals as filed. On a terminal each is shown (what "
                    "approving grants) and asked for (where approving widens access, names a look-alike host, "
                    "reaches inside, or is a routes file naming a host a standing rejection in force rejects, only a "
                    "typed 'yes' records it); without one (a script), --digest is required, once per ID in the same "
                    "order: the digest 'proposals show' printed, so only the proposal you saw is approved (for a "
                    "routes file, read as it was then: a routes file approved, or a standing rejection made or "
                    "ended, since refuses it). gitleaks-allow and egress-token-allow proposals need a reason "
                    "(--notes). The "
                    "approvals are recorded together, in one commit: if any is refused (decided meanwhile by "
                    "someone else, expired), none is, and a 'no' to any records none. Each decision is named back "
                    "(--json: a list of them). An egress-block approved over the bottle's routes file in force ends "
                    "that file's grant, named in the answer (--json: replaced).",
                    epilog=leaf_epilog(
                        ("bot-bottle proposals approve 3f2a --notes 'the docs'", "on a terminal: shows it, asks"),
                        ("bot-bottle proposals approve 3f2a 9c1e", "two at once, each shown and asked for"),
                        ("bot-bottle proposals approve 3f2a --for 8h --remember bottle",
                         "for 8 hours, and the same again for its bottle until then"),
                        ("bot-bottle proposals approve 3f2a --digest 9b1c... --json", "from a script")),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="+", metavar="ID", help="a proposal's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--notes", default="", metavar="TEXT", help="why (required for report-only tools)")
    _grant_options(p)
    _add_digest(p)
    p.set_defaults(handler=cmd_proposals_approve, field_options=_FIELD_OPTIONS)

    p = verb_parser(verbs, "modify", help="approve an edited version of a proposal", json=True,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=leaf_epilog(
                        ("bot-bottle proposals modify 3f2a --file routes.json --notes 'narrowed'", "shows your diff"),
                        ("cat final.json | bot-bottle proposals modify 3f2a --file - --yes", "from a script")),
                         description="Approve an edited version of a proposal: the file you give replaces "
                         "what the bottle proposed. Not offered for report-only tools. The file must be one "
                         "its tool can take (an egress-allow: a JSON route with host and optional paths; an "
                         "egress-block: text without control, bidirectional or invisible characters). On a "
                         "terminal you see your own diff (proposed -> final) and confirm it first (a typed 'yes' "
                         "where your version widens access); --yes skips "
                         "the question, as do scripts, whose stdin or stdout is not a terminal. An egress-block "
                         "modified over the bottle's routes file in force ends that file's grant, named in the answer "
                         "(--json: replaced).")
    p.add_argument("ids", nargs=1, metavar="ID", help="the proposal's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--file", type=Path, required=True, metavar="F", help="the final file ('-' reads stdin)")
    p.add_argument("--notes", default="", metavar="TEXT", help="what you changed and why")
    p.add_argument("--yes", action="store_true", help="record without showing the diff and asking")
    _grant_options(p)
    _add_digest(p)
    p.set_defaults(handler=cmd_proposals_modify, field_options={**_FIELD_OPTIONS, "final_file": "--file"})

    p = verb_parser(verbs, "reject", help="reject proposals, with a reason", json=True,
                    description="Reject one or more proposals. The reason goes back to each bottle and into the "
                    "audit log. The rejections are recorded together, in one commit: if any is refused, none is. Each "
                    "decision is named back (--json: a list of them).",
                    epilog=leaf_epilog(
                        ("bot-bottle proposals reject 3f2a --reason 'no new hosts this week'", "one"),
                        ("bot-bottle proposals reject 3f2a 9c1e --reason 'not now' --remember bottle",
                         "two, and the same for this bottle's next asks")),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="+", metavar="ID", help="a proposal's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (sent back to the bottle)")
    p.add_argument("--remember", choices=REMEMBER_SCOPES, default=None,
                   help="reject from now on every proposal that asks for any of this one: this bottle's, or every "
                   "bottle's (a standing rule, named in the answer, --json: rule; for good unless --for), those "
                   "already pending at once, named (--json: decided_now), and end "
                   "the live grants that let any of it through, named (--json: ended_grants). A name under a "
                   "rejected wildcard is left to you, not to an approving rule")
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help="with --remember: how long the rule stands (8h, 7d, 2w, or a time)")
    _add_digest(p)
    p.set_defaults(handler=cmd_proposals_reject, field_options={**_FIELD_OPTIONS, "notes": "--reason"})
