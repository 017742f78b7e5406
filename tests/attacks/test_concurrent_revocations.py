"""Two operators revoke the same standing rule at the same moment: it is revoked once, by one of them.

Every screen revokes a rule through ``cli.in_force.revoke_rule``: it reads
the rules as they decide (``standing.rules_in_force``, a read), then records
the revocation in a write transaction of its own. Before the fix next to
these tests, that transaction did not look again, so two operators (the
dashboard and 'rules revoke', the TUI and the dashboard, two terminals)
who both read the rule as in force both recorded a ``rule-revoked`` entry
and both were told "revoked rule ...": one of them said a revocation it did
not make, the row named the first, and the log held a second revocation
the row does not name, which 'audit verify' then reported as tampering
("the revocation was undone in the file") for good. Measured with two real
``rules revoke`` processes started together: 3 of 9 rounds both
succeeded (after it, none of 20). Here the two revocations are made to meet deterministically: each
waits, after its read, for the other's read, then both write, each with a
connection of its own on the real file.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from unittest import mock

from bot_bottle.cli import in_force
from bot_bottle.errors import AlreadyEnded
from bot_bottle.grants import GrantStore
from bot_bottle.records import ACTION_RULE_REVOKED, EFFECT_APPROVE, TOOL_EGRESS_ALLOW
from bot_bottle.timestamps import later, utc_now
from tests.helpers.browser import Browser
from tests.helpers.dashboard import BrowserCase
from tests.helpers.host_grants import HostGrantsCase


def meeting_after_the_read() -> tuple[threading.Barrier, Any]:
    """A barrier two revocations meet at after each has read the rules in force, and ``rules_in_force`` waiting
    at it (to patch into ``cli.in_force``)."""
    met = threading.Barrier(2, timeout=30)
    reading = in_force.rules_in_force

    def read_then_meet(store: GrantStore) -> list[in_force.RuleInForce]:
        found = reading(store)
        met.wait()
        return found

    return met, read_then_meet


class ConcurrentRuleRevocationTest(HostGrantsCase):
    def add_rule(self, *options: str) -> str:
        """A rule as the operator adds it ('rules add'); its id."""
        made = json.loads(self.cli("rules", "add", "--bottle", "web-1", "--host", "docs.python.org",
                                   "--notes", "docs", "--json", "--yes", *options))
        return str((made.get("rule") or made)["id"] if isinstance(made, dict) else made[0]["id"])

    def revoke_at_once(self, rule_id: str) -> dict[str, Any]:
        """Operators ann and bob revoke ``rule_id`` together: both read it as in force before either writes.
        What each was answered: the revoked rule, or the refusal."""
        _, read_then_meet = meeting_after_the_read()
        answers: dict[str, Any] = {}

        def revoke(who: str) -> None:
            with GrantStore(self.db) as store:
                try:
                    answers[who] = in_force.revoke_rule(store, rule_id, f"{who} ends it", revoked_by=who).rule
                except Exception as exc:  # the answer, whatever it is
                    answers[who] = exc

        with mock.patch.object(in_force, "rules_in_force", read_then_meet):
            threads = [threading.Thread(target=revoke, args=(who,)) for who in ("ann", "bob")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        return answers

    def check_revoked_once(self, rule_id: str) -> None:
        answers = self.revoke_at_once(rule_id)
        revoked = [who for who, answer in answers.items() if not isinstance(answer, Exception)]
        self.assertEqual(len(revoked), 1, f"each was told it revoked the rule: {answers}")
        (first,) = revoked
        (other,) = {"ann", "bob"} - {first}
        self.assertIsInstance(answers[other], AlreadyEnded, answers[other])
        self.assertIn(f"by {first}", str(answers[other]), "the refusal names who revoked it")
        with self.store.db.read() as conn:  # one rule-revoked entry, by the one told so
            logged = conn.execute("SELECT actor FROM audit_log WHERE action = :action AND "
                                  "json_extract(details, '$.rule') = :rule",
                                  {"action": ACTION_RULE_REVOKED, "rule": rule_id}).fetchall()
        self.assertEqual(logged, [(first,)])
        self.assertEqual(self.grants.find_rule(rule_id).revoked_by, first)
        verified = self.run_cli("audit", "verify")
        self.assertEqual(verified.returncode, 0, verified.stderr)

    def test_an_approving_rule_is_revoked_once(self) -> None:
        self.check_revoked_once(self.add_rule("--for", "7d"))

    def test_a_standing_rejection_is_revoked_once(self) -> None:
        self.check_revoked_once(self.add_rule("--reject"))

    def test_a_rejection_whose_row_a_sidecar_deleted_is_revoked_once(self) -> None:
        """The log keeps it (audit.rule_proofs.logged_rejections), and its revocation is held to the same."""
        rule_id = self.add_rule("--reject")
        with self.store.db.read() as conn:
            triggers = [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                                         "AND tbl_name = 'rules'")]
        for trigger in triggers:
            self.raw(f'DROP TRIGGER "{trigger}"')
        self.raw("DELETE FROM rules WHERE id = :id", {"id": rule_id})
        answers = self.revoke_at_once(rule_id)
        revoked = [who for who, answer in answers.items() if not isinstance(answer, Exception)]
        self.assertEqual(len(revoked), 1, f"each was told it revoked the rule: {answers}")
        with self.store.db.read() as conn:
            count = conn.execute("SELECT count(*) FROM audit_log WHERE action = :action",
                                 {"action": ACTION_RULE_REVOKED}).fetchone()[0]
        self.assertEqual(count, 1)
        self.assertEqual([item.rule.id for item in in_force.rules_in_force(self.grants)
                          if item.rule.tool == TOOL_EGRESS_ALLOW and item.decides], [])


def wait_for(browser: Browser, words: tuple[str, ...], seconds: float = 30) -> str:
    """The page's text once it holds one of ``words`` (or at the end of ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        text = browser.text()
        if any(word in text for word in words) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


