"""The bytes a checkout writes for a blob with a ``working-tree-encoding``: converted exactly as git converts.

git stores such a file in UTF-8 and converts it at checkout
(``convert.c``: ``encode_to_worktree``, ``utf8.c``: ``reencode_string_len``):
it handles ``UTF-16LE-BOM`` and ``UTF-16BE-BOM`` itself (a BOM, then iconv's
``UTF-16LE`` or ``UTF-16BE``), hands every other name to iconv as it is
(retrying ``UTF-8`` spellings as ``UTF-8`` and ``latin-1`` as
``ISO-8859-1``), grows its buffer on ``E2BIG``, never flushes a stateful
encoder (UTF-7 loses its tail), and checks the file out unconverted when
iconv refuses the name or a character. CJK text is a token in UTF-16BE, Latin
letters are one in EBCDIC: the gate scans what the checkout writes.

Python's codecs are not enough (they know a quarter of iconv's names, not
git's ``-BOM`` ones, and write UTF-7 differently), so the conversion runs
glibc's own iconv through ``ctypes``, with git's algorithm, byte for byte.
Where iconv leaves the byte order to the platform (``UTF-16``, ``UCS-2``,
``UNICODE``, ...: glibc writes little-endian, other iconvs big-endian), the
other order is scanned too. A name whose result depends on the cloner's
locale (``//TRANSLIT``) or that this iconv does not know (another platform's
may) cannot be reproduced, and refuses the push.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
from collections.abc import Iterator
from typing import Any

from bot_bottle.errors import GitGateError

UTF16_LE_BOM = b"\xff\xfe"
UTF16_BE_BOM = b"\xfe\xff"
_ICONV_FAILED = ctypes.c_size_t(-1).value


def _same_utf_encoding(one: str, other: str) -> bool:
    """git's ``same_utf_encoding``: both start with "utf" (any case), one optional "-" after it, the rest equal."""
    if one[:3].lower() != "utf" or other[:3].lower() != "utf":
        return False
    return one[3:].removeprefix("-").lower() == other[3:].removeprefix("-").lower()


def converts(value: str) -> bool:
    """True if a checkout converts a file whose ``working-tree-encoding`` (as ``check-attr`` prints it) is ``value``.

    ``unspecified``, ``unset`` and the empty value convert nothing; ``set``
    (the attribute without a value) makes the checkout fail; a spelling of
    UTF-8 is git's default encoding, so nothing to convert. A literal value
    spelled ``unset`` or ``set`` cannot be told from the state, and no
    iconv knows such a name: the file is checked out as it is either way.
    """
    if value in ("unspecified", "unset", "set", ""):
        return False
    return not (_same_utf_encoding(value, "UTF-8") or value.lower() == "utf-8")


@functools.cache
def _libc() -> Any:
    """The C library's iconv (glibc's in the sidecar image), or None where it cannot be loaded."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.iconv_open.restype = ctypes.c_void_p
        libc.iconv_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.iconv.restype = ctypes.c_size_t
        libc.iconv.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t),
                               ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
        libc.iconv_close.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def _fallback(name: str) -> str:
    if _same_utf_encoding("utf-8", name):
        return "UTF-8"
    return "ISO-8859-1" if name.lower() == "latin-1" else name


def _open(libc: Any, name: str) -> int | None:
    """``iconv_open(name, "UTF-8")`` as git calls it (then with the fallback spelling); None if refused."""
    for target in (name, _fallback(name)):
        handle = libc.iconv_open(target.encode("utf-8", errors="surrogateescape"), b"UTF-8")
        if handle is not None and handle != ctypes.c_void_p(-1).value:
            return int(handle)
    return None


def _iconv(libc: Any, handle: int, data: bytes) -> bytes | None:
    """git's ``reencode_string_iconv``: the whole of ``data`` converted (no flush), or None where iconv fails."""
    source = ctypes.create_string_buffer(data, len(data))
    cursor = ctypes.c_char_p(ctypes.addressof(source))
    left = ctypes.c_size_t(len(data))
    room = len(data)  # git starts with as many bytes as the input and grows on E2BIG
    out = bytearray()
    while True:
        target = ctypes.create_string_buffer(room)
        position = ctypes.c_char_p(ctypes.addressof(target))
        free = ctypes.c_size_t(room)
        result = libc.iconv(handle, ctypes.byref(cursor), ctypes.byref(left), ctypes.byref(position),
                            ctypes.byref(free))
        out += target.raw[: room - free.value]
        if result != _ICONV_FAILED:
            return bytes(out)
        if ctypes.get_errno() != errno.E2BIG:
            return None  # EILSEQ or EINVAL: git says "failed to encode" and writes the file unconverted
        room = left.value * 2 + 32


