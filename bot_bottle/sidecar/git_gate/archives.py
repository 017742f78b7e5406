"""What a pushed blob holds when it is an archive or a compressed stream: every member, bounded.

gitleaks reads text; a token inside a zip, a tar.gz or a .gz is compressed
and passes it. gitleaks 8.30 can open some archives itself, but it picks
them by file name (git-gate's copies are named ``<n>.txt`` on purpose),
skips silently and with exit 0 whatever it cannot open, misses ``.tgz``,
``.jar``, ``.whl`` and most formats built on zip, drops ``.docx`` and
``.xlsx`` by its path allowlist and has no limit on what an archive expands
to. So git-gate opens them itself, with the standard library, recognised by
their bytes (never by name): zip (stored, deflate, bzip2, LZMA; zip64; so
docx, xlsx, jar, apk, epub, whl, ...), tar (ustar, GNU, PAX, v7), gzip,
bzip2 and xz (concatenated streams too), and, where the bytes decompress
whole, zlib and LZMA-alone. Each member and each decompressed stream is
handed back as it is (a reader who extracts it sees those bytes) and opened
in turn when it is an archive itself, to ``max_archive_depth`` layers.

Whatever cannot be read whole refuses the push (``GitGateError``, one line
saying why): an encrypted member, a format recognised but not opened here
(7z, RAR, zstd, lz4, lzip, compress, CAB, cpio, ar, RPM, xar, ISO 9660), a
corrupt or truncated archive, zip entries that overlap or leave bytes no
entry lists (what a streaming unzip would still extract), a zip entry whose
local header disagrees with its directory record, a file that starts as one
of those formats and ends as a zip (7-Zip opens what it starts as), a 7z
archive after other bytes (7-Zip finds one behind any prefix), a sparse
tar member; and
past a limit (``ScanLimitExceeded``): too deep, too many
members, a member or a blob's expansion too large, a compression ratio of a
bomb. Nothing is ever written under a member's name: names are labels only.
Brotli and raw deflate carry no signature and cannot be recognised.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bot_bottle.errors import GitGateError, ScanLimitExceeded
from bot_bottle.sidecar.git_gate.embedded import embedded_7z, embedded_streams, unread_input
from bot_bottle.sidecar.git_gate.limits import MIB, Deadline, Limits, mib

CHUNK = 1 << 16
RATIO_SLACK = MIB  # a small expansion may have any ratio: the ratio is checked only past this many bytes
# Zip compression methods the standard library reads: stored, deflate, bzip2, LZMA.
ZIP_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})
# Zip flag bits of encryption: traditional or AES (bit 0), strong encryption (6), masked central directory (13).
ZIP_ENCRYPTED = 0x1 | 0x40 | 0x2000


@dataclass(frozen=True)
class Leaf:
    """One thing a reader can take out of a pushed blob: a member, or a decompressed stream, and its bytes."""

    label: str  # "docs/a.zip!word/document.xml", "notes.txt.gz!(decompressed gzip)"
    data: bytes


# Formats recognised by their first bytes that the standard library cannot open: refused, never passed.
_UNREADABLE: tuple[tuple[Callable[[bytes], bool], str], ...] = (
    (lambda d: d.startswith(b"7z\xbc\xaf\x27\x1c"), "a 7z archive"),
    (lambda d: d.startswith(b"Rar!\x1a\x07"), "a RAR archive"),
    (lambda d: d.startswith(b"\x28\xb5\x2f\xfd"), "a zstd stream"),
    (lambda d: d[:4] in (b"\x04\x22\x4d\x18", b"\x02\x21\x4c\x18"), "an lz4 stream"),
    (lambda d: d.startswith(b"LZIP"), "an lzip stream"),
    (lambda d: d.startswith(b"\x1f\x9d"), "a compress (.Z) stream"),
    (lambda d: d.startswith(b"MSCF\0\0\0\0"), "a CAB archive"),
    (lambda d: d[:6] in (b"070701", b"070702", b"070707") or d[:2] in (b"\xc7\x71", b"\x71\xc7"), "a cpio archive"),
    (lambda d: d.startswith(b"!<arch>\n"), "an ar archive (.deb, .a)"),
    (lambda d: d.startswith(b"\xed\xab\xee\xdb"), "an RPM package"),
    (lambda d: d.startswith(b"xar!"), "a xar archive"),
    (lambda d: d[32769:32774] == b"CD001", "an ISO 9660 image"),
)
_LZMA_ALONE_PROPERTIES = (b"\x00\x00\x80\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x04", b"\x00\x00\x00\x08",
                          b"\x00\x00\x40\x00", b"\x00\x00\x10\x00", b"\x00\x00\x20\x00")


def _is_tar(data: bytes) -> bool:
    if len(data) < 512 or data[:1] == b"\0":
        return False
    if data[257:262] == b"ustar":
        return True
    try:  # a v7 tar has no magic: a valid header checksum is the test, as tarfile's own
        stored = int(data[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    header = data[:148] + b" " * 8 + data[156:512]
    return stored in (sum(header), sum(struct.unpack("148b8x356b", data[:512])) + 256)


def _is_zip(data: bytes) -> bool:
    # A local header first, or an end record in the tail (data before the first entry is allowed, as every
    # unzip allows it: self-extractors, and a zip appended to an image).
    return data.startswith(b"PK\x03\x04") or zipfile.is_zipfile(io.BytesIO(data))


def kinds(data: bytes) -> list[str]:
    """What ``data`` is, by its bytes: ``gzip``, ``bzip2``, ``xz``; ``zip`` and/or ``tar`` (a file can be both);
    ``zlib?`` or ``lzma?`` (weak signatures: opened only if they decompress whole); ``[]`` for none of them.

    ``GitGateError`` for a format recognised but not readable here.
    """
    if data.startswith(b"\x1f\x8b\x08"):
        return ["gzip"]
    if data.startswith(b"BZh") and data[3:4] in b"123456789" and len(data) >= 10 \
            and data[4:10] in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"):
        return ["bzip2"]
    if data.startswith(b"\xfd7zXZ\x00"):
        return ["xz"]
    found = [kind for kind, test in (("zip", _is_zip), ("tar", _is_tar)) if test(data)]
    if found and (found != ["zip"] or data.startswith(b"PK\x03\x04")):
        return found
    # A zip known only by its tail may be another format's file with a zip appended: a 7z (or RAR, ...)
    # extractor opens it as what it starts as, so the zip's members are not all a reader can take out of it.
    for test, name in _UNREADABLE:
        if test(data):
            raise GitGateError(f"{name}, which git-gate cannot open to scan")
    embedded = embedded_7z(data)
    if embedded:
        raise GitGateError(f"a 7z archive after {embedded} other bytes, which git-gate cannot open to scan")
    if found:
        return found
    if len(data) >= 13 and data[0] == 0x5D and data[1:5] in _LZMA_ALONE_PROPERTIES:
        return ["lzma?"]
    if len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0:
        return ["zlib?"]  # "x^" and "x\x9c" start zlib streams, and some text
    return []


class _Expansion:
    """One pushed blob's expansion: its limits, what it has used of them, and the push's deadline."""

    def __init__(self, limits: Limits, deadline: Deadline, label: str) -> None:
        self.limits = limits
        self.deadline = deadline
        self.label = label
        self.total = 0
        self.members = 0

    def refuse(self, what: str, why: str) -> GitGateError:
        return GitGateError(f"{what}: {why}; git-gate refuses what it cannot scan whole")

    def over(self, what: str, why: str) -> ScanLimitExceeded:
        return ScanLimitExceeded(f"{what}: {why}")

    def grew(self, size: int, stored: int, what: str) -> None:
        """A member or stream being read has reached ``size`` bytes from ``stored`` bytes: within the limits?"""
        limits = self.limits
        if size > limits.max_archive_member_bytes:
            raise self.over(what, f"expands to more than {mib(limits.max_archive_member_bytes)} "
                            "(--max-archive-member-size)")
        if size > RATIO_SLACK and size > limits.max_archive_ratio * max(stored, 1):
            raise self.over(what, f"expands more than {limits.max_archive_ratio} times (a decompression bomb?) "
                            "(--max-archive-ratio)")
        if self.total + size > limits.max_archive_bytes:
            raise self.over(self.label, f"its archives expand to more than {mib(limits.max_archive_bytes)} "
                            "(--max-archive-size)")
        self.deadline.check()

    def took(self, size: int) -> None:
        self.total += size

    def member(self, what: str) -> None:
        self.members += 1
        if self.members > self.limits.max_archive_members:
            raise self.over(what, f"its archives hold more than {self.limits.max_archive_members} members "
                            "(--max-archive-members)")


def expand(data: bytes, label: str, limits: Limits, deadline: Deadline) -> Iterator[Leaf]:
    """Every member and decompressed stream inside ``data``, at every layer; nothing if it is no archive.

    The caller scans ``data`` itself. ``GitGateError`` (or its
    ``ScanLimitExceeded``) for anything that cannot be scanned whole.
    """
    yield from _open(data, _Expansion(limits, deadline, label), label, 0)


def _open(data: bytes, run: _Expansion, what: str, depth: int) -> Iterator[Leaf]:
    """The leaves inside ``data`` (found at ``depth`` layers below the pushed blob), each opened in turn."""
    try:
        found = kinds(data)
    except GitGateError as exc:
        raise run.refuse(what, str(exc)) from None
    if not found:
        try:
            embedded = list(embedded_streams(data, run.grew, what))
        except ScanLimitExceeded:
            raise
        except GitGateError as exc:
            raise run.refuse(what, str(exc)) from None
        if embedded and depth >= run.limits.max_archive_depth:
            raise run.over(what, f"archives nested more than {run.limits.max_archive_depth} deep "
                                 "(--max-archive-depth)")
        for name, inner in embedded:
            yield from _leaf(name, inner, run, depth)
        return
    if depth >= run.limits.max_archive_depth:
        raise run.over(what, f"archives nested more than {run.limits.max_archive_depth} deep (--max-archive-depth)")
    if found == ["zip", "tar"] and _zip_inside_a_tar_member(data):
        found = ["tar"]  # a tar holding a zip (a release with jars): the zip is opened as the member it is
    for kind in found:
        if kind in ("zlib?", "lzma?"):
            try:
                inner = _decompress(data, kind, run, what)
            except ScanLimitExceeded:
                raise
            except GitGateError:
                continue  # a weak signature on bytes that do not decompress whole: bytes, scanned as they are
            yield from _leaf(f"{what}!(decompressed {kind[:-1]})", inner, run, depth)
        elif kind in ("gzip", "bzip2", "xz"):
            yield from _leaf(f"{what}!(decompressed {kind})", _decompress(data, kind, run, what), run, depth)
        elif kind == "zip":
            for name, content in _zip_members(data, run, what):
                yield from _leaf(name, content, run, depth)
        else:
            for name, content in _tar_members(data, run, what):
                yield from _leaf(name, content, run, depth)


def _leaf(label: str, data: bytes, run: _Expansion, depth: int) -> Iterator[Leaf]:
    run.took(len(data))
    yield Leaf(label, data)
    yield from _open(data, run, label, depth + 1)


def _decompress(data: bytes, kind: str, run: _Expansion, what: str) -> bytes:
    """The whole decompressed stream (every gzip member, every concatenated stream), bounded as it grows."""
    out = bytearray()
    if kind == "gzip":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                while chunk := stream.read(CHUNK):
                    out += chunk
                    run.grew(len(out), len(data), what)
        except (OSError, EOFError, zlib.error) as exc:  # trailing bytes that are no gzip member, a cut stream
            raise run.refuse(what, f"a corrupt or truncated gzip stream ({exc})") from None
        return bytes(out)
    rest = data
    while True:  # one decompressor per concatenated stream
        decompressor = _decompressor(kind)
        try:
            chunk = decompressor.decompress(rest, CHUNK)
            while True:
                out += chunk
                run.grew(len(out), len(data), what)
                if decompressor.eof:
                    break
                if isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor):
                    if decompressor.needs_input:  # it was given every byte: the stream is cut short
                        raise run.refuse(what, f"a truncated {kind.rstrip('?')} stream")
                    chunk = decompressor.decompress(b"", CHUNK)
                else:  # zlib: the input it has not read yet
                    chunk = decompressor.decompress(unread_input(decompressor), CHUNK)
                    if not chunk and not decompressor.eof:
                        raise run.refuse(what, f"a truncated {kind.rstrip('?')} stream")
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
            raise run.refuse(what, f"a corrupt {kind.rstrip('?')} stream ({exc})") from None
        rest = decompressor.unused_data
        if not rest.strip(b"\0"):  # bzip2 and xz allow zero padding after a stream
            return bytes(out)
        if kind.endswith("?"):
            raise run.refuse(what, f"bytes after the {kind[:-1]} stream")


def _decompressor(kind: str) -> bz2.BZ2Decompressor | lzma.LZMADecompressor | zlib._Decompress:
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    if kind == "lzma?":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE)
    return zlib.decompressobj()


def _zip_members(data: bytes, run: _Expansion, what: str) -> Iterator[tuple[str, bytes]]:
    """Every entry of the central directory (duplicate names included), read whole and checked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise run.refuse(what, f"a corrupt zip ({exc})") from None
    with archive:
        entries = archive.infolist()
        _check_layout(data, archive, entries, run, what)
        for info in entries:
            name = f"{what}!{info.filename}"
            run.member(what)
            if info.flag_bits & ZIP_ENCRYPTED:
                raise run.refuse(name, "an encrypted zip member")
            if info.compress_type not in ZIP_METHODS:
                raise run.refuse(name, f"zip compression method {info.compress_type}, which git-gate cannot read")
            if info.is_dir() and not info.file_size:
                continue
            out = bytearray()
            try:
                with archive.open(info) as member:  # by its entry, never by name: duplicate names are all read
                    while chunk := member.read(CHUNK):
                        out += chunk
                        run.grew(len(out), info.compress_size, name)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
                    RuntimeError, ValueError) as exc:
                raise run.refuse(name, f"a zip member that cannot be read whole ({exc})") from None
            yield name, bytes(out)


