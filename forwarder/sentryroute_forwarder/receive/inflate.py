"""Inflating `Content-Encoding: gzip` / `deflate` request bodies with a cap on the inflated size.

The receiver inflates bodies here rather than in an HTTP library: a few kilobytes of gzip can inflate to
gigabytes, so every call is bounded. ISA-L (`isal`, already used for export) inflates about twice as fast as zlib.
"""

from __future__ import annotations

from isal import isal_zlib

__all__ = ["MAX_GZIP_MEMBERS", "CorruptBody", "InflatedTooLarge", "UnsupportedEncoding", "inflate", "inflate_within"]

_GZIP_WBITS = 16 + 15
_ZLIB_WBITS = 15
_RAW_DEFLATE_WBITS = -15
#: Most gzip members in one body: clients send one; a few concatenate. Each member costs a decompressor.
MAX_GZIP_MEMBERS = 64
_FIRST_WINDOW = 4096
_MAX_WINDOW = 1 << 20
# isal's stubs declare `error` as an instance, not a class.
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


class CorruptBody(ValueError):
    """The compressed body cannot be inflated (400)."""


class InflatedTooLarge(ValueError):
    """The body inflates past the limit (413)."""


class UnsupportedEncoding(ValueError):
    """A Content-Encoding other than gzip, deflate or identity (415)."""


def inflate(body: bytes, *, encoding: str, limit: int) -> bytes:
    """`body` decoded per `encoding` (a Content-Encoding value), at most `limit` bytes."""
    inflated = _decode(body, encoding, limit, limit)
    assert inflated is not None  # the cap is the limit: over it raises
    return inflated


def inflate_within(body: bytes, *, encoding: str, limit: int, budget: int) -> bytes | None:
    """`inflate`, or None once the output passes `budget` bytes (less than `limit`): a body small enough to
    inflate on the event loop, where a decode worker's thread hop would cost more than the inflation."""
    return _decode(body, encoding, limit, min(budget, limit))


def _decode(body: bytes, encoding: str, limit: int, cap: int) -> bytes | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, _GZIP_WBITS, limit, cap)
    if encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. A zlib header's first byte
        # has compression method 8 in its low nibble and the header checksum holds.
        wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        return _inflate(body, _ZLIB_WBITS if wrapped else _RAW_DEFLATE_WBITS, limit, cap)
    raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding[:40]!r}: use gzip, deflate or identity")


def _inflate(data: bytes, wbits: int, limit: int, cap: int) -> bytes | None:
    """Inflate every member (gzip) or the one stream (deflate), walking the input by offset.

    The first member is handed the whole body, so the body clients send (one member) inflates in one call,
    straight into the bytes returned. A decompressor copies the input left after its stream into
    `unused_data`; handing every member the whole rest of the body would copy it once per member (300,000
    empty members: minutes). Later members are fed windows that grow from 4 KiB instead, so each costs at most
    about twice its own size (the first member's copy of the rest happens once), and the members are capped at
    `MAX_GZIP_MEMBERS`. Output stops one byte past `cap`: over `limit` is an error, over a smaller cap None.
    """
    view = memoryview(data)
    pieces: list[bytes] = []
    size, pos, members = 0, 0, 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise CorruptBody(f"gzip body has more than {MAX_GZIP_MEMBERS} members")
        decompressor = isal_zlib.decompressobj(wbits)
        window = len(view) if members == 1 else _FIRST_WINDOW
        while not decompressor.eof:
            chunk = view[pos : pos + window]
            if not chunk:
                raise CorruptBody("compressed body is truncated")
            try:
                piece = decompressor.decompress(chunk, cap + 1 - size)
            except _INFLATE_ERROR:
                raise CorruptBody("compressed body is corrupt") from None
            pieces.append(piece)
            size += len(piece)
            if size > cap or decompressor.unconsumed_tail:  # output stopped at cap + 1 bytes
                if cap < limit:
                    return None
                raise InflatedTooLarge(f"inflated body is larger than {limit} bytes")
            pos += len(chunk) - len(decompressor.unused_data)
            window = min(window * 2, _MAX_WINDOW)
        if wbits != _GZIP_WBITS or pos >= len(view):
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
