"""What a push would add to a repository: every new object, listed and read with replace objects off.

git-gate must scan exactly what the remote would serve after the push and
does not have yet. During pre-receive the pushed objects sit in a quarantine
that git's environment already points at, and the refs still hold their old
values, so ``git rev-list --objects NEW --not --all`` lists every object the
push makes reachable that no existing ref reaches: commits (merges included),
annotated tags, and every tree and blob that is new, also when a ref points
straight at a blob or a tree. Paths are rebuilt from the pushed trees (whole
names), a gitlink's id is rendered in hex with its tree entry, and a commit
with an ``encoding`` header is read a second time as ``git log`` shows it.

Every git call runs with replace objects disabled (``--no-replace-objects``
and ``GIT_NO_REPLACE_OBJECTS=1``) and grafts off: a ``refs/replace/`` ref, or
a graft, would make git show one object in place of another, so the scan
would read something other than what is stored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections import ChainMap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bot_bottle.errors import GitObjectsError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits, child_limits, mib

KINDS = ("commit", "tree", "blob", "tag")
# Not a kind of object: a commit with an ``encoding`` header, as ``git log`` shows it (re-encoded).
REENCODED = "commit as shown"
_UTF8_NAMES = frozenset({b"utf-8", b"utf8"})


@dataclass(frozen=True)
class PushedObject:
    """One object a push adds: where the operator finds it, and its raw content."""

    oid: str
    kind: str
    ref: str  # the pushed ref that first brings it
    commit: str  # the commit that first references it; else the ref's own tip (a tag, blob or tree)
    path: str  # its path in that commit's (or the tipped tree's) tree; "" for commits, tags and tips
    data: bytes
    reached: bool = True  # False: the push carries it, but none of its refs reaches it


def git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every git call: the caller's (git's quarantine included), replace objects off."""
    env = dict(os.environ if base is None else base)
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    env["GIT_GRAFT_FILE"] = os.devnull  # no grafts either: they rewrite parents the same way
    return env


def git_command(repo: Path, *args: str) -> list[str]:
    """A git command line on ``repo`` with replace objects off (run it with ``git_env()``)."""
    return ["git", "--no-replace-objects", "-C", str(repo), *args]


def last_error_line(stderr: bytes) -> str:
    """The last line a failed command wrote to stderr (at most 200 characters), for a one-line message."""
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1][:200] if lines else "no message"