def _check_layout(data: bytes, archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], run: _Expansion,
                  what: str) -> None:
    """No two listed entries overlap, and no local entry hides where the central directory lists none.

    Entries that overlap are the "better zip bomb" (Python before 3.11.8
    does not check it). Bytes no entry lists, before the first entry or
    between two, are scanned raw with the blob; they are refused only when
    they hold a local header, whose compressed data a streaming unzip (which
    reads local headers, not the directory) extracts all the same. Other
    bytes there are allowed: a signed APK keeps its signing block between
    the last entry and the directory.
    """
    spans = sorted((info.header_offset, index) for index, info in enumerate(entries))
    if spans and b"PK\x03\x04" in data[: spans[0][0]]:
        raise run.refuse(what, "a zip entry before the first one its directory lists")
    ends = [offset for offset, _ in spans[1:]] + [archive.start_dir]
    for (start, index), following in zip(spans, ends, strict=True):
        info = entries[index]
        local = data[start : start + 30]
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise run.refuse(what, f"a corrupt zip (no local header for {info.filename!r})")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        disagreement = _local_disagrees(local, data[start + 30 + name_length : start + 30 + name_length + extra_length],
                                        info)
        if disagreement:
            raise run.refuse(f"{what}!{info.filename}", f"a zip entry whose local header disagrees with the "
                             f"directory ({disagreement}): extractors that follow either would read other bytes")
        end = start + 30 + name_length + extra_length + info.compress_size
        if following < end:
            raise run.refuse(what, "zip entries that overlap (a decompression bomb?)")
        if b"PK\x03\x04" in data[end:following]:
            raise run.refuse(what, f"a zip entry between listed ones that the directory does not list "
                             f"({following - end} bytes after {info.filename!r})")


