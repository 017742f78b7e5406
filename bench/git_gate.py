"""git-gate's pre-receive hook on pushes an agent can build: ordinary ones, and ones built to exhaust it.

Each push is run through the real hook (``python -m bot_bottle.git_gate
pre-receive``, real git and gitleaks) against a repository built with git
fast-import, and timed from its start to its verdict; the peak RSS is the
largest of the hook and its children (git, gitleaks). The hostile pushes
must be refused by their bound, quickly, and the ordinary ones pay for the
archive, attribute and bound checks only what they use.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from common import REPO, machine, median, parser, table, work_dir

ZERO = "0" * 40


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    env = {"HOME": str(repo.parent), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True,
                          env=env).stdout.decode().strip()


def fast_import(repo: Path, commits: list[tuple[str, dict[str, bytes]]], ref: str, parent: str | None) -> str:
    """Commits (message, files) on ``ref``, each changing ``files``; the last commit's id."""
    stream = io.BytesIO()
    for number, (message, files) in enumerate(commits):
        stream.write(f"commit {ref}\ncommitter b <b@b> {1764230400 + number} +0000\n".encode())
        stream.write(f"data {len(message)}\n{message}\n".encode())
        if number == 0 and parent is not None:
            stream.write(f"from {parent}\n".encode())
        for path, data in files.items():
            stream.write(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
    git(repo, "fast-import", "--quiet", "--force", data=stream.getvalue())
    tip = git(repo, "rev-parse", ref)
    if parent is not None:  # unreferenced, as a pushed commit is during pre-receive: the hook scans it as new
        git(repo, "update-ref", "-d", ref)
    return tip


# Runs the hook as a child and reports the largest RSS of it and its children (git, gitleaks), in KiB.
_MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)")


def hook(repo: Path, lines: list[str], *extra: str) -> tuple[float, int, str]:
    """(seconds, peak RSS in MiB of the hook and its children, the verdict line)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "bot_bottle.git_gate",
                             "pre-receive", "--bottle", "bench", "--db", str(repo.parent / "gate.db"), "--timeout", "0",
                             *extra],
                            cwd=repo, input="".join(f"{line}\n" for line in lines), capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    said = result.stderr.strip().splitlines()
    peak = int(said[-1]) // 1024 if said and said[-1].isdigit() else -1
    verdict = (said[-2] if len(said) > 1 else "(nothing said)").removeprefix("git-gate: ")
    return seconds, peak, verdict


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    if not shutil.which("gitleaks"):
        print("gitleaks is not on PATH: nothing to measure")
        return
    runs = args.runs or (1 if args.smoke else 3)
    folders = 20 if args.smoke else 2000
    root = work_dir(args)
    print(machine(root))
    repo = root / "repo.git"
    repo.mkdir()
    git(repo, "init", "-q", "--bare")
    tree = {f"src/d{d:04d}/f{f}.py": f"value_{d}_{f} = {d * f}\n".encode() for d in range(folders) for f in range(10)}
    base = fast_import(repo, [("base", tree)], "refs/heads/main", None)
    cases: list[tuple[str, list[str], tuple[str, ...]]] = []
    one = fast_import(repo, [("one", {"src/new.py": b"x = 1\n"})], "refs/heads/one", base)
    cases.append((f"1 commit, 1 new file, on a tree of {len(tree):,} files", [f"{ZERO} {one} refs/heads/one"], ()))
    many = fast_import(repo, [(f"c{n}", {f"src/d{n:04d}/f0.py": f"v = {n}\n".encode()}) for n in range(100)],
                       "refs/heads/many", base)
    cases.append(("100 commits, one file each", [f"{ZERO} {many} refs/heads/many"], ()))
    encoded = fast_import(repo, [(f"w{n}", {".gitattributes": b"*.txt working-tree-encoding=UTF-16LE-BOM\n",
                                            f"notes/n{n}.txt": "héllo\n".encode()}) for n in range(20)],
                          "refs/heads/encoded", base)
    cases.append(("20 commits under a working-tree-encoding", [f"{ZERO} {encoded} refs/heads/encoded"], ()))
    archives = fast_import(repo, [("zips", {f"a/{n}.zip": zipped("x.txt", f"x = {n}\n".encode() * 500)
                                            for n in range(200)})], "refs/heads/zips", base)
    cases.append(("200 small zips", [f"{ZERO} {archives} refs/heads/zips"], ()))
    tgz = fast_import(repo, [("tgz", {"big.tar.gz": gzip.compress(b"".join(
        f"line {n}: {'y' * 60}\n".encode() for n in range(200_000)))})], "refs/heads/tgz", base)
    cases.append(("a gzip of 15 MB of text", [f"{ZERO} {tgz} refs/heads/tgz"], ()))
    size = 1 if args.smoke else 256
    bomb = fast_import(repo, [("bomb", {"bomb.zip": zipped("zeros", bytes(size << 20))})], "refs/heads/bomb", base)
    cases.append((f"a zip of {size} MiB of zeros", [f"{ZERO} {bomb} refs/heads/bomb"], ()))
    zeros = fast_import(repo, [("zeros", {"zeros.bin": bytes(size << 20)})], "refs/heads/zeros", base)
    cases.append((f"a blob of {size} MiB of zeros", [f"{ZERO} {zeros} refs/heads/zeros"], ()))
    tags = 20 if args.smoke else 2000
    cases.append((f"{tags:,} tags", [f"{ZERO} {base} refs/tags/t{n}" for n in range(tags)], ()))
    rows = []
    for name, lines, extra in cases:
        samples = [hook(repo, lines, *extra) for _ in range(runs)]
        rows.append([name, f"{median([s[0] for s in samples]):.2f}", str(max(s[1] for s in samples)),
                     samples[-1][2][:90]])
    print(f"median of {runs} run(s) each; peak RSS is the largest of the hook and its children\n")
    print(table(["push", "seconds", "peak MiB", "verdict"], rows))


if __name__ == "__main__":
    main()