def run_git(command: list[str], deadline: Deadline, *, stdin: IO[bytes] | None = None, data: bytes | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """``command`` (a ``git_command``) run with ``git_env(env)`` within ``deadline``, fed ``stdin`` or ``data``,
    its output captured: ``GitObjectsError`` where git cannot run, the deadline's error where it runs out; what
    its exit status means is the caller's to read."""
    try:  # (one of stdin and data at most: subprocess refuses both)
        process = subprocess.Popen(command, stdin=subprocess.PIPE if data is not None else stdin,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=git_env(env),
                                   preexec_fn=child_limits)
    except OSError as exc:
        raise GitObjectsError(f"cannot run git: {exc.strerror}") from None
    with process:
        try:
            out, err = process.communicate(data, timeout=deadline.remaining())
        except subprocess.TimeoutExpired:
            stop_git(process)
            raise deadline.exceeded() from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


# How long git has to remove its lock files once asked to stop.
_STOP_GRACE_SECONDS = 5.0


def stop_git(process: subprocess.Popen[bytes]) -> None:
    """Stop a git call that ran out of time: SIGTERM first, SIGKILL only if it has not exited within a grace.

    git removes the lock files it holds when terminated, not when killed: a
    ``SIGKILL`` while ``update-ref`` held ``refs/heads/NAME.lock`` left the
    lock behind, and every later push of that ref was refused ("remove the
    file manually") until someone did (the push-by-push check of
    ``applied.py``, run out of time by ``--max-seconds``).
    """
    process.terminate()
    try:
        process.communicate(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()  # not its output: a child of git's that holds the pipes open would hold the gate with them


def streamed_git(command: list[str], *, stdin: int | IO[bytes] | None, stderr: int | IO[bytes],
                 env: Mapping[str, str], cwd: str | None = None) -> subprocess.Popen[bytes]:
    """``command`` started for its output to be read as it streams (``StopAtDeadline``), in a process group of
    its own (``signal_git``); ``GitObjectsError`` where git cannot run."""
    try:
        return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=cwd,
                                preexec_fn=child_limits, start_new_session=True)
    except OSError as exc:
        raise GitObjectsError(f"cannot run git: {exc.strerror}") from None


def signal_git(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to ``process`` (a ``streamed_git``) and every process of its group: the children git
    runs of its own. Sent before the process is reaped (its id names the group until then), or while a child
    of its is left in the group (which keeps the id from being given to another)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # the group is gone: nothing of it runs
        pass
    except PermissionError:  # not ours to signal as a group (never expected): the process itself, as before
        process.send_signal(signum)


def end_git(process: subprocess.Popen[bytes]) -> None:
    """Kill a ``streamed_git`` and what runs in its group, and reap it: a read of it is done with."""
    signal_git(process, signal.SIGKILL)
    process.wait()


class StopAtDeadline:
    """Stops ``process``, a ``streamed_git`` call (``git archive``, ``cat-file --batch``), where it still runs at
    ``deadline``, as ``stop_git`` stops one (SIGTERM, then SIGKILL after the grace), with every process of its
    group; ``fired`` is set when it did.

    Its readers checked the deadline between chunks of git's output, so a
    git that computed without writing a byte (``git archive`` filling in an
    export-subst file's ``$Format:%(describe)$`` over a long history) held
    the push for as long as it ran: a read blocks until git writes or exits.
    And that describe is a ``git describe`` git runs as a child of its own,
    never asked to end with it: stopped alone, ``git archive`` left it
    walking the history, orphaned, after the push was refused
    (tests/attacks/test_git_gate_stopped_children.py).
    """

    def __init__(self, process: subprocess.Popen[bytes], deadline: Deadline) -> None:
        self.fired = threading.Event()
        self._process = process
        self._timer = threading.Timer(deadline.remaining(), self._stop)
        self._timer.daemon = True
        self._timer.start()

    def _stop(self) -> None:
        if self._process.poll() is None:
            self.fired.set()
            signal_git(self._process, signal.SIGTERM)
            try:
                self._process.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                signal_git(self._process, signal.SIGKILL)

    def cancel(self) -> None:
        """No stop from now on (the call is done with, or its process stopped otherwise)."""
        self._timer.cancel()


@contextlib.contextmanager
def stopped_at_deadline(process: subprocess.Popen[bytes], deadline: Deadline) -> Iterator[None]:
    """Read a streaming git call inside this: ``process`` is stopped at ``deadline`` (``StopAtDeadline``), and
    what the read then raises (a short answer), or its end, becomes the deadline's error."""
    stop = StopAtDeadline(process, deadline)
    try:
        yield
    except Exception:
        if stop.fired.is_set():
            raise deadline.exceeded() from None
        raise
    finally:
        stop.cancel()
    if stop.fired.is_set():
        raise deadline.exceeded()


def git_output(command: list[str], deadline: Deadline, *, stdin: IO[bytes] | None = None,
               env: Mapping[str, str] | None = None) -> bytes:
    """What ``command`` writes to stdout (``run_git``); ``GitObjectsError`` naming it where git exits non-zero."""
    result = run_git(command, deadline, stdin=stdin, env=env)
    if result.returncode != 0:
        words = command[4:]  # after 'git --no-replace-objects -C REPO'; the subcommand after any '-c NAME=VALUE'
        while len(words) > 2 and words[0] == "-c":
            words = words[2:]
        raise GitObjectsError(f"git {words[0] if words else ''} failed (exit {result.returncode}): "
                              f"{last_error_line(result.stderr)}")
    return result.stdout


def head_ref(repo: Path, deadline: Deadline) -> str:
    """The ref ``HEAD`` names in ``repo`` (empty when it names none)."""
    return run_git(git_command(repo, "symbolic-ref", "-q", "HEAD"), deadline).stdout.strip().decode(
        "utf-8", "surrogateescape")


def ref_tips(repo: Path, deadline: Deadline, *options: str) -> dict[str, str]:
    """``{ref: object id}`` of the refs ``git for-each-ref OPTIONS`` lists (every ref, without options)."""
    listed = git_output(git_command(repo, "for-each-ref", "--format=%(objectname) %(refname)", *options), deadline)
    tips: dict[str, str] = {}
    for line in listed.decode("utf-8", "surrogateescape").splitlines():
        oid, _, name = line.partition(" ")
        tips[name] = oid
    return tips


def list_new_objects(repo: Path, tip: str, deadline: Deadline) -> list[tuple[str, str]]:
    """``(oid, path)`` of every object reachable from ``tip`` that no existing ref reaches.

    Oldest commit first (parents before children), each commit followed by
    the trees and blobs it is the first to reference, so a blob is listed
    after the commit that introduced it. git prints a path only up to its
    first newline, so each output line is one object.
    """
    with tempfile.TemporaryFile() as tips:
        tips.write(tip.encode("ascii") + b"\n")
        tips.seek(0)
        out = git_output(git_command(repo, "rev-list", "--objects", "--in-commit-order", "--topo-order",
                                     "--reverse", "--stdin", "--not", "--all"), deadline, stdin=tips)
    listed = []
    for line in out.split(b"\n"):
        if not line:
            continue
        oid, _, path = line.partition(b" ")
        listed.append((oid.decode("ascii", errors="replace"), path.decode("utf-8", errors="replace")))
    return listed


def added_paths(repo: Path, commit: str, deadline: Deadline) -> bytes:
    """The whole path of every file ``commit`` adds over each of its parents (every file, for a root commit),
    one a line.

    A tree already on the remote put at a new path (``api_token=Zx/`` now holding the old tree that held
    ``Q7wE...`` under ``x/``), or one pushed at two paths in one push, is in no new object under that path:
    its entries' whole paths, which a tarball and a checkout write, are in none of the pushed objects.
    """
    out = git_output(git_command(repo, "diff-tree", "-r", "--root", "-m", "--no-renames", "--diff-filter=A",
                                 "--name-only", "-z", "--no-commit-id", commit), deadline)
    return b"\n".join(dict.fromkeys(path for path in out.split(b"\0") if path))


def read_objects(repo: Path, oids: Sequence[str], limits: Limits, deadline: Deadline,
                 names: Mapping[str, str] | None = None) -> Iterator[tuple[str, str, bytes]]:
    """``(oid, kind, raw content)`` of each object, in order, streamed from one ``git cat-file --batch``.

    An object over ``limits.max_object_bytes`` refuses the push before it is
    read (``ScanLimitExceeded``, naming its path from ``names`` when known).
    """
    if not oids:
        return
    with tempfile.TemporaryFile() as wanted:
        wanted.write("".join(f"{oid}\n" for oid in oids).encode("ascii"))
        wanted.seek(0)
        process = streamed_git(git_command(repo, "cat-file", "--batch"), stdin=wanted, stderr=subprocess.DEVNULL,
                               env=git_env())
        assert process.stdout is not None
        try:
            with stopped_at_deadline(process, deadline):
                for oid in oids:
                    header = process.stdout.readline().decode("ascii", errors="replace").split()
                    if len(header) != 3 or header[0] != oid or header[1] not in KINDS or not header[2].isdigit():
                        raise GitObjectsError(f"git cannot read object {oid}: "
                                              f"{' '.join(header)[:100] or 'no answer'}")
                    size = int(header[2])
                    if size > limits.max_object_bytes:
                        where = (names or {}).get(oid) or f"a {header[1]} object"
                        raise ScanLimitExceeded(f"{where} ({oid[:12]}) is {mib(size)}, over the "
                                                f"{mib(limits.max_object_bytes)} one pushed object may be "
                                                "(--max-object-size)")
                    deadline.check()
                    data = process.stdout.read(size)
                    if len(data) != size or process.stdout.read(1) != b"\n":
                        raise GitObjectsError(f"git's answer for object {oid} is cut short")
                    yield oid, header[1], data
        finally:
            process.stdout.close()
            end_git(process)


# The modes of entries whose object git checks exists (a file, an executable, a symlink, a tree).
CHECKED_MODES = frozenset({b"100644", b"100755", b"120000", b"40000"})


def tree_entries(data: bytes, hash_bytes: int) -> list[tuple[bytes, bytes, bytes]]:
    """A raw tree's ``(mode, name, raw oid)`` entries; ``GitObjectsError`` if it is malformed."""
    entries = []
    index = 0
    while index < len(data):
        space = data.find(b" ", index)
        nul = data.find(b"\0", space + 1)
        if space < 0 or nul < 0 or nul + 1 + hash_bytes > len(data):
            raise GitObjectsError("a pushed tree is malformed")
        entries.append((data[index:space], data[space + 1 : nul], data[nul + 1 : nul + 1 + hash_bytes]))
        index = nul + 1 + hash_bytes
    return entries


def render_tree(data: bytes, hash_bytes: int) -> bytes:
    """A raw tree as text, one ``mode name`` line per entry, so the entry names are scanned too.

    A submodule entry (a gitlink, mode ``160000`` or any mode git reads as
    one) also shows its id in hex: git checks that a file's, a symlink's or a
    tree's object exists, so those ids are hashes nobody chooses, but a
    gitlink's 20 (or 32) bytes are whatever the pusher wrote: an AWS key id
    fits, and ``git ls-tree`` on the remote shows it as hex, which gitleaks
    decodes. So does every entry with a mode other than those four.
    """
    return _render(tree_entries(data, hash_bytes))


def _render(entries: Sequence[tuple[bytes, bytes, bytes]]) -> bytes:
    return b"".join(mode + b" " + name + (b"" if mode in CHECKED_MODES else b" " + oid.hex().encode("ascii")) + b"\n"
                    for mode, name, oid in entries)


def declared_encoding(commit: bytes) -> bytes | None:
    """The ``encoding`` header of a raw commit, if it names something other than UTF-8."""
    for line in commit.split(b"\n\n", 1)[0].split(b"\n"):
        if line.startswith(b"encoding "):
            name = line[len(b"encoding ") :].strip()
            return None if name.lower() in _UTF8_NAMES else name
    return None


def root_tree(commit: bytes) -> str | None:
    """The tree a raw commit records (its first header line), or None if it has none."""
    first = commit.split(b"\n", 1)[0]
    if first.startswith(b"tree "):
        return first[len(b"tree ") :].decode("ascii", errors="replace").strip()
    return None


def reencoded_commits(repo: Path, oids: Sequence[str], deadline: Deadline) -> dict[str, bytes]:
    """Each commit's headers and message as ``git log`` shows them, re-encoded to UTF-8 from its ``encoding``.

    git re-encodes the whole commit before showing it, so a message (or an
    author) written in UTF-7 or another encoding gitleaks does not decode
    reads as plain text in ``git log`` on the remote; this is that text.
    """
    if not oids:
        return {}
    with tempfile.TemporaryFile() as wanted:
        wanted.write("".join(f"{oid}\n" for oid in oids).encode("ascii"))
        wanted.seek(0)
        out = git_output(git_command(repo, "log", "-z", "--no-walk=unsorted", "--stdin", "--no-mailmap",
                                     "--no-show-signature", "--format=raw", "--encoding=UTF-8"), deadline,
                         stdin=wanted)
    records = out[:-1].split(b"\0") if out.endswith(b"\0") else out.split(b"\0")
    # One record per commit, in the order asked; anything else (a NUL the re-encoding
    # put in a message splits its record) cannot be mapped back, and is not scanned half.
    if len(records) != len(oids) or any(not record.startswith(f"commit {oid}\n".encode("ascii"))
                                        for oid, record in zip(oids, records, strict=False)):
        raise GitObjectsError("git log's re-encoded commits cannot be told apart (a NUL in a message?)")
    return dict(zip(oids, records, strict=True))


_OBJECT_PLACES = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


def unreached_objects(repo: Path, reached: set[str], deadline: Deadline) -> list[str]:
    """Objects the push carries that no pushed ref reaches (not in ``reached``) and the remote lacks.

    git keeps every object of an accepted push's pack, reachable or not, and
    serves one by its id to whoever asks for it (``git fetch origin <id>``):
    a blob sent alongside a clean commit would land unscanned. During
    pre-receive the pushed objects sit in ``GIT_QUARANTINE_PATH``; this lists
    them, then drops those the repository already had (a thin pack's bases).
    Outside a quarantine (no such variable) there is nothing to list.
    """
    quarantine = os.environ.get("GIT_QUARANTINE_PATH")
    if not quarantine:
        return []
    outside = {k: v for k, v in os.environ.items() if k not in _OBJECT_PLACES}
    inside = {**outside, "GIT_OBJECT_DIRECTORY": quarantine}
    listed = git_output(git_command(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)",
                                    "--unordered"), deadline, env=inside)
    carried = [oid for oid in listed.decode("ascii", errors="replace").split() if oid not in reached]
    if not carried:
        return []
    with tempfile.TemporaryFile() as wanted:
        wanted.write("".join(f"{oid}\n" for oid in carried).encode("ascii"))
        wanted.seek(0)
        answer = git_output(git_command(repo, "cat-file", "--batch-check=%(objectname)"), deadline, stdin=wanted,
                            env=outside)
    had = {line.split()[0] for line in answer.decode("ascii", errors="replace").splitlines()
           if line and not line.endswith(" missing")}
    return [oid for oid in carried if oid not in had]


def pushed_objects(repo: Path, tips: Sequence[tuple[str, str]], limits: Limits,
                   deadline: Deadline) -> Iterator[PushedObject]:
    """Every object the pushed ``(ref, new tip)`` pairs add, each once (under the first ref that brings it).

    Paths come from the pushed trees themselves, whole: ``rev-list`` cuts a
    name at its first newline, and ``report\\nprod-credentials.env`` must not
    be shown as ``report``. (A new blob or tree only sits in new trees, which
    are listed, and read, before what they hold.)
    """
    seen: set[str] = set()
    for ref, tip in tips:
        listed = [(oid, path) for oid, path in list_new_objects(repo, tip, deadline) if oid not in seen]
        seen.update(oid for oid, _ in listed)
        paths = dict(listed)
        named: dict[str, str] = {}  # oid -> its whole path, from the first new tree that holds it
        commit = ""
        encoded: list[str] = []  # commits with an encoding header: scanned once more, as git log shows them
        for oid, kind, data in read_objects(repo, [oid for oid, _ in listed], limits, deadline,
                                            ChainMap(named, paths)):
            path = "" if kind in ("commit", "tag") else named.get(oid, paths.get(oid, ""))
            if kind == "commit":
                commit = oid
                if declared_encoding(data) is not None:
                    encoded.append(oid)
            elif kind == "tree":
                entries = tree_entries(data, len(oid) // 2)
                for _, name, child in entries:
                    text = name.decode("utf-8", errors="replace")
                    named.setdefault(child.hex(), f"{path}/{text}" if path else text)
                data = _render(entries)
            yield PushedObject(oid=oid, kind=kind, ref=ref, commit=oid if kind == "tag" else commit or tip,
                               path=path, data=data)
        for oid, data in reencoded_commits(repo, encoded, deadline).items():
            yield PushedObject(oid=oid, kind=REENCODED, ref=ref, commit=oid, path="", data=data)
    encoded = []
    for oid, kind, data in read_objects(repo, unreached_objects(repo, seen, deadline), limits, deadline):
        if kind == "commit" and declared_encoding(data) is not None:
            encoded.append(oid)
        data = render_tree(data, len(oid) // 2) if kind == "tree" else data
        yield PushedObject(oid=oid, kind=kind, ref="", commit=oid, path="", data=data, reached=False)
    for oid, data in reencoded_commits(repo, encoded, deadline).items():
        yield PushedObject(oid=oid, kind=REENCODED, ref="", commit=oid, path="", data=data, reached=False)
