"""One decision in the TUI, asked for deliberately: every prompt names its proposal and what approving it grants.

``Deciding.decide`` runs the questions of ``a`` (approve: a note, or a
reason for a report-only tool), ``m`` (modify in ``$EDITOR``, then confirm
your own diff) and ``r``/``R`` (reject, with a reason; ``R`` asks whether to
reject the same from now on). Above each prompt stand the proposal's short
id, bottle and tool and what approving it grants, with its badge, so no
answer is typed for a proposal the operator is not looking at. Approving
what widens access (or names a look-alike host, or reaches inside) asks
once more, naming the grant and why, and only ``yes`` records it. The
decision is recorded for the proposal exactly as it was shown
(``decide(shown=...)``).
"""

from __future__ import annotations

import curses
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from bot_bottle.cli.common import Shown
from bot_bottle.cli.grants_cmds import remembered_rule, replaced_lines
from bot_bottle.cli.inbox import decided_now, file_approval, pending_ids, routes_base_of
from bot_bottle.cli.render import modification
from bot_bottle.cli.tui.grants_view import grant_question, parse_grant_choice
from bot_bottle.cli.tui.screen import CONFIRM_KEYS, INVALID_KEYS, TerminalScreen
from bot_bottle.decisions import decide
from bot_bottle.errors import AlreadyDecided, AnchorNotWritten, BotBottleError, NotFound, ValidationError
from bot_bottle.grant_records import Grant
from bot_bottle.grants import GrantStore
from bot_bottle.policy.approval import UNREADABLE, Approval, Caution
from bot_bottle.policy.lifetimes import approval_extent
from bot_bottle.queue_store import QueueStore
from bot_bottle.records import (
    EFFECT_APPROVE,
    SHORT_ID_LENGTH,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    TOOL_EGRESS_BLOCK,
    Proposal,
)

_VERB = {STATUS_APPROVED: "approve", STATUS_MODIFIED: "modify", STATUS_REJECTED: "reject"}
# How many of an approval's cautions stand above its prompts (the detail view has them all).
SHOWN_CAUTIONS = 3
CONFIRM_WORD = "yes"


def target_lines(proposal: Proposal, approval: Approval, verb: str, cautions: bool = False) -> list[str]:
    """What a prompt is about: ``approve 3f2a9c1e  bottle web-1  egress-allow`` and what approving grants."""
    badge = f"[{','.join(approval.kinds)}] " if approval.kinds else ""
    lines: list[str] = [Shown(f" {verb} {proposal.short_id}  bottle {proposal.queue_key}  {proposal.tool}", "heading"),
                        Shown(f" grants: {badge}{approval.summary}", "warning" if approval.kinds else "heading")]
    if cautions:
        lines += [Shown(f" {caution.kind}: {caution.text}", "warning") for caution in _shown_cautions(approval)]
    return lines


def _shown_cautions(approval: Approval) -> list[Caution]:
    """The cautions a prompt shows: the first of each kind, then the others in order, ``SHOWN_CAUTIONS`` in all
    or one of each kind if more: three look-alike decoys cannot push the metadata service's out of view."""
    firsts: dict[str, int] = {}
    for index, caution in enumerate(approval.cautions):
        firsts.setdefault(caution.kind, index)
    ordered = [*firsts.values(), *(index for index in range(len(approval.cautions)) if index not in firsts.values())]
    return [approval.cautions[index] for index in ordered[:max(SHOWN_CAUTIONS, len(firsts))]]


def _replacing(replaced: tuple[Grant, ...]) -> str:
    """For the status line: the routes files a decision replaced, their grants ended (read in its transaction)."""
    return "".join(f"; {line}" for line in replaced_lines(replaced, "v lists grants"))


