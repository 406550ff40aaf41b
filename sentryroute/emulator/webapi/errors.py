"""DRF-style Web API errors: `{"detail": …}` or a field → messages dict for validation failures."""

from __future__ import annotations

from typing import Any

NOT_FOUND = "The requested resource does not exist"
NO_PERMISSION = "You do not have permission to perform this action."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
INVALID_TOKEN = "Invalid token"


class ApiError(Exception):
    """Raised by Web API handlers; the middleware turns it into a JSON response."""

    def __init__(self, status: int, detail: str | None = None, *, body: dict[str, Any] | None = None) -> None:
        super().__init__(detail or str(body))
        self.status = status
        self.body: dict[str, Any] = body if body is not None else {"detail": detail}
