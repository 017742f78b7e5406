"""``bot-bottle grants``: what every bottle may do, until when, and on whose word; revoking a grant."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from bot_bottle.cli.common import db_path, print_json, print_table, print_untrusted, verb_parser, warn
from bot_bottle.cli.in_force import grant_subjects, grants_listed, log_warnings, shown_record
from bot_bottle.cli.inbox import log_warning, unknown_bottle
from bot_bottle.cli.registry import summary
from bot_bottle.decisions import default_decider
from bot_bottle.grant_records import Grant, Rule
from bot_bottle.grants import GrantStore
from bot_bottle.policy.subjects import describe_subject
from bot_bottle.records import EFFECT_APPROVE, SHORT_ID_LENGTH
from bot_bottle.standing import RuleInForce, approving_again
from bot_bottle.timestamps import moment_of, seconds_between, time_left, utc_now

_GRANTS_EPILOG = """\
examples:
  bot-bottle grants list                        what every bottle may do now, and for how long
  bot-bottle grants list --bottle web-1 --all   everything bottle web-1 was ever granted
  bot-bottle grants revoke 7c1e --reason "the mirror is down"

A grant is what an approval made: a subject (a host and its paths, a token
to one host, a push's findings), from when, until when. It ends by itself;
revoking ends it now. A running sidecar notices within 5 seconds.
"""

def grant_json(grant: Grant, now: str) -> dict[str, Any]:
    """A grant as JSON, with whether it is live now and the seconds it has left."""
    left = max(0, int(seconds_between(now, grant.ends_at))) if moment_of(grant.ends_at) is not None else 0
    return {**grant.to_dict(), "live": grant.live(now), "seconds_left": left if grant.live(now) else 0}


def rule_json(rule: Rule, now: str) -> dict[str, Any]:
    """A rule as JSON, with whether it is in force now."""
    return {**rule.to_dict(), "live": rule.live(now), "pattern": bool(rule.pattern)}


def rule_in_force_json(item: RuleInForce, now: str) -> dict[str, Any]:
    """A rule as a list of what decides gives it (``standing.rules_in_force``): ``rule_json`` with whether it
    decides, where the file and the log disagree (``note``), and what a pattern made before its confirmation
    was recorded leaves to the operator (``unconfirmed``)."""
    return {**rule_json(item.rule, now), "decides": item.decides, "note": item.note, "unconfirmed": item.unconfirmed}


# Grants a new standing rejection ended, named one a line; the rest counted (a sidecar can write thousands of
# rows a rejection then ends: 10,000 took 2.4 s to end, and as many lines to print).
MAX_NAMED_ENDED = 12


def ended_lines(ended: list[Grant]) -> list[str]:
    """What to say of the grants a new standing rejection ended (``GrantStore.ended_by``): one line each, the
    first ``MAX_NAMED_ENDED``, then how many more."""
    lines = [f"it ended grant {grant.short_id} ({grant.queue_key}: {describe_subject(grant.tool, grant.subject_value)}"
             "), which let through what it rejects" for grant in ended[:MAX_NAMED_ENDED]]
    if len(ended) > MAX_NAMED_ENDED:
        lines.append(f"and {len(ended) - MAX_NAMED_ENDED} more grants it ended")
    if lines:
        lines.append("(what the agent still needs, it asks for again: 'grants list --all' shows the ended grants)")
    return lines


def replaced_lines(replaced: Sequence[Grant], shows_ended: str = "'grants list --all'") -> list[str]:
    """What to say of the routes grants approving (or modifying) a routes file ended (``record_replacing_in``): the
    files it replaced, one line each, by the proposal that approved each and its grant; ``shows_ended``, what shows
    the ended grants on this screen."""
    return [f"it replaces the routes file approved on proposal {grant.proposal_id[:SHORT_ID_LENGTH]}: grant "
            f"{grant.short_id} ended ({shows_ended})" for grant in replaced]


def replaced_json(replaced: Sequence[Grant]) -> list[dict[str, str]]:
    """``replaced_lines`` as ``--json`` gives them (``replaced``): each ended grant's id and its proposal's."""
    return [{"grant": grant.id, "proposal": grant.proposal_id} for grant in replaced]


def remembered_rule(store: GrantStore, proposal_id: str, now: str) -> dict[str, Any] | None:
    """The standing rule the decision on ``proposal_id`` made (``--remember``), as ``--json`` gives it, or None."""
    made = store.remembered_by_decision(proposal_id)
    return None if made is None else {
        "id": made["id"], "short_id": made["id"][:8], "bottle": made.get("bottle"), "effect": made.get("effect"),
        "ends_at": made.get("ends_at"), "left": time_left(now, made.get("ends_at"))}


def made_rule(rule: Rule, now: str) -> dict[str, Any]:
    """A rule just added (``rules add``), in the shape ``remembered_rule`` gives one ``--remember`` made."""
    return {"id": rule.id, "short_id": rule.short_id, "bottle": rule.queue_key, "effect": rule.effect,
            "ends_at": rule.ends_at, "left": time_left(now, rule.ends_at)}


def rule_made_line(rule: dict[str, Any], ends: str | None = None, what: str = "the same again") -> str:
    """What a new rule is, for the operator, in the one wording of 'rules add' and ``--remember``
    (``remembered_rule``, ``made_rule``): the rule, what it does to ``what`` (``--remember``'s: the same again),
    for which bottles, until when, and what ends it (``ends``; default: the command line's 'rules revoke ID')."""
    whose = rule["bottle"] or "every bottle"
    until = "for good" if rule["ends_at"] is None else f"until {rule['ends_at']} ({rule['left']})"
    ends = ends or f"'rules revoke {rule['short_id']}'"
    return (f"rule {rule['short_id']}: {'approves' if rule['effect'] == EFFECT_APPROVE else 'rejects'} {what} "
            f"for {whose}, {until} ({ends} ends it)")


def _grant_left(grant: Grant, now: str) -> str:
    """How long the grant still lets through, or why it no longer does ('ended', 'revoked')."""
    return "revoked" if grant.revoked_at is not None else time_left(now, grant.ends_at)


def cmd_grants_list(args: argparse.Namespace) -> int:
    """Grants in force now (every one ever made with ``--all``), soonest ending first."""
    now = utc_now()
    with GrantStore(db_path(args)) as store:
        listed = grants_listed(store, args.bottle, include_ended=args.all)
        grants = listed.grants
        warning = log_warning(store)
        subjects = grant_subjects(store, grants) if not args.json else {}
        unknown = unknown_bottle(store, args.bottle) if not grants else None
    for said in (warning, unknown, *log_warnings(listed)):  # (on stderr: --json's output stays a document)
        if said is not None:
            warn(said)
    if args.json:
        print_json([{**grant_json(g, now), "note": listed.note(g)} for g in grants])
        return 0
    if not grants:
        print("no grants" + ("" if args.all else " in force"))
        return 0
    # Each row as a screen shows it (in_force.shown_record): a row a sidecar wrote is listed, not a traceback.
    # The time left before what it grants, as the TUI and 'proposals list' have it: at 80 columns a long grant
    # pushed LEFT off the row, and the operator could not see when it ends.
    print_table(["ID", "BOTTLE", "TOOL", "LEFT", "GRANTS", "BY"],
                [[g.short_id, g.queue_key, g.tool, _grant_left(g, now),
                  listed.mark(g) + subjects[g.id],
                  f"rule {g.rule_id[:8]}" if g.rule_id else g.decided_by] for g in map(shown_record, grants)],
                page=True, narrow_drop=(2,), bottle_column=1)
    return 0


def cmd_grants_revoke(args: argparse.Namespace) -> int:
    """End a grant now, with a reason (audited)."""
    with GrantStore(db_path(args)) as store:
        grant = store.revoke(args.id, args.reason, revoked_by=default_decider())
        again = approving_again(store, grant)
        said = grant_subjects(store, [grant])[grant.id]  # as 'grants list' named it
    if args.json:
        print_json({**grant_json(grant, utc_now()), "rule_in_force": again.id if again else None})
        return 0
    print_untrusted(f"revoked {grant.short_id} ({grant.queue_key}, {grant.tool}: {said})")
    if again is not None:
        print_untrusted(approving_again_line(again, grant))
    return 0


def approving_again_line(rule: Rule, grant: Grant, ends: str | None = None) -> str:
    """What revoking ``grant`` leaves: ``rule`` (``approving_again``) approves the same again, and how to end it
    (``ends``; default: the command line's 'rules revoke ID')."""
    made = "which made it" if rule.id == grant.rule_id else "remembered with it" \
        if rule.proposal_id == grant.proposal_id else "which matches it"
    ends = ends or f"'rules revoke {rule.short_id}'"
    return (f"rule {rule.short_id}, {made}, still approves the same again for {rule.queue_key or 'every bottle'} "
            f"until {rule.ends_at}: the bottle's next ask is approved at once "
            f"({ends} ends the rule)")


def register(subparsers: Any) -> None:
    """Add the ``grants`` verb."""
    grants = subparsers.add_parser("grants", help=summary("grants"), epilog=_GRANTS_EPILOG,
                                   description="What every bottle may do, until when, and on whose word.",
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = grants.add_subparsers(dest="grants_verb", metavar="VERB", required=True)
    p = verb_parser(verbs, "list", json=True, help="grants in force (every one with --all)",
                    description="List grants in force, soonest ending first: the bottle, the tool, what it "
                    "grants, the time left, and who decided (the operator, or a standing rule). Where the "
                    "database file and the sealed audit log disagree (a sidecar can write the file), the grant is "
                    "marked: [kept by the log] where its row is missing, revoked, ended or rewritten but the log "
                    "records it in force ('grants revoke' ends it), [revoked in the log] where its row says in "
                    "force but the log records it revoked, [not in the log] where no approval the host sealed made "
                    "its row as it reads ('grants revoke' ends it); each is warned of on stderr.")
    p.add_argument("--bottle", metavar="SLUG", help="only this bottle's grants")
    p.add_argument("--all", action="store_true", help="ended and revoked grants too")
    p.set_defaults(handler=cmd_grants_list)
    p = verb_parser(verbs, "revoke", json=True, help="end a grant now",
                    description="End a grant now. Its bottle's sidecar refuses what it granted within 5 s; "
                    "the next request asks the operator again, unless an approving rule that matches it (the one "
                    "that made the grant, that its approval --remember'ed, or any other) "
                    "still stands (named in the answer; 'rules revoke' ends it). Recorded in the audit log with "
                    "the reason.")
    p.add_argument("id", metavar="ID", help="the grant's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit log)")
    p.set_defaults(handler=cmd_grants_revoke, field_options={"reason": "--reason"})