def _local_disagrees(local: bytes, extra: bytes, info: zipfile.ZipInfo) -> str:
    """What an entry's local header says otherwise than its directory record ("" when nothing).

    The gate reads each entry as the central directory describes it
    (Python's zipfile does), but unzip, funzip and 7-Zip take the method and
    encryption from the local header: a directory saying stored over a
    local header saying deflate had the gate scan compressed bytes that they
    inflate to the token. The CRC and sizes are compared too, unless the
    local header defers them to a data descriptor (flag bit 3); zip64 sizes
    are read from the local header's zip64 extra field.
    """
    flags, method = struct.unpack("<HH", local[6:10])
    if method != info.compress_type:
        return f"compression method {method} there, {info.compress_type} in the directory"
    if (flags ^ info.flag_bits) & ZIP_ENCRYPTED:
        return "encrypted in one, not in the other"
    if flags & 0x08:
        return ""
    crc, compressed, size = struct.unpack("<III", local[14:26])
    if size == 0xFFFFFFFF or compressed == 0xFFFFFFFF:
        sizes = _zip64_sizes(extra, size == 0xFFFFFFFF, compressed == 0xFFFFFFFF)
        if sizes is None:
            return "zip64 sizes without their extra field"
        size = sizes[0] if size == 0xFFFFFFFF else size
        compressed = sizes[1] if compressed == 0xFFFFFFFF else compressed
    if (crc, compressed, size) != (info.CRC, info.compress_size, info.file_size):
        return "its CRC or sizes"
    return ""


