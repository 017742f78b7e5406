"""git-gate's bounds against a push built to exhaust it, with real git and gitleaks.

Before, 2,000 tags held the gate 25 s, and a 256 MiB blob of zeros 23 s with
537 MiB of memory and a 256 MiB temporary copy. Each bound refuses at its
limit now, with one line naming it, and accepts what is within it.
"""

from __future__ import annotations

import os
import unittest

from bot_bottle.sidecar.git_gate.limits import MIB, Limits
from tests.helpers.archives import zip_bytes
from tests.helpers.git_remote import GateAttackCase


class BoundsAttackTest(GateAttackCase):
    folder_prefix = "bb-bounds-"

    def limit(self, **caps: float) -> None:
        """The remote's hook with these caps for this test (git-gate's own defaults again after it)."""
        self.shared.install(Limits(**caps))  # type: ignore[arg-type]
        self.addCleanup(self.shared.install)

    def test_refs_per_push(self) -> None:
        self.limit(max_refs=3)
        base = self.shared.base
        self.assert_accepted(*(f"{base}:refs/tags/three-{n}" for n in range(3)))
        self.assert_refused(*(f"{base}:refs/tags/four-{n}" for n in range(4)),
                            says="it updates 4 refs, more than the 3 one push may (--max-refs)")

    def test_many_tags_under_the_default(self) -> None:
        """257 tags, one past the default: refused at once, before anything is scanned."""
        said = self.assert_refused(*(f"{self.shared.base}:refs/tags/many-{n}" for n in range(257)),
                                   says="it updates 257 refs, more than the 256 one push may")
        self.assertNotIn("gitleaks", said)

    def test_object_size(self) -> None:
        self.limit(max_object_bytes=64 * 1024)
        self.assert_accepted(f"{self.shared.commit_with({'fits.bin': os.urandom(64 * 1024)})}:refs/heads/size-ok")
        head = self.shared.commit_with({"big.bin": os.urandom(64 * 1024 + 1)})
        said = self.assert_refused(f"{head}:refs/heads/size", says="is 65537 bytes, over the 65536 bytes one pushed "
                                   "object may be (--max-object-size)", secret_oids=(head,))
        self.assertIn("push refused: big.bin (", said)

    def test_a_blob_of_zeros_past_the_default(self) -> None:
        """33 MiB of zeros (a few KiB packed): refused before git-gate reads it."""
        head = self.shared.commit_with({"zeros.bin": bytes(33 * MIB)})
        self.assert_refused(f"{head}:refs/heads/zeros", secret_oids=(head,),
                            says="is 33 MiB, over the 32 MiB one pushed object may be")

    def test_bytes_scanned_per_push(self) -> None:
        data = b"".join(f"line {n}: {'x' * 90}\n".encode() for n in range(1500))  # about 150 KB
        head = self.shared.commit_with({"lines.txt": data})
        self.limit(max_scan_bytes=100_000)
        self.assert_refused(f"{head}:refs/heads/scan", says="the push needs more than 100000 bytes scanned, with its "
                            "other forms and archive members (--max-scan-size)")
        self.limit(max_scan_bytes=200_000)
        self.assert_accepted(f"{head}:refs/heads/scan")

    def test_time(self) -> None:
        head = self.shared.commit_with({"slow.txt": b"hello again\n"})
        self.limit(max_seconds=0.001)
        self.assert_refused(f"{head}:refs/heads/time", says="the scan did not finish within 0.001 s (--max-seconds)")
        self.limit(max_seconds=600)
        self.assert_accepted(f"{head}:refs/heads/time")

    def test_memory(self) -> None:
        """A 20 MiB blob needs more than 40 MiB of the hook's memory (it is read, and copied once)."""
        head = self.shared.commit_with({"large.bin": os.urandom(20 * MIB)})
        self.limit(max_memory_bytes=40 * MIB)
        self.assert_refused(f"{head}:refs/heads/memory", says="scanning it needs more than 40 MiB of memory "
                            "(--max-memory)")
        self.limit(max_memory_bytes=256 * MIB)
        self.assert_accepted(f"{head}:refs/heads/memory")

    def test_archive_depth_and_member_size(self) -> None:
        """The archive limits reach the hook from its command line: one past each is refused."""
        nested = b"hello\n"
        for level in range(3):
            nested = zip_bytes([(f"level{level}", nested)])
        head = self.shared.commit_with({"nested.zip": nested})
        self.limit(max_archive_depth=2)
        self.assert_refused(f"{head}:refs/heads/depth", says="archives nested more than 2 deep (--max-archive-depth)")
        self.limit(max_archive_depth=3)
        self.assert_accepted(f"{head}:refs/heads/depth")
        member = self.shared.commit_with({"member.zip": zip_bytes([("a.txt", os.urandom(4096).hex().encode())])})
        self.limit(max_archive_member_bytes=8191)
        self.assert_refused(f"{member}:refs/heads/member", says="expands to more than 8191 bytes "
                            "(--max-archive-member-size)")
        self.limit(max_archive_member_bytes=8192)
        self.assert_accepted(f"{member}:refs/heads/member")


if __name__ == "__main__":
    unittest.main()
