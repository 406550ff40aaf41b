"""Sentry's cursor pagination: a `Link` header that always holds both a previous and a next link.

Whether a link leads anywhere is carried by `results="true|false"`; the cursor is `value:offset:is_prev`
(reference §1.2). Link URLs keep the request's other query parameters, like Sentry's `build_cursor_link`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import quote, urlencode

from aiohttp import web

from sentryroute.emulator.webapi.errors import ApiError

T = TypeVar("T")
MAX_PER_PAGE = 100


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    parts = cursor.split(":")
    if len(parts) != 3 or not all(p.lstrip("-").isdigit() for p in parts):
        raise ApiError(400, "Invalid cursor parameter.")
    return max(0, int(parts[1]))


def _per_page(request: web.Request, default: int) -> int:
    raw = request.query.get("per_page")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PER_PAGE:
        raise ApiError(400, "Invalid per_page parameter.")
    return int(raw)


def _link(base: str, rel: str, cursor: str, has_results: bool) -> str:
    return f'<{base}&cursor={cursor}>; rel="{rel}"; results="{str(has_results).lower()}"; cursor="{cursor}"'


def paginate(request: web.Request, items: Sequence[T], *, origin: str, page_size: int) -> tuple[list[T], str]:
    """The page of `items` the request's `cursor`/`per_page` select, and the `Link` header value."""
    limit = _per_page(request, page_size)
    offset = _offset(request.query.get("cursor"))
    page = list(items[offset : offset + limit])
    query = urlencode([(k, v) for k, v in request.query.items() if k != "cursor"])
    base = f"{origin}{quote(request.path)}?{query}"
    previous = _link(base, "previous", f"0:{max(0, offset - limit)}:1", offset > 0)
    following = _link(base, "next", f"0:{offset + limit}:0", offset + limit < len(items))
    return page, f"{previous}, {following}"
