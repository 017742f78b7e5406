"""The house's shape: the module map in docs/architecture.md is the code's, and the rooms stay small.

docs/architecture.md lists, under "Who imports whom", every module of the
package and the project modules it imports. These tests read that table and
the code (with ``ast``, nothing is imported) and fail on any difference, so
the documented map cannot drift from the imports. They also hold the rules
the map stands on: a tree (no cycles), no import inside a function (the
CLI's verb registry, which loads a verb's module with ``importlib`` for
start-up time, is the one exception), every exception defined in
``errors``, no module over 450 lines and at most 20 modules at the top.
"""

from __future__ import annotations

import ast
import re
import unittest
from pathlib import Path

from tests.helpers.support import REPO

PACKAGE = REPO / "bot_bottle"
MAP_HEADING = "### Who imports whom"
MAX_LINES = 450
MAX_TOP_LEVEL_MODULES = 20
# The one place a module is loaded by name at run time (cli/__init__.py, through cli/registry.py's table).
LAZY_LOADER = PACKAGE / "cli" / "__init__.py"


def module_name(path: Path) -> str:
    """``sidecar.git_gate.scan`` for bot_bottle/sidecar/git_gate/scan.py; a package by its folder's name."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or "bot_bottle"


def package_modules() -> dict[str, Path]:
    """Every module of the package, by its name on the map."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The module's imports at its top, ``if TYPE_CHECKING:`` blocks included."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in tree.body:
        body = node.body if isinstance(node, ast.If) else [node]
        found += [n for n in body if isinstance(n, ast.Import | ast.ImportFrom)]
    return found


def project_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports at its top, named as on the map."""
    imported: set[str] = set()
    for node in top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level or not node.module or node.module.split(".")[0] != "bot_bottle":
                continue
            base = node.module.removeprefix("bot_bottle").lstrip(".")
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                imported.add(candidate if candidate in known else base or "bot_bottle")
        else:
            imported.update(alias.name.removeprefix("bot_bottle").lstrip(".") or "bot_bottle"
                            for alias in node.names if alias.name.split(".")[0] == "bot_bottle")
    return imported


def documented_map() -> dict[str, set[str]]:
    """The table under "Who imports whom" in docs/architecture.md: module -> the modules it imports."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    after = text.split(MAP_HEADING, 1)[1]
    table: dict[str, set[str]] = {}
    for line in after.splitlines():
        if line.startswith("#"):
            break
        match = re.fullmatch(r" {4}(\S+) +(.+)", line)
        if match:
            module, imports = match.groups()
            table[module] = set() if imports.strip() == "-" else {name.strip() for name in imports.split(",")}
    return table


class ModuleMapTest(unittest.TestCase):
    def test_every_module_is_on_the_map_with_exactly_its_imports(self) -> None:
        """Each module's imports, read from the code, are the ones docs/architecture.md lists for it."""
        modules = package_modules()
        documented = documented_map()
        self.assertGreater(len(documented), 50, "the map was not found under its heading")
        self.assertEqual(sorted(set(modules) - set(documented)), [], "modules missing from the map")
        self.assertEqual(sorted(set(documented) - set(modules)), [], "the map names modules that do not exist")
        for name, path in modules.items():
            with self.subTest(module=name):
                self.assertEqual(project_imports(path, set(modules)), documented[name],
                                 f"{name}'s imports differ from docs/architecture.md's map")

    def test_the_map_is_a_tree(self) -> None:
        """No module reaches itself through its imports."""
        modules = package_modules()
        graph = {name: project_imports(path, set(modules)) for name, path in modules.items()}
        done: set[str] = set()

        def visit(name: str, trail: list[str]) -> None:
            if name in trail:
                self.fail("import cycle: " + " -> ".join([*trail[trail.index(name):], name]))
            if name in done:
                return
            for imported in sorted(graph.get(name, ())):
                visit(imported, [*trail, name])
            done.add(name)

        for name in sorted(graph):
            visit(name, [])

    def test_no_import_inside_a_function(self) -> None:
        """Imports are at the top of a module; only the CLI loads verbs lazily (with importlib, for start-up time)."""
        for path in PACKAGE.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            top = set(map(id, top_level_imports(tree)))
            for node in ast.walk(tree):
                with self.subTest(module=module_name(path), line=getattr(node, "lineno", 0)):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        self.assertIn(id(node), top, "an import inside a function or class")
                    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module",
                                                                                  "__import__", "import_module"):
                        self.assertEqual(path, LAZY_LOADER, "a module loaded by name outside the verb registry")

    def test_a_lazy_import_in_a_function_fails_the_check(self) -> None:
        """The check above is not blind: an import inside a function is found by it."""
        tree = ast.parse("import os\n\ndef f():\n    import json\n    return json\n")
        top = set(map(id, top_level_imports(tree)))
        inner = [n for n in ast.walk(tree) if isinstance(n, ast.Import) and id(n) not in top]
        self.assertEqual([alias.name for node in inner for alias in node.names], ["json"])


