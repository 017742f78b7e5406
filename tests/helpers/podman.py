"""podman for the container tests: a store of the tests' own, the base image, the sidecar image, MCP over HTTP.

The tests run rootful podman (they run as root, as ``.ci/run`` does) with
settings written into the cache directory and selected through
``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF``, so the commands they run
are exactly the ones ``bot-bottle prepare`` prints and nothing of the
machine's own podman setup changes: the image store and the networks live
in ``${XDG_CACHE_HOME:-$HOME/.cache}/bot-bottle-ci/podman``, kept between
runs with the base image's tarball (``.ci/make-base-image``), so a second
run builds from cached layers.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

from tests.helpers.support import REPO, in_ci

# Read once, at import, before any test points HOME at a temporary directory.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bot-bottle-ci"
BASE_IMAGE = "localhost/bot-bottle-base:bookworm"
SIDECAR_REPOSITORY = "localhost/bot-bottle-sidecars"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# The most podman may set here without CAP_SYS_RESOURCE: its defaults (nofile 1048576, nproc 4194304)
# are refused ("error setting rlimit") on hosts whose hard limits are lower; the sidecar needs neither.
MAX_NPROC = 32768


def _limit(kind: int, cap: int) -> int:
    hard = resource.getrlimit(kind)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def cannot_run(problem: str) -> NoReturn:
    """Skip the container tests for want of a tool, saying which; fail instead in CI, which installs them all."""
    if in_ci():
        raise AssertionError(problem)
    raise unittest.SkipTest(problem)


class Podman:
    """The ``podman`` command with the tests' own store, networks and settings."""

    def __init__(self, cache: Path = CACHE_DIR) -> None:
        self.cache = cache
        self.executable = shutil.which("podman") or "podman"
        home = cache / "podman"
        (home / "networks").mkdir(parents=True, exist_ok=True)
        containers_conf, storage_conf = home / "containers.conf", home / "storage.conf"
        # podman's run state, in /run as podman expects (gone at a reboot), one folder per store: a store
        # refuses to open with another store's run directory.
        volatile = Path("/run/bot-bottle-ci") / hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
        runtime = 'runtime = "runc"\n' if shutil.which("runc") else ""  # crun 1.8 refuses hybrid cgroups
        nofile, nproc = _limit(resource.RLIMIT_NOFILE, 1048576), _limit(resource.RLIMIT_NPROC, MAX_NPROC)
        containers_conf.write_text(
            f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            f'[engine]\n{runtime}tmp_dir = "{volatile / "libpod"}"\n'
            f'[network]\nnetwork_config_dir = "{home / "networks"}"\n')
        storage_conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{home / "storage"}"\n'
                                f'runroot = "{volatile / "storage"}"\n')
        # podman's helpers (netavark runs iptables or nft) and debootstrap live in /usr/sbin on Debian, which a
        # PATH that is not root's login PATH lacks.
        self.env = {**os.environ, "CONTAINERS_CONF": str(containers_conf),
                    "CONTAINERS_STORAGE_CONF": str(storage_conf),
                    "PATH": os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])}

    @classmethod
    def usable(cls) -> Podman:
        """A working ``Podman``; ``unittest.SkipTest`` with the reason where podman cannot run (a failure in CI)."""
        problem = None
        if shutil.which("podman") is None:
            problem = "podman is not installed (Debian: apt-get install podman runc debootstrap; .ci/run does)"
        elif os.geteuid() != 0:
            problem = "the container tests run rootful podman, as root (as .ci/run does)"
        else:
            podman = cls()
            info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
            if info.returncode == 0:
                return podman
            problem = f"podman cannot run here: {info.stderr.strip()[-300:]}"
        cannot_run(problem)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``podman ARGS``; with ``check``, fail with its stderr when it exits non-zero."""
        result = subprocess.run([self.executable, *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, input=input_text)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
        return result

    def run_as_printed(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """One of ``prepare``'s commands as it printed it, docker's or podman's: podman takes both."""
        assert command[0] in ("docker", "podman"), command
        return self(*command[1:], **kwargs)

    def ensure_base(self) -> str:
        """The base image, made by ``.ci/make-base-image`` (debootstrap once; its tarball kept in the cache)."""
        result = subprocess.run([str(REPO / ".ci" / "make-base-image"), "--engine", self.executable,
                                 "--cache", str(self.cache)], env=self.env, capture_output=True, text=True,
                                timeout=900)
        if result.returncode == 3:  # debootstrap is missing: a tool, like podman itself
            cannot_run(result.stderr.strip())
        if result.returncode != 0:
            raise AssertionError(f"make-base-image failed: {result.stderr[-2000:]}")
        return result.stdout.strip().splitlines()[-1]

    def build_sidecar(self, tag: str, base: str) -> None:
        """``podman build`` of Dockerfile.sidecars on ``base``, as the README says, tagged ``tag``.

        The tag ``SIDECAR_REPOSITORY:ci`` follows too, so the layers stay cached for the next run.
        """
        args = ["build", "--build-arg", f"BASE={base}", "-f", "Dockerfile.sidecars", "-t", tag,
                "-t", f"{SIDECAR_REPOSITORY}:ci"]
        if HOST_CA_BUNDLE.is_file():
            # The host's trust store while RUN steps fetch from PyPI, for a machine behind a TLS-inspecting
            # proxy (CI's is); a build volume is no layer, so nothing of it stays in the image.
            args += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        result = subprocess.run([self.executable, *args, str(REPO)], env=self.env, capture_output=True, text=True,
                                timeout=900, cwd=REPO)
        if result.returncode != 0:
            raise AssertionError(f"the sidecar image did not build:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")

    def state(self, container: str) -> str:
        """The container's status (running, stopped, exited, ...) or '' when there is none."""
        result = self("inspect", "--format", "{{.State.Status}}", container, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def wait_ended(self, container: str, timeout: float = 30) -> None:
        """Until the container's process has ended (``podman wait`` notices only after a long delay on some hosts)."""
        deadline = time.monotonic() + timeout
        while self.state(container) in ("running", "created", "configured", "initialized"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{container} still runs after {timeout:g} s")
            time.sleep(0.1)

    def pid(self, container: str) -> int:
        """The host's pid of the container's first process."""
        return int(self("inspect", "--format", "{{.State.Pid}}", container).stdout.strip())

    def remove(self, container: str) -> None:
        """Remove the container, running or not, at once (a cleanup: never fails)."""
        self("rm", "--force", "--time", "0", container, check=False)

    def remove_network(self, network: str) -> None:
        """Remove the network and whatever is still on it (a cleanup: never fails)."""
        self("network", "rm", "--force", network, check=False)


def post_json(url: str, message: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """POST one JSON-RPC message as an MCP client does over streamable HTTP; the answer's JSON."""
    request = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def wait_healthy(url: str, timeout: float = 30) -> dict[str, Any]:
    """Poll ``URL/healthz`` until the sidecar answers; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=2) as answer:
                health: dict[str, Any] = json.loads(answer.read())
                return health
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"the sidecar at {url} did not answer in {timeout:g} s: {exc}") from None
            time.sleep(0.1)
