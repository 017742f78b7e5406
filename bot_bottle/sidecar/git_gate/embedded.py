"""Archives and compressed streams that start after other bytes, which 7-Zip finds and extracts all the same.

``archives.kinds`` knows a format by a blob's first bytes, but 7-Zip looks
for an archive behind any prefix (a self-extractor's stub, a line of text)
and extracts it, trailing bytes or not: a 7z archive, and a gzip, bzip2 or
xz stream. A 7z start header carries the CRC-32 of the 20 bytes after it, so
one is found anywhere without mistaking other bytes for it (and refused: the
gate cannot open 7z). A stream's signature is short enough to occur by
chance in any binary, so each match is decompressed, bounded, and only one
that decompresses to its end is a stream (then scanned as a member); past
``MAX_FALSE_STARTS`` matches that do not, the blob is refused rather than
tried without end.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable, Iterator

from bot_bottle.errors import GitGateError

CHUNK = 1 << 16
SEVEN_ZIP_SIGNATURE = b"7z\xbc\xaf\x27\x1c"
# Compressed streams 7-Zip finds behind any prefix, by their first bytes.
STREAM_STARTS = {"gzip": b"\x1f\x8b\x08", "bzip2": b"BZh", "xz": b"\xfd7zXZ\x00"}
# Matches that do not decompress a blob may have (a random binary of 16 MiB has one gzip signature by chance).
MAX_FALSE_STARTS = 256


def embedded_7z(data: bytes) -> int:
    """Where a 7z archive starts after other bytes (0: none): its signature, a version, and the CRC-32 of the
    20 bytes that follow, so that a match is a real start header."""
    at = data.find(SEVEN_ZIP_SIGNATURE, 1)
    while at > 0:
        header = data[at + 12 : at + 32]
        if len(header) == 20 and struct.unpack("<I", data[at + 8 : at + 12])[0] == zlib.crc32(header):
            return at
        at = data.find(SEVEN_ZIP_SIGNATURE, at + 1)
    return 0


def embedded_streams(data: bytes, grew: Callable[[int, int, str], None], what: str) -> Iterator[tuple[str, bytes]]:
    """Every gzip, bzip2 or xz stream that starts after other bytes and decompresses to its end, labelled;
    ``grew(size, stored, label)`` bounds each as it grows. ``GitGateError`` past ``MAX_FALSE_STARTS``."""
    view = memoryview(data)  # each try reads from its match on, without copying the rest of the blob
    false_starts = 0
    for kind, signature in STREAM_STARTS.items():
        at = data.find(signature, 1)
        while at > 0:
            inner = first_streams(view[at:], kind, grew, f"{what} (at byte {at})")
            if inner is None:
                false_starts += 1
                if false_starts > MAX_FALSE_STARTS:
                    raise GitGateError(f"more than {MAX_FALSE_STARTS} places that start like a compressed "
                                       "stream and do not decompress")
            else:
                yield f"{what}!(decompressed {kind} at byte {at})", inner
            at = data.find(signature, at + 1)


def first_streams(data: memoryview, kind: str, grew: Callable[[int, int, str], None], what: str) -> bytes | None:
    """The stream of ``kind`` at the start of ``data`` decompressed, with the same kind's streams right after
    it, whatever follows them; ``None`` when the first does not decompress to its end."""
    out = bytearray()
    rest: bytes | memoryview = data
    first = True
    while bytes(rest[: len(STREAM_STARTS[kind])]) == STREAM_STARTS[kind]:
        decompressor = _decompressor(kind)
        try:
            chunk = decompressor.decompress(rest, CHUNK)
            while True:
                out += chunk
                grew(len(out), len(data), what)
                if decompressor.eof:
                    break
                chunk = decompressor.decompress(unread_input(decompressor), CHUNK)
                if not chunk and not decompressor.eof:
                    return None if first else bytes(out)  # cut short
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
            return None if first else bytes(out)
        rest = decompressor.unused_data
        first = False
    return bytes(out)


def unread_input(decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor | zlib._Decompress) -> bytes:
    """What to hand ``decompressor`` for its next chunk: zlib keeps the input it has not read yet in
    ``unconsumed_tail``; bz2 and lzma keep it inside and take ``b""``. (``zlib._Decompress`` is a name of the
    type stubs only: nothing may ask ``isinstance`` of it.)"""
    if isinstance(decompressor, bz2.BZ2Decompressor | lzma.LZMADecompressor):
        return b""
    return decompressor.unconsumed_tail


def _decompressor(kind: str) -> bz2.BZ2Decompressor | lzma.LZMADecompressor | zlib._Decompress:
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ)
    return zlib.decompressobj(31)  # one gzip member