def _convert(data: bytes, name: str) -> bytes | None:
    """What git on this platform writes for ``data`` checked out with ``working-tree-encoding=name``.

    None where git writes the file unconverted (iconv refuses a character).
    ``GitGateError`` for a name this iconv does not know.
    """
    bom, target = b"", name
    if _same_utf_encoding("UTF-16LE-BOM", name):
        bom, target = UTF16_LE_BOM, "UTF-16LE"
    elif _same_utf_encoding("UTF-16BE-BOM", name):
        bom, target = UTF16_BE_BOM, "UTF-16BE"
    libc = _libc()
    if libc is None:
        raise GitGateError(f"working-tree-encoding={name[:40]!r} cannot be converted here (no iconv in the C "
                           "library) to scan the file as a checkout writes it")
    handle = _open(libc, target)
    if handle is None:
        raise GitGateError(f"a .gitattributes names working-tree-encoding={name[:40]!r}, which this iconv does not "
                           "know (another platform's may, and convert the file): use a name iconv knows, such as "
                           "UTF-16LE-BOM")
    try:
        converted = _iconv(libc, handle, data)
    finally:
        libc.iconv_close(handle)
    return None if converted is None else bom + converted


@functools.cache
def _unit(name: str) -> int:
    """2 or 4 when ``name`` writes UTF-16 or UTF-32 code units (in either byte order, a BOM or not); 0 otherwise."""
    probe = _convert(b"A", name) or b""
    for bom in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", UTF16_LE_BOM, UTF16_BE_BOM, b""):
        if probe.startswith(bom):
            body = probe[len(bom) :]
            if body in (b"A\0", b"\0A"):
                return 2
            if body in (b"A\0\0\0", b"\0\0\0A"):
                return 4
    return 0


def _swapped(data: bytes, size: int) -> bytes:
    """``data``'s code units of ``size`` bytes in the other byte order (a trailing odd piece as it is)."""
    whole = len(data) - len(data) % size
    swapped = bytearray(data)
    for index in range(size):
        swapped[index:whole:size] = data[size - 1 - index : whole : size]
    return bytes(swapped)


def checkout_forms(data: bytes, name: str) -> Iterator[tuple[str, bytes]]:
    """``(how, bytes)`` a checkout may write for ``data`` with ``working-tree-encoding=name`` (``converts``).

    The exact bytes git writes here, and, where the byte order is left to
    the platform's iconv, the other order. Nothing when git writes the file
    as it is (an empty file, text iconv cannot convert: the blob itself is
    scanned). ``GitGateError`` for a name that cannot be reproduced.
    """
    if "//" in name:
        raise GitGateError(f"a .gitattributes names working-tree-encoding={name[:40]!r}, whose conversion depends "
                           "on the locale of whoever checks the file out: git-gate cannot scan it as written")
    if not data:
        return
    converted = _convert(data, name)
    if converted is None:
        return
    yield f"checked out as {name[:40]} (working-tree-encoding)", converted
    size = _unit(name)
    if size:
        yield (f"checked out as {name[:40]} (working-tree-encoding), in the other byte order, as another "
               "platform's iconv writes it", _swapped(converted, size))
