"""Inflating `Content-Encoding: gzip` / `deflate` request bodies with a cap on the inflated size.

The receiver inflates bodies here rather than in an HTTP library: a few kilobytes of gzip can inflate to
gigabytes, so every call is bounded. ISA-L (`isal`, already used for export) inflates about twice as fast as zlib.
"""

from __future__ import annotations

from isal import igzip_lib

__all__ = ["MAX_GZIP_MEMBERS", "CorruptBody", "InflatedTooLarge", "UnsupportedEncoding", "inflate", "inflate_within"]

_GZIP = igzip_lib.DECOMP_GZIP
_ZLIB = igzip_lib.DECOMP_ZLIB
_RAW_DEFLATE = igzip_lib.DECOMP_DEFLATE
#: Most gzip members in one body: clients send one; a few concatenate. Each member costs a decompressor.
MAX_GZIP_MEMBERS = 64
_FIRST_WINDOW = 4096
_MAX_WINDOW = 1 << 20
#: The least output asked of a decompressor when no trailer says better (later members, deflate, past the hint).
_MIN_ROOM = 64 * 1024
#: A 10-byte header and an 8-byte trailer around at least one byte of deflate.
_GZIP_MIN_SIZE = 19
#: Deflate's largest ratio (a 258-byte match in 2 bits): a trailer stating more than this is not believed.
_MAX_RATIO = 1032
#: OTLP protobuf deflates about 8-10x: a deflate body (no size stated) is first given 8x its size of output.
_GUESSED_RATIO = 8
# isal's stubs declare `IsalError` as an instance, not a class.
_INFLATE_ERROR: type[Exception] = igzip_lib.IsalError  # type: ignore[assignment]


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
        return _inflate(body, _GZIP, limit, cap)
    if encoding == "deflate":
        # RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. A zlib header's first byte
        # has compression method 8 in its low nibble and the header checksum holds.
        wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        return _inflate(body, _ZLIB if wrapped else _RAW_DEFLATE, limit, cap)
    raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding[:40]!r}: use gzip, deflate or identity")


def _inflate(data: bytes, flag: int, limit: int, cap: int) -> bytes | None:
    """Inflate every member (gzip) or the one stream (deflate), walking the input by offset.

    The first member is handed the whole body, and its output buffer is sized once from the size the gzip
    trailer states (`_expected_size`), so the body clients send (one member) inflates in one call straight into
    the bytes returned (grown step by step from 16 KiB, it cost ~5 % more: docs/performance-facts.md). The
    trailer is the sender's word, only mod 2^32, and the last member's: it is a hint, never more than `cap` + 1
    bytes are asked for, and a body that inflates past it is inflated on in growing steps. A decompressor copies
    the input left after its stream into `unused_data`; handing every member the whole rest of the body would
    copy it once per member (300,000 empty members: minutes). Later members are fed windows that grow from
    4 KiB instead, so each costs at most about twice its own size (the first member's copy of the rest happens
    once), and the members are capped at `MAX_GZIP_MEMBERS`. Output stops one byte past `cap`: over `limit` is
    an error, over a smaller cap None.
    """
    view = memoryview(data)
    pieces: list[bytes] = []
    size, pos, members = 0, 0, 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise CorruptBody(f"gzip body has more than {MAX_GZIP_MEMBERS} members")
        decompressor = igzip_lib.IgzipDecompressor(flag)
        window = len(view) - pos if members == 1 else _FIRST_WINDOW
        room = _expected_size(data, flag) + 1 if members == 1 else _MIN_ROOM
        fed = member_size = 0
        while not decompressor.eof:
            chunk = view[:0]  # a decompressor that stopped at `room` still holds the input it was given
            if decompressor.needs_input:
                chunk = view[pos + fed : pos + fed + window]
                fed += len(chunk)
                window = min(window * 2, _MAX_WINDOW)
            try:
                piece = decompressor.decompress(chunk, min(room, cap + 1 - size))
            except _INFLATE_ERROR:
                raise CorruptBody("compressed body is corrupt") from None
            if not chunk and not piece and not decompressor.eof:  # no input left, nothing more came out
                raise CorruptBody("compressed body is truncated")
            pieces.append(piece)
            size += len(piece)
            member_size += len(piece)
            if size > cap:  # output stopped at cap + 1 bytes
                if cap < limit:
                    return None
                raise InflatedTooLarge(f"inflated body is larger than {limit} bytes")
            room = max(member_size, _MIN_ROOM)  # past the hint: double what the member inflated to so far
        pos += fed - len(decompressor.unused_data)
        if flag != _GZIP or pos >= len(view):
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _expected_size(data: bytes, flag: int) -> int:
    """What the body will likely inflate to: a gzip trailer's ISIZE (the last 4 bytes: the last member's size
    mod 2^32, as its sender states it) up to what deflate can make of the body, else a guess from the usual
    ratio of OTLP protobuf."""
    if flag == _GZIP and len(data) >= _GZIP_MIN_SIZE:
        return min(int.from_bytes(data[-4:], "little"), _MAX_RATIO * len(data))
    return max(_GUESSED_RATIO * len(data), _MIN_ROOM)