class RoomsTest(unittest.TestCase):
    def test_no_module_is_over_450_lines(self) -> None:
        """A module a feature pushes past 450 lines is split along its seam."""
        for path in PACKAGE.rglob("*.py"):
            with self.subTest(module=module_name(path)):
                lines = len(path.read_text(encoding="utf-8").splitlines())
                self.assertLessEqual(lines, MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines")

    def test_at_most_20_modules_at_the_top(self) -> None:
        """The top of the package holds the shared vocabulary, the stores and the entry points; the rest is in rooms."""
        top = sorted(path.name for path in PACKAGE.glob("*.py"))
        self.assertLessEqual(len(top), MAX_TOP_LEVEL_MODULES, top)

    def test_every_exception_is_defined_in_errors(self) -> None:
        """One exception tree: no module but errors defines an exception class."""
        errors = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
        names = {node.name for node in errors.body if isinstance(node, ast.ClassDef)}
        bases = names | {"Exception", "BaseException", "TimeoutError", "ValueError", "OSError", "RuntimeError"}
        for path in PACKAGE.rglob("*.py"):
            if path.name == "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    with self.subTest(module=module_name(path), cls=node.name):
                        self.assertFalse({ast.unparse(base).split(".")[-1] for base in node.bases} & bases,
                                         "an exception defined outside errors.py")

    def test_the_errors_docstring_names_every_exception(self) -> None:
        """The hierarchy in errors' docstring lists every class it defines."""
        errors = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
        docstring = ast.get_docstring(errors) or ""
        for node in errors.body:
            if isinstance(node, ast.ClassDef):
                with self.subTest(cls=node.name):
                    self.assertRegex(docstring, rf"\b{node.name}\b")

    def test_packages_ship_in_the_wheel(self) -> None:
        """pyproject.toml lists every package of the tree, so an installed bot-bottle has all its rooms."""
        listed = set(re.findall(r'"(bot_bottle(?:\.[a-z_]+)*)"', (REPO / "pyproject.toml").read_text(encoding="utf-8")))
        for init in PACKAGE.rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(REPO).parts)
            with self.subTest(package=name):
                self.assertIn(name, listed)


class TestTreeTest(unittest.TestCase):
    def test_tests_mirror_the_packages(self) -> None:
        """Each folder of tests/ is a package's (attacks/ and helpers/ aside), and only helpers/ holds helpers."""
        tests = REPO / "tests"
        for folder in sorted(p for p in tests.rglob("*") if p.is_dir() and p.name != "__pycache__"):
            relative = folder.relative_to(tests)
            with self.subTest(folder=str(relative)):
                self.assertTrue((folder / "__init__.py").is_file(), "a folder without __init__.py is not discovered")
                if relative.parts[0] not in ("attacks", "helpers"):
                    self.assertTrue((PACKAGE / relative / "__init__.py").is_file(),
                                    f"tests/{relative} mirrors no package of bot_bottle")
        for module in tests.rglob("*.py"):
            relative = module.relative_to(tests)
            with self.subTest(module=str(relative)):
                if relative.parts[0] != "helpers" and module.name not in ("__init__.py", "__main__.py"):
                    self.assertTrue(module.name.startswith("test_"), "a helper outside tests/helpers")


if __name__ == "__main__":
    unittest.main()
