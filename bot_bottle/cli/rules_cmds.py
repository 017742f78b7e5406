"""``bot-bottle rules``: standing rules, the operator's decision made again for matching proposals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot_bottle.audit.routes_approved import approved_text
from bot_bottle.bottles import BottleStore
from bot_bottle.cli.common import (
    EXIT_CANCELLED,
    confirm,
    db_path,
    print_json,
    print_table,
    print_untrusted,
    verb_parser,
    warn,
)
from bot_bottle.cli.grants_cmds import ended_lines, made_rule, rule_in_force_json, rule_json, rule_made_line
from bot_bottle.cli.in_force import revoke_rule, rule_left, rule_scope, rule_subject, shown_record
from bot_bottle.cli.inbox import decided_now, decided_now_line, pending_ids
from bot_bottle.cli.registry import summary
from bot_bottle.decisions import default_decider
from bot_bottle.errors import ValidationError
from bot_bottle.grant_records import Grant, Rule
from bot_bottle.grants import GrantStore, grants_in_force_in
from bot_bottle.policy.approval import Rejection, approval_of, rejected_cautions, subject_approval, subject_kinds
from bot_bottle.policy.hosts import host_problems
from bot_bottle.policy.lifetimes import LIFETIMES, MAX_REJECT_RULE_SECONDS, grant_seconds
from bot_bottle.policy.reach import inside_places
from bot_bottle.policy.routes import make_route
from bot_bottle.policy.subjects import describe_subject, subject_of
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    EFFECT_APPROVE,
    EFFECT_REJECT,
    TOOL_EGRESS_ALLOW,
    TOOL_EGRESS_BLOCK,
)
from bot_bottle.standing import RuleInForce, approves, rules_in_force
from bot_bottle.timestamps import later, parse_duration, spell_duration, time_left, utc_now

_NAMED = 8  # proposals a new rule decided at once, named by id; the rest counted
_RULES_EPILOG = """\
examples:
  bot-bottle rules list
  bot-bottle rules add --bottle web-1 --host docs.python.org --for 7d --notes "the docs"
  bot-bottle rules add --all-bottles --host '*.pythonhosted.org' --for 30d --notes "pip's files"
  bot-bottle rules add --all-bottles --host pastebin.com --reject --notes "no paste sites"
  bot-bottle rules revoke 4b0d --reason "done with the migration"