class TwoDashboardSessionsTest(BrowserCase):
    """Two operators, each in a Chromium session of their own on the dashboard's bottles page, press the same rule's
    revoke button at the same moment."""

    def test_the_rule_is_revoked_once_and_the_other_page_says_so(self) -> None:
        grants = GrantStore(database=self.store.db)
        now = utc_now()
        rule = grants.add_rule(queue_key="web-1", tool=TOOL_EGRESS_ALLOW, pattern=False, effect=EFFECT_APPROVE,
                               subject={"host": "docs.python.org", "methods": [], "paths": []}, notes="docs",
                               created_by="ann", ends_at=later(now, 7 * 86400), now=now)
        other = Browser()
        self.addCleanup(other.close)
        for browser in (self.browser, other):
            browser.get(self.server.url)
            browser.get(f"{self.origin}{self.dashboard.root}/bottles")
        time.sleep(1.5)  # both pages past their guard (a click within 800 ms of a change is dropped)
        press = ("const row = [...document.querySelectorAll('[data-part=rules] tr')]"
                 "  .find(tr => tr.textContent.includes('docs.python.org'));"
                 "const form = row.querySelector('form');"
                 "form.querySelector('input[name=reason]').value = arguments[0];"
                 "form.querySelector('button[value=revoke]').click(); return true;")
        _, read_then_meet = meeting_after_the_read()
        with mock.patch.object(in_force, "rules_in_force", read_then_meet):
            threads = [threading.Thread(target=browser.script, args=(press, reason))
                       for browser, reason in ((self.browser, "ann: not now"), (other, "bob: not now"))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            pages = [wait_for(browser, ("revoked rule", "Not revoked")) for browser in (self.browser, other)]
        told = [page for page in pages if f"revoked rule {rule.short_id}" in page]
        refused = [page for page in pages if "was revoked already" in page]
        self.assertEqual((len(told), len(refused)), (1, 1), pages)
        with self.store.db.read() as conn:
            count = conn.execute("SELECT count(*) FROM audit_log WHERE action = :action",
                                 {"action": ACTION_RULE_REVOKED}).fetchone()[0]
        self.assertEqual(count, 1)
        self.assertTrue(self.dashboard.audit.verify().ok)
