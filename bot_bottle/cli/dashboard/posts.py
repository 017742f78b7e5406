"""The dashboard's forms: a decision, a modification's preview, a grant's or a rule's revocation; each the
operator's own.

A post must carry the session, this server's exact Origin (and
``Sec-Fetch-Site: same-origin`` where the browser sends it), the form token
only our pages hold and, for a proposal, the digest of the proposal as its
page showed it. A decision also names itself with its button
(``decision=approve``): a form sent any other way (Enter in a text box sends
nothing: ``proposal_page``) records nothing. An approval whose grant widens
access or names a look-alike host answers with a second page that names
the grant (``widening_page``), and is recorded only with that page's token,
which binds the proposal as shown to the grant as named. After a decision
the browser goes on to the next pending proposal, told what was recorded.
"""

from __future__ import annotations

import hmac
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from bot_bottle.cli.dashboard.handler import DashboardBase
from bot_bottle.cli.dashboard.proposal_page import confirm_page, widening_page
from bot_bottle.cli.dashboard.state import FORM_FIELDS, MAX_FORM_BYTES, MAX_FORM_FIELDS, confirm_token
from bot_bottle.cli.grants_cmds import remembered_rule, replaced_lines
from bot_bottle.cli.in_force import revoke_rule
from bot_bottle.cli.inbox import decided_now, file_approval, pending_ids, routes_base_of
from bot_bottle.decisions import decide
from bot_bottle.errors import (
    AlreadyDecided,
    AnchorNotWritten,
    AuditTampered,
    BotBottleError,
    ProposalExpired,
    ReadChanged,
    Refused,
    ValidationError,
)
from bot_bottle.grant_records import Grant
from bot_bottle.policy.approval import UNREADABLE, Approval
from bot_bottle.policy.lifetimes import approval_extent
from bot_bottle.policy.routes import validate_final_file
from bot_bottle.queue_reads import shown_digest
from bot_bottle.records import (
    PROPOSAL_ID_RE,
    STATUS_APPROVED,
    STATUS_MODIFIED,
    STATUS_REJECTED,
    STATUSES,
    TOOL_EGRESS_BLOCK,
    Proposal,
    sha256_text,
)
from bot_bottle.timestamps import parse_duration, utc_now
from bot_bottle.wire.http_bounds import parse_content_length

# The button each decision is sent with (``decision=...``): a form sent without it (Enter in a text box, a
# script) records nothing.
BUTTONS = {STATUS_APPROVED: ("approve",), STATUS_REJECTED: ("reject",),
           STATUS_MODIFIED: ("record this modification", "modify")}


