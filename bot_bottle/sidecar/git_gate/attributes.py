"""Which files a checkout converts, and into what: ``working-tree-encoding`` read by git itself, as it reads it.

A checkout takes each file's attributes from the ``.gitattributes`` files in
the tree it writes, with git's own rules: the last matching line wins,
macros (``[attr]``) only at the top, lines of 2,048 characters or more and
negative patterns ignored, reading stopped at the first NUL byte (what comes
before it still applies, though ``git grep`` calls the file binary), and a
``.gitattributes`` that is a symbolic link read as its target's text.
Guessing any of that is how a token got through, so git answers: for each
tree a push makes checkable-out (every new commit's, and every tree a ref or
tag points at), ``git read-tree`` fills a private temporary index (never the
repository's; no object is written, also inside the pre-receive
quarantine), and ``git check-attr --cached`` reads every regular file's
``working-tree-encoding`` from it (``check-attr --source`` came in git 2.40).
It is asked twice, with ``core.ignorecase`` off and on: a clone on a
case-insensitive file system (macOS, Windows) matches ``*.TXT`` to
``a.txt``. System and global attributes are left out (the cloner's are not
the agent's to choose).

Only trees holding a ``.gitattributes`` that mentions the attribute at all
are read so (found by walking the trees once, each tree once per push), and
git is asked about a path once per set of ``.gitattributes`` files: a later
commit with the same ones is asked only about its new paths.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot_bottle.errors import GitObjectsError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits, mib
from bot_bottle.sidecar.git_gate.objects import (
    StopAtDeadline,
    end_git,
    git_command,
    git_env,
    git_output,
    streamed_git,
    tree_entries,
)

ATTRIBUTE = "working-tree-encoding"
ATTRIBUTES_FILE = b".gitattributes"
_REGULAR = frozenset({"100644", "100755"})
_DIRECTORY, _GITLINK = 0o040000, 0o160000
_NONE: frozenset[tuple[str, str]] = frozenset()


def _file_type(mode: bytes) -> int:
    """The file-type bits of a tree entry's mode, as git reads them (``040000`` is a directory too)."""
    try:
        return int(mode, 8) & 0o170000
    except ValueError:
        return 0


@dataclass(frozen=True)
class EncodedFile:
    """A file a checkout converts: its blob, its path in the tree, the attribute's value, where it was found."""

    oid: str
    path: str
    encoding: str
    root: str  # the tree (a commit's, or one a ref points at) whose checkout converts it


