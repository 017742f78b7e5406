"""What ``git archive`` writes for an ``export-subst`` file: each ``$Format:...$`` filled in from its commit.

A forge's tarball (and ``git archive`` on the remote) expands every
``$Format:FMT$`` in a file with the ``export-subst`` attribute as ``git log
--format=FMT`` shows the commit being archived: its subject (``%s``), body
(``%b``), author (``%an``), the refs that point at it (``%d``, ``%D``), the
tag that describes it (``%(describe)``). Each is the pusher's to choose. So a
token split between a file (``token = ghp_$Format:%s$``) and a commit
message, or a branch's name, is in none of the pushed objects, yet written
whole into every tarball; and a blob already on the remote is filled in anew
by each new commit that holds it. ``views`` expands only what needs no commit
(``%x67``, ``%n``).

So for each new commit whose ``.gitattributes`` mention ``export-subst`` at
all, the gate asks ``git archive`` itself which bytes it writes for each
file git reads the attribute as set on (``attributes.attributed_files``), in
a scratch repository that borrows the objects (the push's quarantine
included) and holds the refs and ``HEAD`` as they will be once the push is
in; every file it writes otherwise than stored is scanned as written. What
``git archive`` writes is bounded by what is left of ``max_scan_bytes``
(``$Format:%B%B%B...$`` multiplies a message). A file a ``working-tree-encoding``
converts is asked about where its converted form holds ``$Format:`` (git
converts, then fills in: an IBM037 file spells it in letters of no ``$``). Each
is written twice, with ``core.ignorecase`` off and on (a clone on macOS or
Windows matches ``V.TXT export-subst`` to ``v.txt``).

A push changes tarballs of commits it neither makes nor names (``changed_tips``):
a ref deleted or moved away leaves the ``%D`` of its old commit without that name
(``ghp_aaa, <rest>`` becomes ``ghp_<rest>``), so each old commit is asked about
too; a tag made, moved or deleted changes the ``%(describe)`` of every branch
and tag after it (those are asked about: the refs that contain its commit),
and a ``.mailmap`` changed on the branch ``HEAD`` names the ``%aN`` of all
(every branch's tip and every tag's commit is asked about). A commit that is
no ref's tip, whose tarball is fetched by its id alone, is left.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot_bottle.errors import GitObjectsError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.attributes import attributed_files
from bot_bottle.sidecar.git_gate.checkout import checkout_forms, converts
from bot_bottle.sidecar.git_gate.limits import Deadline, Limits, mib
from bot_bottle.sidecar.git_gate.objects import (
    git_command,
    git_env,
    git_output,
    head_ref,
    last_error_line,
    read_objects,
    ref_tips,
    run_git,
    signal_git,
    stopped_at_deadline,
    streamed_git,
)
from bot_bottle.sidecar.git_gate.refs import RefUpdate

ATTRIBUTE = "export-subst"
# Where git finds the objects: the hook's quarantine among them. The scratch repository names them in its own
# alternates instead, so these are left out of its environment.
_OBJECT_PLACES = ("GIT_DIR", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH",
                  "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_COMMON_DIR")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Substituted:
    """One file as ``git archive`` of ``commit`` writes it, where that differs from the stored blob."""

    ref: str
    commit: str
    path: str
    oid: str  # the blob as stored
    data: bytes

    @property
    def label(self) -> str:
        """How a finding in it names it: the path, and a mark of the bytes written.

        The commit does not fix them (``%D`` writes the names of the refs at
        it then), and a grant covers a finding by its commit, file, line and
        rule: without the mark, the approval of one token a branch's name
        spelled covered every other a later branch's name spells at that line.
        The mark is slow and salted, as a token's fingerprint is
        (``policy.subjects``): it is filed, and the bytes hold the secret.
        """
        salt = hashlib.sha256(f"bot-bottle git archive\0{self.commit}\0{self.path}".encode(
            "utf-8", errors="surrogateescape")).digest()
        mark = hashlib.scrypt(self.data, salt=salt, n=2**14, r=8, p=1, dklen=8).hex()
        return f"{self.path} ($Format: filled in from the commit, as git archive writes it: {mark})"


def _scratch(repo: Path, updates: Sequence[RefUpdate], folder: Path, deadline: Deadline) -> dict[str, str]:
    """The environment of a scratch bare repository in ``folder``: the objects ``repo`` reads now (its
    quarantine too), and its refs and ``HEAD`` with ``updates`` applied, as a later ``git archive`` sees them."""
    common = Path(git_output(git_command(repo, "rev-parse", "--git-common-dir"), deadline).decode(
        "utf-8", "surrogateescape").strip())
    places = [str((repo / common / "objects").resolve())]
    places += [os.environ[name] for name in ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY") if os.environ.get(name)]
    places = list(dict.fromkeys(places))
    refs = _after(ref_tips(repo, deadline), updates)
    head = head_ref(repo, deadline).encode("utf-8", "surrogateescape")
    scratch = folder / "scratch.git"
    for sub in ("objects/info", "refs/heads", "refs/tags"):
        (scratch / sub).mkdir(parents=True)
    (scratch / "objects/info/alternates").write_text("".join(f"{place}\n" for place in places), encoding="utf-8")
    (scratch / "packed-refs").write_bytes("".join(f"{oid} {name}\n" for name, oid in sorted(refs.items())).encode(
        "utf-8", "surrogateescape"))
    (scratch / "HEAD").write_bytes(b"ref: " + (head or b"refs/heads/main") + b"\n")
    (scratch / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tbare = true\n", encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if name not in _OBJECT_PLACES}
    # The tree's own .gitattributes, as a forge's archive reads them: neither the system's nor the user's.
    return {**env, "GIT_DIR": str(scratch), "GIT_ATTR_NOSYSTEM": "1", "GIT_LITERAL_PATHSPECS": "1",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def _archive(scratch: Mapping[str, str], commit: str, paths: Sequence[str], budget: int,
             deadline: Deadline, ignorecase: bool = False) -> dict[str, bytes]:
    """``paths`` of ``commit`` as ``git archive`` writes them, read as they stream (at most ``budget`` bytes);
    with ``ignorecase``, as a clone on a case-insensitive file system writes them (``.gitattributes`` patterns
    matched whatever the case: ``V.TXT export-subst`` fills in ``v.txt``)."""
    with tempfile.TemporaryFile() as listed:
        command = ["git", "--no-replace-objects", "-c", "core.attributesFile=/dev/null",
                   "-c", f"core.ignorecase={str(ignorecase).lower()}", "archive", "--format=tar", commit, "--", *paths]
        process = streamed_git(command, stdin=None, stderr=listed, env=git_env(scratch), cwd=scratch["GIT_DIR"])
        assert process.stdout is not None
        out = bytearray()
        try:
            with stopped_at_deadline(process, deadline):
                while chunk := process.stdout.read(_CHUNK):
                    out += chunk
                    if len(out) > budget:
                        raise ScanLimitExceeded(f"git archive of commit {commit[:12]} writes more than the "
                                                f"{mib(budget)} left to scan: its export-subst files' $Format: "
                                                "expand past --max-scan-size")
        finally:
            process.stdout.close()
            if process.poll() is None:  # stopped short (over budget): its describe too, if one runs
                signal_git(process, signal.SIGKILL)
            code = process.wait()
        if code != 0:
            listed.seek(0)
            raise GitObjectsError(f"git archive of commit {commit[:12]} failed (exit {code}): "
                                  f"{last_error_line(listed.read())}")
    files: dict[str, bytes] = {}
    if _no_members(bytes(out)):
        return files  # every path asked about is export-ignore'd (tarfile refuses such a tar)
    with tarfile.open(fileobj=io.BytesIO(bytes(out)), encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                files[member.name] = handle.read()
    return files


def _no_members(out: bytes) -> bool:
    """True for a tar that holds no file: as git archive writes it, its pax global header (the commit's id)
    and end blocks alone, which Python's tarfile refuses to open ("end of file header")."""
    if out[156:157] == b"g":  # the global header's type
        try:
            size = int(out[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            return False
        out = out[512 + -(-size // 512) * 512:]
    return not out.strip(b"\0")


def pushed_tips(repo: Path, updates: Sequence[RefUpdate], deadline: Deadline) -> list[tuple[str, str, str]]:
    """``(ref, commit, tree)`` of the commit each (not deleted) update's new tip is or tags, new or not: a ref
    moved to an old commit changes what its ``%d``, ``%D`` and ``%(describe)`` write."""
    kept = [u for u in updates if not u.deleted]
    if not kept:
        return []
    asked = "".join(f"{u.new}^{{commit}}\n{u.new}^{{commit}}^{{tree}}\n" for u in kept).encode("ascii")
    result = run_git(git_command(repo, "cat-file", "--batch-check=%(objectname)"), deadline, data=asked)
    lines = result.stdout.decode("ascii", errors="replace").splitlines()
    if result.returncode != 0 or len(lines) != 2 * len(kept):
        raise GitObjectsError(f"git cat-file cannot peel the pushed tips: {last_error_line(result.stderr)}")
    return [(u.ref, commit, tree) for u, commit, tree in zip(kept, lines[::2], lines[1::2], strict=True)
            if not commit.endswith(" missing") and not tree.endswith(" missing")]


def _after(refs: dict[str, str], updates: Sequence[RefUpdate]) -> dict[str, str]:
    """``refs`` (``{ref: object id}``) as they will be once ``updates`` are in."""
    for update in updates:
        if update.deleted:
            refs.pop(update.ref, None)
        else:
            refs[update.ref] = update.new
    return refs


def _mailmap_moves(repo: Path, update: RefUpdate, deadline: Deadline) -> bool:
    """Whether ``update`` changes the ``.mailmap`` at the top of its tip's tree (or makes or removes one)."""
    asked = f"{update.old}:.mailmap\n{update.new}:.mailmap\n".encode("ascii")
    result = run_git(git_command(repo, "cat-file", "--batch-check=%(objectname)"), deadline, data=asked)
    lines = result.stdout.decode("ascii", errors="replace").split("\n")[:2]
    if result.returncode != 0 or len(lines) != 2:
        return True  # cannot tell: ask about every branch
    before, after = (None if line.endswith(" missing") else line for line in lines)
    return before != after


def _commits(repo: Path, oids: Sequence[str], deadline: Deadline) -> list[str]:
    """The commits these objects are or tag (one that peels to no commit, such as a tag of a tree, is left)."""
    if not oids:
        return []
    asked = "".join(f"{oid}^{{commit}}\n" for oid in dict.fromkeys(oids)).encode("ascii")
    result = run_git(git_command(repo, "cat-file", "--batch-check=%(objectname)"), deadline, data=asked)
    if result.returncode != 0:
        raise GitObjectsError(f"git cat-file cannot peel the pushed tags: {last_error_line(result.stderr)}")
    lines = result.stdout.decode("ascii", errors="replace").splitlines()
    return sorted({line for line in lines if not line.endswith(" missing")})


def changed_tips(repo: Path, updates: Sequence[RefUpdate], deadline: Deadline) -> list[RefUpdate]:
    """The commits whose tarballs the push changes without making or naming them, each as an update to itself
    (for ``pushed_tips``), with the refs as they will be once ``updates`` are in.

    Each update's old commit: a ref deleted or moved away takes its name out of that commit's ``%D`` (another
    ref may still name the commit; the names left can spell a token the names before did not). Every branch's
    tip and every tag's commit that holds the commit of a tag the push makes, moves or deletes (``%(describe)``
    names the nearest tag: one pushed on an ancestor, or one deleted nearer, changes the tarball of every branch
    and release tag after it), and all of them when the push changes the ``.mailmap`` of the branch ``HEAD``
    names (``%aN`` and ``%aE`` map names through the ``.mailmap`` at ``HEAD``, a bare repository's
    ``mailmap.blob``).
    """
    olds = [RefUpdate(u.old, u.old, u.ref) for u in updates if not u.created]
    tags = [u for u in updates if u.ref.startswith("refs/tags/")]
    head = head_ref(repo, deadline)
    # HEAD's branch moving changes the tarballs only where its .mailmap changes (most pushes to it leave it).
    mailmap = any(u.ref == head and _mailmap_moves(repo, u, deadline) for u in updates)  # deleted too
    if not tags and not mailmap:
        return olds
    listing: list[str] = []
    if not mailmap:
        # A tag changes the describing only of what holds its commit (old or new): the refs that contain it,
        # not every release of a repository with hundreds of tags (the refs the push moves are asked anyway).
        commits = _commits(repo, [oid for u in tags for oid in (u.old, u.new) if oid.strip("0")], deadline)
        if not commits:
            return olds
        listing += [f"--contains={commit}" for commit in commits]
    tips = _after(ref_tips(repo, deadline, *listing, "refs/heads/", "refs/tags/"), updates)
    return olds + [RefUpdate(oid, oid, name) for name, oid in sorted(tips.items())]


def substituted_files(repo: Path, commits: Sequence[tuple[str, str, str]], updates: Sequence[RefUpdate],
                      limits: Limits, deadline: Deadline, budget: int) -> Iterator[Substituted]:
    """Each ``export-subst`` file of each ``(ref, commit, tree)`` that ``git archive`` writes otherwise than
    stored, as it writes it (at most ``budget`` bytes in all)."""
    per_tree: dict[str, dict[str, str]] = {}  # tree -> {path: blob} of its files with export-subst set
    roots = [tree for _, _, tree in commits]
    for root, oid, path, value in attributed_files(repo, roots, limits, deadline, ATTRIBUTE):
        if value == "set":  # git substitutes only where the attribute is set, not given a value
            per_tree.setdefault(root, {})[path] = oid
    if not per_tree:
        return
    blobs = {oid for files in per_tree.values() for oid in files.values()}
    stored = {oid: data for oid, _, data in read_objects(repo, sorted(blobs), limits, deadline)}
    # git archive converts a file's working-tree-encoding first, then fills in what the converted bytes spell.
    spelt: set[tuple[str, str]] = set()  # (tree, path) of a file whose converted form holds $Format:
    for root, oid, path, value in attributed_files(repo, per_tree, limits, deadline, "working-tree-encoding"):
        if oid == per_tree[root].get(path) and converts(value) \
                and any(b"$Format:" in form for _, form in checkout_forms(stored[oid], value)):
            spelt.add((root, path))
    with tempfile.TemporaryDirectory(prefix="git-gate-archive-") as folder:
        scratch = _scratch(repo, updates, Path(folder), deadline)
        for ref, commit, tree in commits:
            files = per_tree.get(tree, {})
            candidates = sorted(path for path, oid in files.items()
                                if b"$Format:" in stored[oid] or (tree, path) in spelt)
            if not candidates:
                continue
            # Asked twice: a git archive on macOS or Windows (core.ignorecase) matches the .gitattributes'
            # patterns whatever the case, and fills in files a forge's leaves as stored, and the other way round.
            seen: set[tuple[str, bytes]] = set()
            for ignorecase in (False, True):
                written = _archive(scratch, commit, candidates, budget, deadline, ignorecase)
                # A path git archive leaves out is export-ignore'd (itself or a folder above it): no tarball holds
                # it. One it writes that was not asked about is a name read otherwise than git wrote it.
                folded = {path.lower() for path in candidates}
                if odd := sorted(name for name in written if name.lower() not in folded):
                    raise GitObjectsError(f"git archive of commit {commit[:12]} wrote {odd[0][:80]!r}, which it was "
                                          "not asked about: the push cannot be scanned as a tarball holds it")
                for path in candidates:
                    data = written.get(path)
                    if data is not None and data != stored[files[path]] and (path, data) not in seen:
                        seen.add((path, data))
                        budget -= len(data)
                        yield Substituted(ref, commit, path, files[path], data)
