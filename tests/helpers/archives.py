"""Archives built in memory with the standard library, for git-gate's tests (no outside tool needed)."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Sequence


class _Unseekable(io.RawIOBase):
    """A write-only stream that cannot seek: zipfile then writes data descriptors after each member."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        self.buffer += chunk
        return len(chunk)


# Where a ZipInfo keeps its compression level: Python 3.13 renamed the attribute.
_LEVEL = "compress_level" if "compress_level" in zipfile.ZipInfo.__slots__ else "_compresslevel"


def zip_bytes(members: Sequence[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED, *, level: int | None = None,
              force_zip64: bool = False, streamed: bool = False, comment: bytes = b"") -> bytes:
    """A zip of ``members`` (name, content); ``streamed`` writes it as a pipe would (data descriptors)."""
    target: io.BytesIO | _Unseekable = _Unseekable() if streamed else io.BytesIO()
    with zipfile.ZipFile(target, "w", method, compresslevel=level) as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.compress_type = method
            setattr(info, _LEVEL, level)
            with archive.open(info, "w", force_zip64=force_zip64) as member:
                member.write(content)
        archive.comment = comment
    return bytes(target.buffer) if isinstance(target, _Unseekable) else target.getvalue()


def zip_encrypted(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A zip whose members are flagged encrypted (bit 0), in their local headers and the directory."""
    data = bytearray(zip_bytes(members, zipfile.ZIP_STORED))
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            (flags,) = struct.unpack_from("<H", data, at + flag_at)
            struct.pack_into("<H", data, at + flag_at, flags | 0x1)
            at = data.find(signature, at + 4)
    return bytes(data)


def zip_disguised(name: str, content: bytes) -> bytes:
    """A zip whose one entry's directory record says stored, its local header deflate: Python's zipfile (which
    follows the directory) reads the deflated bytes as they are, ``unzip``, ``funzip`` and 7-Zip (which follow
    the local header) inflate them to ``content``."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = packer.compress(content) + packer.flush()
    data = bytearray(zip_bytes([(name, deflated)], zipfile.ZIP_STORED))
    struct.pack_into("<H", data, 8, zipfile.ZIP_DEFLATED)  # the local header's method...
    struct.pack_into("<III", data, 14, zlib.crc32(content), len(deflated), len(content))  # ...and its CRC, sizes
    return bytes(data)


def tar_bytes(members: Sequence[tuple[str, bytes | None]], *, pax: dict[str, str] | None = None,
              link: str = "") -> bytes:
    """A tar of ``members`` (name, content); content None is a symbolic link to ``link``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1767225600
            if pax:
                info.pax_headers = dict(pax)
            if content is None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                archive.addfile(info)
            else:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def gnu_sparse_tar() -> bytes:
    """A tar whose one member is a GNU sparse file (extraction fills in its holes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("sparse.txt")
        info.type = tarfile.GNUTYPE_SPARSE
        archive.addfile(info)
    return buf.getvalue()


def docx(text: bytes) -> bytes:
    """A minimal Word document (a zip) whose body holds ``text``."""
    body = (b'<?xml version="1.0"?><w:document><w:body><w:p><w:r><w:t>' + text
            + b"</w:t></w:r></w:p></w:body></w:document>")
    return zip_bytes([("[Content_Types].xml", b'<?xml version="1.0"?><Types/>'), ("word/document.xml", body)])