class _Trees:
    """Trees and blobs read on demand from one ``git cat-file --batch`` (an answer is read before the next ask)."""

    def __init__(self, repo: Path, limits: Limits, deadline: Deadline, attribute: str = ATTRIBUTE) -> None:
        self.limits = limits
        self.deadline = deadline
        self.attribute = attribute
        self.process = streamed_git(git_command(repo, "cat-file", "--batch"), stdin=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=git_env())
        self.stop = StopAtDeadline(self.process, deadline)  # a read blocks until git answers
        self.files: dict[str, frozenset[tuple[str, str]]] = {}  # tree -> its .gitattributes files, all levels
        self.entries: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        self.mentions: dict[str, bool] = {}  # .gitattributes blob -> holds the attribute's name

    def close(self) -> None:
        self.stop.cancel()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        end_git(self.process)

    def read(self, oid: str) -> tuple[str, bytes]:
        try:
            return self._read(oid)
        except (GitObjectsError, OSError, ValueError):
            if self.stop.fired.is_set():  # git stopped at the deadline: the short answer is the deadline's
                raise self.deadline.exceeded() from None
            raise

    def _read(self, oid: str) -> tuple[str, bytes]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        self.deadline.check()
        stdin.write(oid.encode("ascii") + b"\n")
        stdin.flush()
        header = stdout.readline().decode("ascii", errors="replace").split()
        if len(header) != 3 or header[0] != oid or not header[2].isdigit():
            raise GitObjectsError(f"git cannot read object {oid}: {' '.join(header)[:100] or 'no answer'}")
        size = int(header[2])
        if size > self.limits.max_object_bytes:
            raise ScanLimitExceeded(f"object {oid[:12]} is {mib(size)}, over the {mib(self.limits.max_object_bytes)} "
                                    "one object may be (--max-object-size)")
        data = stdout.read(size)
        if len(data) != size or stdout.read(1) != b"\n":
            raise GitObjectsError(f"git's answer for object {oid} is cut short")
        return header[1], data

    def attribute_files(self, root: str) -> frozenset[tuple[str, str]]:
        """``(path, blob)`` of every ``.gitattributes`` in ``root``'s trees (each tree read once per push).

        Walked without recursion (a pushed tree can nest deeper than Python's
        stack): a tree's answer is known once its subtrees' are.
        """
        pending = [root]
        while pending:
            tree = pending[-1]
            if tree in self.files:
                pending.pop()
                continue
            entries = self._entries(tree)
            waiting = [child for _, child in entries[0] if child not in self.files and child not in pending]
            if waiting:
                pending.extend(waiting)
                continue
            pending.pop()
            found = set(entries[1])
            for name, child in entries[0]:
                found.update((f"{name}/{path}", blob) for path, blob in self.files[child])
            self.files[tree] = frozenset(found) if found else _NONE
        return self.files[root]

    def _entries(self, tree: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """A tree's subtrees ``(name, oid)`` and its own ``.gitattributes`` ``(name, blob)`` (a file or a link:
        git reads both); a gitlink, or an object that is no tree, has none."""
        known = self.entries.get(tree)
        if known is not None:
            return known
        kind, data = self.read(tree)
        subtrees: list[tuple[str, str]] = []
        attributes: list[tuple[str, str]] = []
        if kind == "tree":
            for mode, name, raw in tree_entries(data, len(tree) // 2):
                file_type = _file_type(mode)
                text = name.decode("utf-8", errors="surrogateescape")
                if file_type == _DIRECTORY:
                    subtrees.append((text, raw.hex()))
                elif name == ATTRIBUTES_FILE and file_type != _GITLINK:
                    attributes.append((text, raw.hex()))
        self.entries[tree] = (subtrees, attributes)
        return subtrees, attributes

    def mention(self, files: frozenset[tuple[str, str]]) -> bool:
        """True if one of these ``.gitattributes`` holds the attribute's name at all."""
        for _, blob in files:
            if blob not in self.mentions:
                self.mentions[blob] = self.attribute.encode("ascii") in self.read(blob)[1]
            if self.mentions[blob]:
                return True
        return False


def _run(repo: Path, args: Iterable[str], env: Mapping[str, str], deadline: Deadline,
         stdin: IO[bytes] | None = None) -> bytes:
    return git_output(git_command(repo, *args), deadline, stdin=stdin, env=env)


def _attributes(repo: Path, tree: str, folder: Path, deadline: Deadline,
                known: dict[str, set[str]], attribute: str = ATTRIBUTE) -> Iterator[tuple[str, str, str]]:
    """``(oid, path, value)`` of each regular file of ``tree`` whose ``attribute`` is set to something, per git.

    ``known`` holds what git said of paths before, under the very same
    ``.gitattributes`` files (a path's attributes depend on nothing else):
    only paths it does not hold yet are asked about, and their answers added.
    """
    env = {**git_env(), "GIT_INDEX_FILE": str(folder / "index"), "GIT_ATTR_NOSYSTEM": "1"}
    _run(repo, ["read-tree", tree], env, deadline)
    files: dict[str, str] = {}
    for record in _run(repo, ["ls-files", "-s", "-z"], env, deadline).split(b"\0"):
        info, _, raw_path = record.partition(b"\t")
        mode_oid_stage = info.decode("ascii", errors="replace").split()
        if len(mode_oid_stage) == 3 and mode_oid_stage[0] in _REGULAR:
            files[raw_path.decode("utf-8", errors="surrogateescape")] = mode_oid_stage[1]
    asked = [path for path in files if path not in known]
    for path in asked:
        known[path] = set()
    for ignorecase in ("false", "true") if asked else ():
        with tempfile.TemporaryFile() as paths:
            paths.write(b"".join(path.encode("utf-8", errors="surrogateescape") + b"\0" for path in asked))
            paths.seek(0)
            out = _run(repo, ["-c", f"core.ignorecase={ignorecase}", "-c", "core.attributesFile=/dev/null",
                              "check-attr", "--cached", "--stdin", "-z", attribute], env, deadline, stdin=paths)
        answer = out.split(b"\0")
        for index in range(0, len(answer) - 2, 3):
            name = answer[index].decode("utf-8", errors="surrogateescape")
            value = answer[index + 2].decode("utf-8", errors="replace")
            if value not in ("unspecified", "unset") and name in known:
                known[name].add(value)
    for path, oid in files.items():
        for value in sorted(known.get(path, ())):
            yield oid, path, value


def encoded_files(repo: Path, roots: Iterable[str], limits: Limits, deadline: Deadline) -> list[EncodedFile]:
    """Every ``(blob, encoding)`` a checkout of one of these trees converts, each once (with its first path)."""
    found: dict[tuple[str, str], EncodedFile] = {}
    for root, oid, path, value in attributed_files(repo, roots, limits, deadline):
        found.setdefault((oid, value), EncodedFile(oid, path, value, root))
    return list(found.values())


def attributed_files(repo: Path, roots: Iterable[str], limits: Limits, deadline: Deadline,
                     attribute: str = ATTRIBUTE) -> Iterator[tuple[str, str, str, str]]:
    """``(root, blob, path, value)`` of every regular file of each of these trees whose ``attribute`` git reads
    as set to something (``set`` for the attribute alone), as a checkout or ``git archive`` of the tree reads it."""
    trees = _Trees(repo, limits, deadline, attribute)
    try:
        keyed = [(root, files) for root in dict.fromkeys(roots)
                 if trees.mention(files := trees.attribute_files(root))]
    finally:
        trees.close()
    answers: dict[frozenset[tuple[str, str]], dict[str, set[str]]] = {}  # per set of .gitattributes files
    for root, files in keyed:
        with tempfile.TemporaryDirectory(prefix="git-gate-index-") as folder:
            for oid, path, value in _attributes(repo, root, Path(folder), deadline, answers.setdefault(files, {}),
                                                attribute):
                yield root, oid, path, value