class PostHandler(DashboardBase):
    """The dashboard's handler with its forms (``server.DashboardHandler`` adds the pages)."""

    def do_POST(self) -> None:
        """Decide (``/proposal/ID/decide``), preview a modification (``/proposal/ID/preview``), or revoke a grant
        (``/grant/ID/revoke``) or a standing rule (``/rule/ID/revoke``)."""
        url = urlsplit(self.path)
        try:
            parts = self.inner_path(url.path).split("/")
            self.require_session()
            self._require_same_origin()
            revoking = len(parts) == 4 and parts[1] in ("grant", "rule") and parts[3] == "revoke"
            if not revoking and (len(parts) != 4 or parts[1] != "proposal" or parts[3] not in ("decide", "preview")):
                raise Refused(HTTPStatus.NOT_FOUND, "Not found", "there is no such form")
            form = self._read_form()
            if not hmac.compare_digest(form.get("csrf", "").encode("utf-8", "replace"), self.dashboard.csrf.encode()):
                raise Refused(HTTPStatus.FORBIDDEN, "Refused",
                              "the form's CSRF token is missing or wrong: decide from the dashboard's own page")
            self.check_file()
            if revoking:
                self._revoke(parts[1], parts[2], form)
                return
            proposal = self.proposal(parts[2])
            if not hmac.compare_digest(form.get("shown", "").encode("utf-8", "replace"),
                                       shown_digest(proposal).encode()):
                raise Refused(HTTPStatus.CONFLICT, "Not recorded",
                              f"proposal {proposal.short_id} is not what the page showed (proposals are immutable: "
                              "it was rewritten in the database); nothing recorded. Check 'bot-bottle audit verify'")
            if parts[3] == "preview":
                self._preview(proposal, form)
            else:
                self._decide(proposal, form)
        except Refused as refused:
            self.refused(refused)
        except BotBottleError as exc:
            self.unavailable(exc)

    def _require_same_origin(self) -> None:
        # The Host/Origin allowlist already refused a foreign Origin; a post must name one, so a
        # client that leaves it out (or a browser that sends "null") does not pass for ours.
        origins = self.headers.get_all("Origin") or []
        if len(origins) != 1:
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", "a decision must come from the dashboard's own page "
                          "(it needs one Origin header)")
        # Exactly our origin, port included: a page another local server serves (localhost:other) is
        # another origin, though the Host allowlist (which ignores ports) would let it by.
        if origins[0].strip().lower() not in self.server.origins:
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", "a decision must come from the dashboard's own page "
                          f"(Origin {origins[0][:80]!r})")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            raise Refused(HTTPStatus.FORBIDDEN, "Refused", f"a decision must come from the dashboard's own page "
                          f"(Sec-Fetch-Site: {site[:40]})")

    def _read_form(self) -> dict[str, str]:
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused(HTTPStatus.NOT_IMPLEMENTED, "Refused", "send the form with a Content-Length")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Refused",
                          "a form must be application/x-www-form-urlencoded")
        try:
            length = parse_content_length(self.headers.get_all("Content-Length") or [])
        except ValueError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", str(exc)) from None
        if length is None:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "Refused", "Content-Length is required")
        if length > MAX_FORM_BYTES:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Refused",
                          f"a form of {length} bytes is over the limit of {MAX_FORM_BYTES}")
        slots, bodies = self.server.slots, self.server.bodies
        assert slots is not None and bodies is not None  # the dashboard has one budget for all (see serve)
        if not slots.acquire(blocking=False):
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "Busy", "too many requests at once; retry")
        try:
            if not bodies.take(length):
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "Busy", "too many request bytes at once; retry")
            try:
                body = self.rfile.read(length)
            finally:
                bodies.give(length)
        finally:
            slots.release()
        if len(body) < length:
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", f"the body ended after {len(body)} of {length} bytes")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                              max_num_fields=MAX_FORM_FIELDS, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", "the form is not UTF-8 form data") from None
        form: dict[str, str] = {}
        for name, value in pairs:
            if name not in FORM_FIELDS or name in form:
                raise Refused(HTTPStatus.BAD_REQUEST, "Bad request", f"unexpected form field {name[:40]!r}")
            # Browsers send a textarea's newlines as CRLF; the file and notes are kept with LF, as written.
            form[name] = value.replace("\r\n", "\n")
        return form

    def _preview(self, proposal: Proposal, form: dict[str, str]) -> None:
        """The confirmation of a modification: the operator's own diff, or why the file cannot be taken."""
        final = form.get("final", "")
        problem: str | None = None
        if proposal.report_only:
            problem = f"{proposal.tool} proposals are report-only: approve them with a reason or reject them"
        elif final == proposal.payload:
            problem = "your file is the same as the proposal: approve it instead"
        else:
            try:
                validate_final_file(proposal.tool, final)
            except ValidationError as exc:
                problem = str(exc)
        if self.dashboard.queue.response(proposal.id) is not None:
            self.show(proposal, HTTPStatus.CONFLICT, "this proposal was decided meanwhile: nothing recorded")
            return
        html = confirm_page(proposal, final, root=self.dashboard.root, csrf=self.dashboard.csrf,
                            shown=shown_digest(proposal), final_sha256=sha256_text(final), problem=problem,
                            base=routes_base_of(self.dashboard.queue, proposal))
        self.page(HTTPStatus.OK if problem is None else HTTPStatus.BAD_REQUEST, html)

    def _decide(self, proposal: Proposal, form: dict[str, str]) -> None:
        """Record the decision the form carries, under ``decide``'s rules, for the proposal as shown."""
        status = form.get("status", "")
        if status not in STATUSES:
            self.show(proposal, HTTPStatus.BAD_REQUEST, "unknown decision: nothing recorded")
            return
        if form.get("decision") not in BUTTONS[status]:
            self.show(proposal, HTTPStatus.BAD_REQUEST, f"not recorded: a decision is sent with its own button "
                      f"({BUTTONS[status][0]!r}), never by Enter in a text box")
            return
        final: str | None = None
        if status == STATUS_MODIFIED:
            final = form.get("final", "")
            # Only the file whose diff the confirmation page showed is recorded.
            if not hmac.compare_digest(form.get("final_sha256", "").encode("utf-8", "replace"),
                                       sha256_text(final).encode()):
                self.show(proposal, HTTPStatus.CONFLICT,
                          "the file is not the one your confirmation showed: nothing recorded; modify it again")
                return
        try:  # (before the second ask: a length that cannot be is said before its button, not after it)
            duration = form.get("for", "").strip()
            grant_for = parse_duration("for", duration) if duration else None
            remember = form.get("remember", "") or None
            # What approving (or modifying into ``final``) grants; the second ask says what its button records: for
            # how long, and the rule "remember" makes (where the tool's grant can be read: else none lasts).
            base = routes_base_of(self.dashboard.queue, proposal)
            approval = None if status == STATUS_REJECTED else file_approval(
                proposal, final if final is not None else proposal.payload, base)
            extent = approval_extent(proposal.tool, proposal.queue_key, grant_for, remember) \
                if approval is not None and UNREADABLE not in approval.kinds else ""
        except ValidationError as exc:
            self.show(proposal, HTTPStatus.BAD_REQUEST, f"not recorded: {exc}")
            return
        # A routes file is read against the last one approved for its bottle: one approved since the page was
        # shown (another proposal, in another tab or by a rule) changes what approving this one adds, though the
        # proposal itself did not change (hostile review 51: a page reading 'adds c.example' approved a file
        # putting back the host the approval meanwhile dropped).
        if approval is not None and proposal.tool == TOOL_EGRESS_BLOCK \
                and not hmac.compare_digest(form.get("read", "").encode("utf-8", "replace"), base.digest().encode()):
            self.show(proposal, HTTPStatus.CONFLICT, "not recorded: the routes file on record for this bottle changed "
                      "(another approved, or it was revoked) since this page read this one, or a standing rejection "
                      "for it was made or ended since, so what approving it adds and drops, or the rejections it is "
                      "said to grant past, changed; read it again")
            return
        if approval is not None and not self._confirmed(proposal, approval, form, extent):
            return
        notes = form.get("notes", "")
        # On to the next pending proposal afterwards: the first filed after this one, else the oldest left.
        before, following = self.dashboard.neighbours(proposal.id)
        waiting = pending_ids(self.dashboard.queue.db.path) if remember else []  # what its rule may decide at once
        replaced: dict[str, tuple[Grant, ...]] = {}  # the routes grants it ended: the files it replaced
        try:
            decide(proposal.id, status, notes, final, self.dashboard.decided_by, store=self.dashboard.queue,
                   shown=proposal, grant_for=grant_for, remember=remember,
                   read=None if approval is None else base.digest(), replaced=replaced)
        except AnchorNotWritten as exc:  # committed: the decision stands, with a warning about its proof
            self.dashboard.log(f"{status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool}); {exc}")
            self.show(proposal, HTTPStatus.OK, "; ".join([status, *replaced_lines(replaced.get(proposal.id, ())),
                                                          f"but {exc}"]))
            return
        except ValidationError as exc:
            self.show(proposal, HTTPStatus.BAD_REQUEST, f"not recorded: {exc}")
            return
        except (AlreadyDecided, AuditTampered, ProposalExpired, ReadChanged) as exc:
            self.show(proposal, HTTPStatus.CONFLICT, f"not recorded: {exc}")
            return
        self.dashboard.log(f"{status} {proposal.short_id} ({proposal.queue_key}, {proposal.tool})")
        self.dashboard.replaced_now(proposal.id, replaced.get(proposal.id, ()))  # the next page names them
        if remember:  # its rule decides the pending ones it matches now, as 'rules add' does; the next page names them
            rule = remembered_rule(self.dashboard.grants, proposal.id, utc_now())
            if rule is not None:
                self.dashboard.ruled_now(proposal.id, decided_now(self.dashboard.queue.db.path, rule["id"],
                                                                  self.dashboard.log, waiting))
            if following is not None and self.dashboard.queue.response(following) is not None:
                following = None  # the rule decided it just now: on to one still pending
        following = following or self.dashboard.neighbours(proposal.id)[1] or before
        target = f"/proposal/{following}" if following is not None else "/"
        self.redirect(f"{self.dashboard.root}{target}?after={proposal.id}")

    def _confirmed(self, proposal: Proposal, approval: Approval, form: dict[str, str], extent: str) -> bool:
        """True when the approval (``approval``: what it grants) may be recorded: it does not widen access, or its
        second ask was answered.

        Otherwise the second ask is the answer (the grant named, one
        button), or a 409 when the form's token names another grant.
        """
        if not approval.needs_confirmation:
            return True
        shown = shown_digest(proposal)
        token = confirm_token(shown, approval)
        given = form.get("confirm")
        if given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
            return True
        if given is not None:
            self.show(proposal, HTTPStatus.CONFLICT, "not recorded: the confirmation named another grant than this "
                      "one; decide again")
            return False
        self.page(HTTPStatus.OK, widening_page(proposal, approval, form, root=self.dashboard.root,
                                               csrf=self.dashboard.csrf, shown=shown, token=token, extent=extent))
        return False

    def _revoke(self, kind: str, id_prefix: str, form: dict[str, str]) -> None:
        """End a grant or a rule (``kind``) now, with the reason the form carries; back to the bottles page, told
        what the revocation left."""
        if not PROPOSAL_ID_RE.fullmatch(id_prefix):  # a grant's or a rule's id has the same form
            raise Refused(HTTPStatus.NOT_FOUND, "Not found", f"there is no such {kind}")
        if form.get("decision") != "revoke":
            raise Refused(HTTPStatus.BAD_REQUEST, "Not revoked", f"a {kind} is revoked with its own button, never by "
                          "Enter in a text box")
        reason, by = form.get("reason", ""), self.dashboard.decided_by
        try:
            if kind == "rule":  # as the keeper decides with it, as 'rules revoke' and the TUI do
                rule = revoke_rule(self.dashboard.grants, id_prefix, reason, revoked_by=by).rule
                revoked, what = rule.id, f"rule {rule.short_id} ({rule.queue_key or 'every bottle'}, {rule.effect})"
            else:
                grant = self.dashboard.grants.revoke(id_prefix, reason, revoked_by=by)
                self.dashboard.revoked_now(grant)
                revoked, what = grant.id, f"grant {grant.short_id} ({grant.queue_key}, {grant.tool})"
        except ValidationError as exc:  # the form's fault (no reason given), not another's change: as a decision's
            raise Refused(HTTPStatus.BAD_REQUEST, "Not revoked", f"not revoked: {exc}") from None
        except BotBottleError as exc:
            raise Refused(HTTPStatus.CONFLICT, "Not revoked", f"not revoked: {exc}") from None
        self.dashboard.log(f"revoked {what}")
        self.redirect(f"{self.dashboard.root}/bottles?revoked{'_rule' if kind == 'rule' else ''}={revoked}")
