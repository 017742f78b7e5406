"""The package and its migrations install and run outside the source checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv

from bot_bottle.schema import migrate
from tests.helpers.support import REPO, TempDirTest


class WheelInstallTest(TempDirTest):
    def test_installed_package_finds_its_migrations(self) -> None:
        """pip install . into a fresh venv; 'python -m bot_bottle db status' there reaches head."""
        source = self.tmp / "src"
        # Build from a copy so the checkout gets no build/ or egg-info litter.
        for name in ("bot_bottle", "migrations"):
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, source / name)
        env_dir = self.tmp / "venv"
        venv.create(env_dir, with_pip=True)
        python = env_dir / "bin" / "python"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(HOME=str(self.home), PIP_DISABLE_PIP_VERSION_CHECK="1")
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", str(source)],
            env=env, capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(install.returncode, 0, install.stderr[-3000:])
        shutil.rmtree(source)  # the installed copy must stand on its own
        elsewhere = self.tmp / "elsewhere"
        elsewhere.mkdir()
        status = subprocess.run(
            [str(python), "-m", "bot_bottle", "db", "status", "--json"],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(status.returncode, 0, status.stderr)
        report = json.loads(status.stdout)
        head = len(migrate.discover())
        self.assertEqual((report["current"], report["head"]), (head, head))
        self.assertEqual(report["path"], str(self.home / ".bot-bottle" / "db" / "bot-bottle.db"))
        script = subprocess.run(
            [str(env_dir / "bin" / "bot-bottle"), "--help"], env=env, capture_output=True, text=True, timeout=60
        )
        self.assertEqual(script.returncode, 0, script.stderr)
        self.assertIn("proposals", script.stdout)
        located = subprocess.run(
            [str(python), "-c", "from bot_bottle.schema import migrate; print(migrate.migrations_dir())"],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertIn(str(env_dir), located.stdout, "migrations come from the installed package")
        static = subprocess.run(
            [str(python), "-c", "from bot_bottle.cli.dashboard.state import static_files; "
             "print(sorted((path, len(data) > 100) for path, (data, _) in static_files().items()))"],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(static.stdout.strip(), "[('/static/app.js', True), ('/static/style.css', True)]",
                         "the dashboard's script and stylesheet ship in the package: " + static.stderr[-2000:])
        suffixes = subprocess.run(
            [str(python), "-c", "from bot_bottle.policy.suffixes import shipped; "
             "print(shipped().is_public_suffix('readthedocs.io'), len(shipped().rules) > 5000)"],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(suffixes.stdout.strip(), "True True",
                         "the Public Suffix List ships in the package: " + suffixes.stderr[-2000:])
        doctor = subprocess.run([str(python), "-m", "bot_bottle", "doctor", "--json"], cwd=elsewhere, env=env,
                                capture_output=True, text=True, timeout=60)
        checks = {c["check"] for c in json.loads(doctor.stdout)["checks"]}
        self.assertTrue({"docker", "smolmachines", "macos-container", "relay"} <= checks,
                        "the backends and the relay ship in the package: " + doctor.stderr[-2000:])
        self.assertNotEqual(sys.prefix, str(env_dir))