def _zip64_sizes(extra: bytes, has_size: bool, has_compressed: bool) -> tuple[int, int] | None:
    """The sizes a local header's zip64 extra field (id 1) gives, in its order (size, then compressed)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == 1:
            values = [struct.unpack_from("<Q", extra, at + 4 + 8 * index)[0]
                      for index in range(min(length, len(extra) - at - 4) // 8)]
            wanted = int(has_size) + int(has_compressed)
            if len(values) < wanted:
                return None
            size = values.pop(0) if has_size else 0
            compressed = values.pop(0) if has_compressed else 0
            return size, compressed
        at += 4 + length
    return None


def _zip_inside_a_tar_member(data: bytes) -> bool:
    """True if the zip a tar's tail shows (its end record) lies whole inside one of the tar's members.

    Then that member is the zip, opened in its turn. A zip that does not
    (entries spread over several members, or in the tar's headers) is opened
    over the whole tar: an unzip reads it so.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            starts = [info.header_offset for info in archive.infolist()]
            first, directory = min(starts, default=archive.start_dir), archive.start_dir
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", ignore_zeros=True) as tar:
            spans = [(info.offset_data, info.offset_data + info.size) for info in tar.getmembers() if info.isreg()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, OSError, EOFError, ValueError,
            NotImplementedError):
        return False  # opened over the whole tar, where what is wrong is reported
    return any(start <= first and directory <= end for start, end in spans)


def _tar_members(data: bytes, run: _Expansion, what: str) -> Iterator[tuple[str, bytes]]:
    """Every regular member's content; links, devices and directories have none (their headers are scanned
    with the tar's own bytes). ``ignore_zeros``: archives concatenated after the end marker are read too,
    as ``tar -i`` reads them."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:", ignore_zeros=True)  # noqa: SIM115 (closed below)
        members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise run.refuse(what, f"a corrupt tar ({exc})") from None
    with archive:
        for info in members:
            name = f"{what}!{info.name}"
            run.member(what)
            if info.issparse():
                raise run.refuse(name, "a sparse tar member (its holes are filled in on extraction)")
            if not info.isreg():
                continue
            run.grew(info.size, info.size, name)
            try:
                member = archive.extractfile(info)
                content = member.read() if member is not None else b""
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                raise run.refuse(name, f"a tar member that cannot be read whole ({exc})") from None
            if len(content) != info.size:
                raise run.refuse(name, "a truncated tar member")
            yield name, content
