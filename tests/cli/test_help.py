"""Every verb has --help text and is documented in the README."""

from __future__ import annotations

import argparse
import io
import unittest
from contextlib import redirect_stderr, redirect_stdout

from bot_bottle.cli import build_parser, main
from tests.helpers.support import REPO


def leaf_verbs(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every full verb path (``('db', 'status')``, ...) of the parser tree."""
    found: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.extend(leaf_verbs(child, (*prefix, name)))
    return found or [prefix]


class HelpTest(unittest.TestCase):
    def test_every_verb_has_help_and_a_readme_entry(self) -> None:
        """Each leaf verb prints --help with a description, and the README names it."""
        readme = (REPO / "README.md").read_text()
        verbs = leaf_verbs(build_parser())
        self.assertGreaterEqual(len(verbs), 11)
        for verb in verbs:
            with self.subTest(verb=" ".join(verb)):
                out = io.StringIO()
                with redirect_stdout(out):
                    code = main([*verb, "--help"])
                self.assertEqual(code, 0)
                text = out.getvalue()
                self.assertIn("usage: bot-bottle " + " ".join(verb), text)
                self.assertGreater(len(text.split("options:")[0].splitlines()), 2, "a description")
                self.assertIn(f"`{' '.join(verb)}", readme)

    def test_top_level_help_has_examples(self) -> None:
        """bot-bottle --help lists the verbs and shows examples."""
        out = io.StringIO()
        with redirect_stdout(out):
            self.assertEqual(main(["--help"]), 0)
        self.assertIn("examples:", out.getvalue())
        for verb in ("proposals", "audit", "db"):
            self.assertIn(verb, out.getvalue())

    def test_every_leaf_verbs_help_has_an_example_and_the_exit_statuses(self) -> None:
        """Walking the whole parser: each verb that runs ends its --help with an example of itself and the exit
        statuses (0, 1, 2, 3, 130), and a long description is wrapped to the width of the help."""
        for verb in leaf_verbs(build_parser()):
            with self.subTest(verb=" ".join(verb)):
                out = io.StringIO()
                with redirect_stdout(out):
                    main([*verb, "--help"])
                text = out.getvalue()
                examples = text.split("examples:", 1)[-1].split("exit status:", 1)[0]
                self.assertIn("examples:", text)
                self.assertIn("bot-bottle " + " ".join(verb), examples, "an example of this very verb")
                statuses = text.split("exit status:", 1)[-1]
                for code in ("0 ", "1 ", "2 ", "3 ", "130 "):
                    self.assertIn(f"\n  {code}", statuses)
                description = text.split("\n\n", 2)[1]
                self.assertTrue(all(len(line) <= 100 for line in description.splitlines()), description)

    def test_every_group_names_its_verbs_the_same_way(self) -> None:
        """BROKE before the fix: 'bottles --help' said 'COMMAND ...' where every other group says 'VERB ...', and
        'bottles show --help' left out the grants it prints."""
        groups = {verb[0] for verb in leaf_verbs(build_parser()) if len(verb) > 1}
        for group in sorted(groups):
            with self.subTest(group=group):
                out = io.StringIO()
                with redirect_stdout(out):
                    main([group, "--help"])
                self.assertIn("VERB ...", out.getvalue().split("\n\n", 1)[0])
        out = io.StringIO()
        with redirect_stdout(out):
            main(["bottles", "show", "--help"])
        self.assertIn("the grants in force", " ".join(out.getvalue().split()))

    def test_a_group_without_its_verb_names_them(self) -> None:
        """BROKE before the fix: 'bot-bottle proposals' said only 'the following arguments are required: VERB'."""
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["proposals"])
        self.assertEqual(code, 2)
        (line,) = err.getvalue().splitlines()
        self.assertIn("VERB (one of: list, show, approve, modify, reject)", line)
        self.assertIn("(see 'bot-bottle proposals --help')", line)

    def test_config_set_says_when_a_new_ttl_holds(self) -> None:
        """BROKE before the fix: 'config set --help' said what pending-ttl is, not that a new value holds only for
        proposals filed after it (the answer said so, after the fact): lowered from 24h to 1h, the pending ones still
        waited a day. Now the help says it."""
        out = io.StringIO()
        with redirect_stdout(out):
            main(["config", "set", "--help"])
        said = " ".join(out.getvalue().split())
        self.assertIn("from the next proposal filed: the ones already pending keep the expiry", said)

    def test_prepare_says_it_takes_no_db(self) -> None:
        """BROKE before the fix: 'prepare --help' said '--db PATH  database file to use', and 'bot-bottle --help'
        'for any verb', but prepare refuses every --db (it works on the host database its sidecars reach)."""
        for argv in (["prepare", "--help"], ["--help"]):
            out = io.StringIO()
            with redirect_stdout(out):
                main(argv)
            text = " ".join(out.getvalue().split())
            self.assertNotIn("database file to use, for any verb (", text)
            self.assertRegex(text, r"--db PATH not taken: prepare works on the host database|for any verb but prepare")

    def test_supervise_names_every_key_of_its_list(self) -> None:
        """BROKE before the fix: 'supervise --help' named a, m, r, Esc/b and q only: not R, /, w or v."""
        out = io.StringIO()
        with redirect_stdout(out):
            main(["supervise", "--help"])
        text = " ".join(out.getvalue().split())
        for key in ("(a)", "(m)", "(r)", "(R, then +bottle or +all)", "/ keeps", "w those with a warning",
                    "v shows the grants", "Tab there the standing rules", "(x revokes the one under the cursor",
                    "q quits"):  # BROKE before the fix: not Tab, the rules view's key (nor that x revokes a rule)
            self.assertIn(key, text)

    def test_bottles_routes_says_which_files_it_takes(self) -> None:
        """BROKE before the fix: 'bottles routes --help' said of FILE only 'the routes file it runs with', where
        'prepare --help' says its --routes-file is a regular file, not a symbolic link: the same file, refused
        the same way by both."""
        out = io.StringIO()
        with redirect_stdout(out):
            main(["bottles", "routes", "--help"])
        self.assertIn("a regular file, not a symbolic link", " ".join(out.getvalue().split()))
