"""Reading an ingest body with its `Content-Encoding`, inflating incrementally under a size cap.

The cap applies after decompression, like Relay's body limit, and inflation stops as soon as it is passed,
so a small gzip bomb never expands in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

# Encoding → zlib `wbits` (gzip container, zlib container); None = identity. Relay strips "" and "utf-8".
DECODERS: dict[str, int | None] = {
    "": None,
    "identity": None,
    "utf-8": None,
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


class CorruptBody(Exception):
    pass


class _Inflater:
    """Incremental decompressor that also handles concatenated gzip members."""

    def __init__(self, wbits: int, limit: int) -> None:
        self._wbits = wbits
        self._limit = limit
        self._size = 0
        self._parts: list[bytes] = []
        self._obj = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> None:
        while data:
            try:
                out = self._obj.decompress(data, self._limit - self._size + 1)
            except zlib.error as exc:
                raise CorruptBody(str(exc)) from exc
            self._keep(out)
            if self._obj.unconsumed_tail:
                data = self._obj.unconsumed_tail
            elif self._obj.eof and self._obj.unused_data:
                data = self._obj.unused_data
                self._obj = zlib.decompressobj(self._wbits)
            else:
                data = b""

    def finish(self) -> bytes:
        if not self._obj.eof:
            raise CorruptBody("truncated compressed body")
        return b"".join(self._parts)

    def _keep(self, out: bytes) -> None:
        self._size += len(out)
        if self._size > self._limit:
            raise BodyTooLarge
        self._parts.append(out)


async def read_body(chunks: AsyncIterator[bytes], *, wbits: int | None, limit: int) -> tuple[bytes, int]:
    """The decoded body and the raw size read; raises BodyTooLarge / CorruptBody.

    The raw stream is capped too (at twice the limit), since a client could send an endless body.
    """
    inflater = _Inflater(wbits, limit) if wbits is not None else None
    parts: list[bytes] = []
    raw_size = 0
    async for chunk in chunks:
        raw_size += len(chunk)
        if raw_size > 2 * limit or (inflater is None and raw_size > limit):
            raise BodyTooLarge
        if inflater is None:
            parts.append(chunk)
        else:
            inflater.feed(chunk)
    return (inflater.finish() if inflater else b"".join(parts)), raw_size