A rule decides matching proposals the way you would: approving ones end
(--for), rejecting ones may stand for good, and end at once every live
grant that lets through any of what they reject. An approving rule matches what
you typed exactly; a host pattern (*.example.com) is one only when you type
it, and leaves to you a name under it that a screen asks twice about for
more than you confirmed the pattern for when you made it
(169-254-169-254.example.com). A rejecting rule matches every proposal
asking for any of what it rejects (fewer or more methods or paths, a
wildcard over its host; GET and HEAD as one, '//admin/' and '/admin;x/'
as '/admin/'). Also
made when deciding: 'proposals approve ID --remember bottle|all'.
"""

def cmd_rules_list(args: argparse.Namespace) -> int:
    """Rules in force as they decide (every one with ``--all``), newest first; where the file and the audit log
    disagree, what decides is listed and said (``standing.rules_in_force``)."""
    now = utc_now()
    with GrantStore(db_path(args)) as store:
        shown = rules_in_force(store)
        if args.all:  # then the file's ended and revoked rules, its history
            listed = {item.rule.id for item in shown}
            shown += [RuleInForce(rule, False) for rule in store.rules(include_ended=True)
                      if rule.id not in listed and not shown_record(rule).live(now)]
    if args.json:
        print_json([rule_in_force_json(item, now) for item in shown])
        return 0
    if not shown:
        print("no rules" + ("" if args.all else " in force"))
        return 0
    rules = [shown_record(item.rule) for item in shown]
    # How long each decides before what it decides on, as the TUI's rules view: at 80 columns a long subject
    # pushed LEFT off the row ('for g…': whether a rejection stands for good could not be read).
    print_table(["ID", "BOTTLE", "TOOL", "EFFECT", "LEFT", "DECIDES ON", "NOTES"],
                [[r.short_id, rule_scope(r), r.tool, r.effect, rule_left(r, now), rule_subject(r), r.notes]
                 for r in rules], page=True,
                narrow_drop=(2,), bottle_column=1)  # narrower than 100 columns, no TOOL: as the TUI's
    notes = [f"WARNING: rule {shown_record(item.rule).short_id}: {item.note}" for item in shown if item.note]
    if notes:  # a sidecar wrote the file: what decides is the log's word, and 'audit verify' says more
        print_untrusted([*notes, "('bot-bottle audit verify' says more; 'rules revoke ID' ends a rule the log keeps)"])
    print_untrusted([f"note: rule {item.rule.short_id}: {item.unconfirmed}" for item in shown if item.unconfirmed])
    return 0


def cmd_rules_add(args: argparse.Namespace) -> int:
    """Add a standing rule the operator typed: one host (or a pattern) of egress-allow, for a bottle or all."""
    if (args.bottle is None) == (not args.all_bottles):
        raise ValidationError("bottle", "give either --bottle SLUG or --all-bottles")
    route = make_route(args.host, args.path or None, args.method or None)
    subject = {"host": route.host, "methods": list(route.methods), "paths": list(route.paths)}
    effect = EFFECT_REJECT if args.reject else EFFECT_APPROVE
    now = utc_now()
    if args.duration is None:
        if effect == EFFECT_APPROVE:
            raise ValidationError("for", "a rule that approves must end: give --for (for example 7d)")
        ends_at = None
    else:
        seconds = parse_duration("for", args.duration, now=now)
        limit = LIFETIMES[TOOL_EGRESS_ALLOW].maximum if effect == EFFECT_APPROVE else MAX_REJECT_RULE_SECONDS
        if seconds > limit:
            raise ValidationError("for", f"{spell_duration(seconds)} is longer than such a rule may last "
                                  f"({spell_duration(limit)})")
        ends_at = later(now, grant_seconds(TOOL_EGRESS_ALLOW, seconds) if effect == EFFECT_APPROVE else seconds)
    if effect == EFFECT_APPROVE and not _approving_rule_confirmed(args, subject, "*" in route.host):
        print("rule not added: nothing recorded", file=sys.stderr)
        return EXIT_CANCELLED
    waiting = pending_ids(db_path(args))
    with GrantStore(db_path(args)) as store:
        # The same rule already deciding: added all the same (a later end is a way to extend it), and said.
        same = [item.rule for item in rules_in_force(store) if item.decides and item.rule.effect == effect
                and item.rule.queue_key == args.bottle and item.rule.subject_value == subject
                and bool(item.rule.pattern) == ("*" in route.host)]
        rule = store.add_rule(queue_key=args.bottle, tool=TOOL_EGRESS_ALLOW, subject=subject,
                              pattern="*" in route.host, effect=effect, notes=args.notes, ends_at=ends_at,
                              created_by=default_decider(), now=now)
        ended = store.ended_by(rule)
        naming = _routes_naming(store, rule) if effect == EFFECT_REJECT else []
    decided = decided_now(db_path(args), rule.id, warn, waiting)
    if args.bottle is not None and not _known_bottle(db_path(args), args.bottle):
        warn(f"no bottle {args.bottle} is known to this host (a typo? 'bottles list' names them): rule "
             f"{rule.short_id} decides nothing until a bottle of that name files ('rules revoke {rule.short_id}' "
             "ends it)")
    if args.json:
        print_json({**rule_json(rule, utc_now()), "decided_now": decided,
                    "ended_grants": [grant.id for grant in ended],
                    "routes_files_naming_it": [grant.id for grant in naming]})
        return 0
    # In the words '--remember' answers with (grants_cmds.rule_made_line): one thing, said one way.
    print_untrusted(rule_made_line(made_rule(rule, now), what=describe_subject(rule.tool, rule.subject_value)))
    print_untrusted(ended_lines(ended))  # as lines: a newline in a subject (a row a sidecar wrote) is escaped
    print_untrusted([f"note: {grant.queue_key}'s routes file in force (grant {grant.short_id}, approved on proposal "
                     f"{str(grant.proposal_id)[:8]}) names a host this rejects: a rule ends no part of a routes "
                     f"file, so it still lets {grant.queue_key} reach it; 'grants revoke {grant.short_id}' ends it "
                     "(the agent then proposes a file without it)" for grant in naming])
    print_untrusted(decided_now_line(rule.effect, decided, _NAMED))
    if effect == EFFECT_APPROVE and "*" not in route.host:
        print_untrusted(_left_to_you(db_path(args), args.bottle, subject, decided))
    print_untrusted(_warnings(route.host, route.widening(), rule.effect))
    print_untrusted([f"note: rule {other.short_id}, the same, already stands, {time_left(now, other.ends_at)}; "
                     f"both decide until each ends ('rules revoke {other.short_id}' ends the older)" for other in same])
    return 0


def _approving_rule_confirmed(args: argparse.Namespace, subject: dict[str, Any], pattern: bool) -> bool:
    """Whether to record an approving rule: at once where nothing it approves is asked for twice on a screen;
    else after a typed ``yes`` on a terminal, or with ``--yes``; off a terminal without it, refused.

    The rule approves, now and until it ends, what every screen asks about a second time: its own host (a
    wildcard over many owners, a look-alike, a host that reaches inside), and the pending proposals it matches
    that carry such a badge, which it approves at once, unseen. So it is asked as they are.
    """
    why = subject_approval(TOOL_EGRESS_ALLOW, subject).why_asked_twice
    with QueueStore(db_path(args)) as queue:
        flagged = []
        for proposal in queue.pending(args.bottle):
            if proposal.tool != TOOL_EGRESS_ALLOW:
                continue
            try:  # as the keeper will decide it (standing.rule_for)
                matched = approves(subject, pattern, proposal.tool, subject_of(proposal.tool, proposal.payload),
                                   subject_kinds(TOOL_EGRESS_ALLOW, subject))
            except ValidationError:
                continue  # nothing a rule can match: it stays for the operator
            approval = approval_of(proposal.tool, proposal.payload, proposal.current_file)
            if matched and approval.needs_confirmation:
                flagged.append(f"  {proposal.short_id}  {proposal.queue_key}  [{','.join(approval.kinds)}] "
                               f"{approval.grants[0]}")
    if not why and not flagged:
        return True
    if args.yes:
        return True
    at_once = (f"it approves at once {len(flagged)} pending proposal(s) asked about twice: "
               f"{', '.join(line.split()[0] for line in flagged[:_NAMED])}{', ...' if len(flagged) > _NAMED else ''}"
               if flagged else "")
    reason = why or at_once
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        said = "; ".join(part for part in (why, at_once) if part)
        raise ValidationError("yes", f"needed to add this rule off a terminal: it approves what every screen asks "
                              f"about twice ({said}); nothing recorded (give --yes to add it all the same)")
    print_untrusted([*_warnings(str(subject["host"]), [], EFFECT_APPROVE),
                     *([at_once.split(":")[0] + ":", *flagged[:_NAMED]] if flagged else [])])
    return confirm(f"\nadd this rule, approving {describe_subject(TOOL_EGRESS_ALLOW, subject)} for "
                   f"{args.bottle or 'every bottle'}?", reason)


def _left_to_you(path: Path, bottle: str | None, subject: dict[str, Any], decided: list[str]) -> list[str]:
    """The note naming the pending proposals in an approving rule's scope that ask for its very host but other
    methods or paths, which it leaves undecided: it matches exactly what it names, and a rule typed with --host
    alone (any method, every path) does not approve the agent's ``GET`` of that host, however much the operator
    meant it to."""
    left = []
    with QueueStore(path) as queue:
        for proposal in queue.pending(bottle):
            if proposal.tool != TOOL_EGRESS_ALLOW or proposal.id in decided:
                continue
            try:
                asked = subject_of(proposal.tool, proposal.payload)
            except ValidationError:
                continue
            if asked.get("host") == subject["host"] and asked != subject:
                left.append(f"{proposal.short_id} ({describe_subject(TOOL_EGRESS_ALLOW, asked)})")
    if not left:
        return []
    return [f"note: it leaves to you {len(left)} pending proposal(s) for {subject['host']} with other methods or "
            f"paths: {', '.join(left[:_NAMED])}{', ...' if len(left) > _NAMED else ''}; an approving rule "
            "approves exactly what it names ('proposals approve ID' decides one; a rule with its --method and "
            "--path decides the like of it)"]


def _routes_naming(store: GrantStore, rule: Rule) -> list[Grant]:
    """The routes files in force in the rejecting ``rule``'s scope that name a host it rejects (their grants).

    A rule ends the grants of its own tool that let through any of what it rejects; a routes file is one grant
    for many hosts, which a rule cannot end in part, so one naming the host goes on letting the bottle reach
    it. Each is read as the screens read a routes file for its ``rejected`` caution (``rejected_cautions``), from
    the text of the approval whose digest the grant holds."""
    found = []
    rejection = Rejection(rule.id, rule.subject_value, bool(rule.pattern), rule.queue_key)
    with store.db.read() as conn:
        for grant in grants_in_force_in(conn, TOOL_EGRESS_BLOCK, rule.queue_key, utc_now()):
            text = approved_text(conn, str(grant.proposal_id), str(grant.subject_value.get("file_sha256")))
            if text is not None and rejected_cautions(text, grant.queue_key, [rejection]):
                found.append(grant)
    return found


def _warnings(host: str, widening: list[str], effect: str) -> list[str]:
    """What to warn of in a rule typed for ``host``: its wildcards, a host that is not what it looks like, an
    approval that reaches inside (this machine, a metadata service, a private network), and a rejection over IP
    addresses, which rejects none of them (no wildcard covers an address)."""
    if effect == EFFECT_REJECT and "*" in host and host.rsplit(".", 1)[-1].isdecimal():
        return [f"WARNING: {host} rejects no address: no wildcard covers an IP address; reject each address "
                "(--host 169.254.169.254)"]
    return [f"WARNING: {reason}" for reason in widening] + \
        [f"WARNING: host {host} is not what it looks like: {problem}" for problem in host_problems(host)] + \
        ([f"WARNING: host {host} reaches inside: {'; '.join(places)}"]
         if effect == EFFECT_APPROVE and (places := inside_places(host)) else [])


def _known_bottle(path: Path, slug: str) -> bool:
    """Whether the host has recorded bottle ``slug`` (prepared it, or seen it file a proposal)."""
    with QueueStore(path) as queue:
        return bool(BottleStore(database=queue.db).overview(slug))


def cmd_rules_revoke(args: argparse.Namespace) -> int:
    """End a rule now, with a reason (audited)."""
    with GrantStore(db_path(args)) as store:
        revoked = revoke_rule(store, args.id, args.reason, revoked_by=default_decider())
    if args.json:
        print_json({**rule_json(revoked.rule, utc_now()), "decided": revoked.idle is None})
    else:
        print_untrusted(revoked.line)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``rules`` verb."""
    rules = subparsers.add_parser("rules", help=summary("rules"), epilog=_RULES_EPILOG,
                                  description="Standing rules: your decision, made again for matching proposals.",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = rules.add_subparsers(dest="rules_verb", metavar="VERB", required=True)
    p = verb_parser(verbs, "list", json=True, help="rules in force (every one with --all)",
                    description="List standing rules in force, newest first.")
    p.add_argument("--all", action="store_true", help="ended and revoked rules too")
    p.set_defaults(handler=cmd_rules_list)
    p = verb_parser(verbs, "add", json=True, help="add a rule for egress-allow proposals",
                    description="Add a standing rule for egress-allow proposals: approve (until --for) or "
                    "reject (--reject; for good unless --for) every proposal of one bottle (--bottle) or of all "
                    "(--all-bottles) that asks for exactly this host, these methods and these paths (a host pattern, "
                    "*.example.com: a name under it, within these methods and paths; a rejecting rule: that asks "
                    "for any of it); an approving rule names the pending proposals for its host that ask for other "
                    "methods or paths, which it leaves to you. A wildcard over a public suffix is warned of. "
                    "Proposals already pending that it matches are decided at once, and named (--json: "
                    "decided_now). A rejecting rule also ends, at once, every live egress-allow grant "
                    "in its scope that lets through any of what it rejects, and names each (--json: ended_grants); "
                    "a routes file in force there that names a host it rejects is named, not ended: a rule cannot "
                    "end part of one (--json: routes_files_naming_it).")
    p.add_argument("--bottle", metavar="SLUG", help="the bottle whose proposals it decides (one the host has not "
                   "recorded is warned of)")
    p.add_argument("--all-bottles", action="store_true", help="decide every bottle's matching proposals")
    p.add_argument("--host", required=True, metavar="HOST", help="the host, or a pattern such as *.example.com")
    p.add_argument("--path", action="append", metavar="PREFIX", help="a path prefix (repeatable; default: any)")
    p.add_argument("--method", action="append", metavar="METHOD", help="an HTTP method (repeatable; default: any)")
    p.add_argument("--reject", action="store_true", help="reject matching proposals instead of approving them, and "
                   "end the live grants that let any of it through")
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help="how long the rule stands: 8h, 7d, 2w or a time (approving rules must end)")
    p.add_argument("--notes", default="", metavar="TEXT", help="why (shown with each decision it makes)")
    p.add_argument("--yes", action="store_true", help="add an approving rule that approves what every screen asks "
                   "about twice (a wildcard over many owners, a look-alike, a host that reaches inside, or a pending "
                   "proposal so marked) without asking for a typed 'yes'; off a terminal, such a rule needs it")
    p.set_defaults(handler=cmd_rules_add, field_options={"for": "--for", "paths": "--path", "methods": "--method"})
    p = verb_parser(verbs, "revoke", json=True, help="end a rule now",
                    description="End a standing rule now (audited). An approving rule's grants stay until they "
                    "end (revoke those with 'grants revoke'); after a rejecting rule, what it rejected is asked of "
                    "you again, and the grants it ended stay ended.")
    p.add_argument("id", metavar="ID", help="the rule's id or a unique prefix of it (4 digits or more)")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit log)")
    p.set_defaults(handler=cmd_rules_revoke, field_options={"reason": "--reason"})

