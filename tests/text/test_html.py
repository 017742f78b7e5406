"""The HTML escaper: the terminal corpus and markup come out as text, escapes marked apart."""

from __future__ import annotations

import unittest

from bot_bottle.text.html import editable, line_html
from tests.helpers.corpus import ATTACK_TEXT, HOSTILE, forbidden


class EscapingTest(unittest.TestCase):
    def test_the_corpus_and_markup_come_out_as_text(self) -> None:
        """Every hostile class: no raw forbidden character, no markup of the agent's, escapes marked apart."""
        for name, text in {**HOSTILE, "html": ATTACK_TEXT}.items():
            with self.subTest(name):
                shown = line_html(text)
                self.assertFalse([c for c in shown if forbidden(c)], name)
                without_ours = shown.replace('<span class="esc">', "").replace("</span>", "")
                self.assertNotIn("<", without_ours)
                self.assertNotIn(">", without_ours)
                self.assertNotIn('"', without_ours)
        self.assertEqual(line_html("a\x1bb<"), 'a<span class="esc">\\x1b</span>b&lt;')

    def test_an_editor_box_gets_the_escapes_spelled_out(self) -> None:
        """Agent text for a textarea: unsafe characters as their escapes; newlines and tabs kept."""
        self.assertEqual(editable("a\u202eb\n\tc\x1b"), "a\\u202eb\n\tc\\x1b")
        for name, text in HOSTILE.items():
            with self.subTest(name):
                self.assertFalse([c for c in editable(text) if forbidden(c) and c not in "\n\t"])
