"""Sentry's `Link` header pagination, read the way that cannot loop forever or wander off (Part A §1.2).

Sentry always sends both `previous` and `next` links; whether another page exists is `results="true"`.
Only the cursor is taken from the link: the client re-issues the request against its own base URL, so a
Link pointing at another host (a misconfigured proxy, or a hostile one) never receives the token.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

_LINK_RE = re.compile(r'<(?P<url>[^>]*)>(?P<params>(?:\s*;\s*[A-Za-z_-]+\s*=\s*(?:"[^"]*"|[^;,\s]*))*)')
_PARAM_RE = re.compile(r'([A-Za-z_-]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')
_CURSOR_RE = re.compile(r"[\x21-\x7e]{1,512}")

#: A listing longer than this many pages is a server bug (a cursor that never advances), not an org.
MAX_PAGES = 10_000


def next_cursor(link_header: str | None) -> str | None:
    """The cursor of the `rel="next"` link if it says `results="true"`, else None (the last page)."""
    if not link_header:
        return None
    for match in _LINK_RE.finditer(link_header):
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM_RE.finditer(match["params"])
        }
        if params.get("rel") != "next":
            continue
        if params.get("results", "").lower() != "true":
            return None
        cursor = params.get("cursor") or _query_cursor(match["url"])
        return cursor if cursor and _CURSOR_RE.fullmatch(cursor) else None
    return None


def _query_cursor(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get("cursor")
    return values[0] if values else None