class Deciding:
    """Asks for one decision on a terminal screen and records it; says what happened in one line."""

    def __init__(self, screen: TerminalScreen, store: QueueStore, decided_by: str | None = None) -> None:
        self.screen = screen
        self.store = store
        self.decided_by = decided_by
        #: Why the last modification ended without a file (the editor failed, the file was unchanged ...).
        self.screen_message = ""

    def decide(self, proposal: Proposal, approval: Approval, key: str) -> str:
        """Ask for the decision ``key`` starts on ``proposal`` (shown with ``approval``); record it; the message."""
        final: str | None = None
        if key == "a":
            status = STATUS_APPROVED
            ask = (f"reason for approving {proposal.short_id} (required): " if proposal.report_only
                   else f"approve {proposal.short_id}; note (optional): ")
            notes = self.screen.prompt(ask, target_lines(proposal, approval, "approve", cautions=True))
            if notes is None or (proposal.report_only and not notes.strip()):
                return "approve cancelled" + (": a reason is required" if notes is not None else "")
        elif key == "m":
            if proposal.report_only:
                return f"{proposal.tool} is report-only: approve it with a reason or reject it"
            status = STATUS_MODIFIED
            final = self.confirm_modification(proposal)
            if final is None:
                return self.screen_message or "modify cancelled: nothing recorded"
            approval = file_approval(proposal, final, routes_base_of(self.store, proposal))
            notes = self.screen.prompt(f"modify {proposal.short_id}; note (optional): ",
                                       target_lines(proposal, approval, "modify", cautions=True))
            if notes is None:
                return "modify cancelled"
        else:
            status = STATUS_REJECTED
            notes = self.screen.prompt(f"reason for rejecting {proposal.short_id}: ",
                                       target_lines(proposal, approval, "reject"))
            if not notes or not notes.strip():
                return "reject cancelled: a reason is required"
        verb = _VERB[status]
        approving = status != STATUS_REJECTED
        # An approval says what it grants and asks for how long; 'R' asks whether a rejection stands for good.
        answer = self.screen.prompt(grant_question(proposal, approving), target_lines(proposal, approval, verb)) \
            if key != "r" else ""
        if answer is None:
            return f"{verb} cancelled: nothing recorded"
        try:  # (before the second ask: a typo in the answer is said before a typed yes, not after it)
            choice = parse_grant_choice(answer)
            # The second ask says what the yes records: for how long, and the rule +bottle or +all makes.
            extent = approval_extent(proposal.tool, proposal.queue_key, choice.seconds, choice.remember) \
                if approving and UNREADABLE not in approval.kinds else ""
        except ValidationError as exc:
            return f"{exc}; nothing recorded"
        if not approving and choice.seconds is not None and choice.remember is None:  # (in the TUI's words)
            return (f"reject cancelled: {answer.strip()} is how long a rule stands: give +bottle or +all with it, "
                    "or leave it out; nothing recorded")
        if approving and approval.needs_confirmation:
            what = "approval" if status == STATUS_APPROVED else "modification"
            sure = self.screen.prompt(f"this {what}{extent}: {approval.why_asked_twice}: type {CONFIRM_WORD} to "
                                      f"{verb} {proposal.short_id}, anything else cancels: ",
                                      target_lines(proposal, approval, verb, cautions=True))
            if sure is None or sure.strip().lower() != CONFIRM_WORD:
                return f"{verb} cancelled: nothing recorded"
        # A routes file is read against the last one approved for its bottle: one approved while the list stood or
        # the prompts waited (from another screen: the CLI, the dashboard, another operator) changes what approving
        # this one adds, though the proposal did not change (hostile review 51): what was shown must still be what
        # it grants.
        base = routes_base_of(self.store, proposal)  # held to what the deciding transaction reads, too
        if approving and proposal.tool == TOOL_EGRESS_BLOCK and approval != file_approval(
                proposal, final if final is not None else proposal.payload, base):
            return (f"not recorded: the routes file on record for {proposal.queue_key} changed (another approved, or "
                    f"it was revoked) since this screen read {proposal.short_id}, or a standing rejection for it "
                    f"was made or ended since, so what {'approving' if status == STATUS_APPROVED else 'modifying'} it "
                    "adds and drops, or the rejections it is said to grant past, changed; look at it again")
        label = f"{proposal.short_id} ({proposal.queue_key}, {proposal.tool})"
        waiting = pending_ids(self.store.db.path) if choice.remember else []  # what its rule may decide at once
        replaced: dict[str, tuple[Grant, ...]] = {}  # the routes grants it ended: the files it replaced
        try:
            response = decide(proposal.id, status, notes, final, self.decided_by, store=self.store, shown=proposal,
                              grant_for=choice.seconds, remember=choice.remember,
                              read=base.digest() if approving else None, replaced=replaced)
        except AnchorNotWritten as exc:  # committed: the decision stands, with a warning about its proof
            return f"{status} {label}{_replacing(replaced.get(proposal.id, ()))}; but {exc}"
        except (AlreadyDecided, NotFound, ValidationError, BotBottleError) as exc:
            return f"{exc}; nothing recorded"
        if key == "R" and not choice.remember:  # R without +bottle or +all: said, not passed for "from now on"
            return f"{status} {label}, once: no +bottle or +all given, so nothing is rejected from now on"
        said = f"{status} {label}" + _replacing(replaced.get(proposal.id, ())) + (
            self._rule_made(proposal, response.decided_at, waiting) if choice.remember else "")
        return said + self._ended(proposal) if status == STATUS_REJECTED and choice.remember else said

    def _rule_made(self, proposal: Proposal, decided_at: str, waiting: list[str]) -> str:
        """The standing rule ``+bottle`` or ``+all`` just made: its id (for 'rules revoke'), whose, how long, and
        which of ``waiting`` (pending before it) it decided at once.

        It does what the decision did, so the line's verb says what it does."""
        rule = remembered_rule(GrantStore(database=self.store.db), proposal.id, decided_at)
        if rule is None:
            return ", remembered"
        # The pending proposals it matches, decided now as 'rules add' and 'proposals reject --remember' do.
        decided = [each[:SHORT_ID_LENGTH] for each in decided_now(self.store.db.path, rule["id"], lambda line: None,
                                                                  waiting)]
        verb = "approved" if rule["effect"] == EFFECT_APPROVE else "rejected"
        also = f"; it {verb} {len(decided)} pending: {', '.join(decided[:3])}{', ...' if len(decided) > 3 else ''}"
        return (f"; rule {rule['short_id']} for {rule['bottle'] or 'every bottle'}, "
                f"{'for good' if rule['ends_at'] is None else rule['left']}"  # (short: the status line is one)
                + (also if decided else ""))

    def _ended(self, proposal: Proposal) -> str:
        """What the standing rejection just made of ``proposal`` ended: the grants that let through what it rejects."""
        ended = GrantStore(database=self.store.db).ended_by_decision(proposal.id)
        if not ended:
            return ""
        if len(ended) == 1:
            return f"; ended grant {ended[0].short_id}"  # (it let through what the rule rejects)
        return f"; ended {len(ended)} grants that let it through: {ended[0].short_id}, ... (v lists grants)"

    def edit(self, proposal: Proposal, text: str) -> str | None:
        """Open ``text`` in $EDITOR (default vi); the edited text, or None if it is empty or the proposal's own."""
        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        with tempfile.TemporaryDirectory(prefix="bot-bottle-edit-") as folder:
            path = Path(folder) / f"{proposal.short_id}-{proposal.tool}.txt"
            path.write_text(text, encoding="utf-8")
            curses.def_prog_mode()
            curses.endwin()
            try:
                result = subprocess.run([*editor, str(path)], check=False)
            except OSError as exc:
                self.screen_message = f"cannot run the editor {editor[0]!r}: {exc.strerror}"
                return None
            finally:
                curses.reset_prog_mode()
                self.screen.screen.refresh()
            if result.returncode != 0:
                self.screen_message = f"the editor exited with {result.returncode}: modify cancelled"
                return None
            try:
                with path.open(encoding="utf-8", newline="") as handle:  # the bytes as written: no newline translation
                    edited = handle.read()
            except (OSError, UnicodeDecodeError) as exc:
                self.screen_message = f"cannot read the edited file: {exc}"
                return None
        if not edited.strip() or edited == proposal.payload:
            self.screen_message = "modify cancelled: the file was empty or unchanged"
            return None
        return edited

    def confirm_modification(self, proposal: Proposal) -> str | None:
        """Edit, then show the operator their own diff (proposed -> final) to confirm; the final text or None.

        A file its tool cannot take is shown with the reason and can only be
        edited again or cancelled. What is returned is exactly what was shown.
        """
        self.screen_message = ""
        text = proposal.payload
        while True:
            edited = self.edit(proposal, text)
            if edited is None:
                return None
            text = edited
            accept: tuple[str, ...] = ("y", "e")
            try:
                shown, keys = modification(proposal, text, routes_base_of(self.store, proposal)), CONFIRM_KEYS
            except ValidationError as exc:
                shown = [f"cannot record this file: {exc}", "", "your file:", *text.split("\n")]
                keys, accept = INVALID_KEYS, ("e",)
            self.screen.scroll = 0
            answer = self.screen.modal(shown, keys, accept)
            if answer == "y":
                return text
            if answer != "e":
                self.screen_message = "modify cancelled: nothing recorded"
                return None
