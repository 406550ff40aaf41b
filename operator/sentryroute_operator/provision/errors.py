"""What can go wrong when talking to Sentry's Web API, sorted by what the caller should do about it.

The split matters more than the messages: a `TransientError` must never be read as "the project is missing"
(the upstream exporter did, and re-created projects on every 5xx), and an `AuthError` is a configuration
problem a person has to fix. No message ever contains the auth token.
"""

from __future__ import annotations


class SentryApiError(Exception):
    """A Web API call failed. `status` is the HTTP status (None when no response came), `detail` Sentry's text."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class AuthError(SentryApiError):
    """401/403, or a token that cannot be read: the message names the scope the call needs."""

    def __init__(
        self, message: str, *, status: int | None = None, detail: str | None = None, missing_scope: str | None = None
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.missing_scope = missing_scope


class TokenError(AuthError):
    """The token source could not produce a usable token (file missing, Secret key absent, malformed value)."""


class TransientError(SentryApiError):
    """5xx, timeouts, connection errors or rate limits that outlasted the retries. Never means "missing"."""


class RateLimited(TransientError):
    """Still 429 after waiting as long as the client allows (`max_rate_limit_wait`)."""


class SlugConflict(SentryApiError):
    """409 on create: the slug is taken, by an active project or one pending deletion.

    `lost_answer`: an earlier attempt of the same create got no definite answer (5xx, network error), so it may
    be the one that took the slug; `sent_at` (epoch seconds) is when the first attempt was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        lost_answer: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.lost_answer = lost_answer
        self.sent_at = sent_at


class NotFound(SentryApiError):
    """404: the org, team or project does not exist (a real answer, not a guess)."""


class InvalidSlug(SentryApiError, ValueError):
    """A slug that is not `^[a-z0-9_-]{1,100}$` or is all digits; raised before any request is sent."""


class EndpointError(SentryApiError, ValueError):
    """A key's DSN or OTLP URL cannot be turned into a safe ingest endpoint (scheme, host or id mismatch)."""
