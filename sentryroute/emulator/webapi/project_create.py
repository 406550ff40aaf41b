"""Validation of `POST /teams/{org}/{team}/projects/`, with the messages of Sentry's serializer."""

from __future__ import annotations

import re
from typing import Any

from sentryroute.emulator.webapi.errors import ApiError

SLUG_RE = re.compile(r"^(?![0-9]+$)[a-z0-9_\-]+$")
SLUG_MESSAGE = (
    "Enter a valid slug consisting of lowercase letters, numbers, underscores or hyphens. "
    "It cannot be entirely numeric."
)
NAME_MAX_LENGTH = 50
_RESERVED_TEXT = """$all api-keys audit-log auth members projects rate-limits repos settings teams billing payments
legal subscription support integrations developer-settings usage"""
RESERVED = frozenset(_RESERVED_TEXT.split())
# A small, representative subset of Sentry's platform ids; "" and None mean "no platform".
_PLATFORMS_TEXT = """other android apple-ios dotnet dotnet-aspnetcore elixir flutter go java java-spring-boot
javascript javascript-react kotlin native node node-express php php-laravel python python-django python-fastapi
python-flask react-native ruby ruby-rails rust"""
PLATFORMS = frozenset(_PLATFORMS_TEXT.split())


def _too_long(limit: int) -> str:
    return f"Ensure this field has no more than {limit} characters."


def _name_errors(name: Any) -> list[str]:
    if name is None:
        return ["This field is required."]
    if not isinstance(name, str):
        return ["Not a valid string."]
    if not name.strip():
        return ["This field may not be blank."]
    if len(name) > NAME_MAX_LENGTH:
        return [_too_long(NAME_MAX_LENGTH)]
    if name in RESERVED:
        return [f'The name "{name}" is reserved and not allowed.']
    return []


def _slug_errors(slug: Any, max_length: int) -> list[str]:
    if slug is None:
        return []
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        return [SLUG_MESSAGE]
    if len(slug) > max_length:
        return [_too_long(max_length)]
    if slug in RESERVED:
        return [f'The slug "{slug}" is reserved and not allowed.']
    return []


def validate(body: Any, *, max_slug_length: int) -> tuple[str, str | None, str | None, bool]:
    """(name, slug or None, platform or None, default_rules), or ApiError 400 with field errors."""
    if not isinstance(body, dict):
        kind = type(body).__name__
        raise ApiError(400, body={"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]})
    errors: dict[str, list[str]] = {}
    name, slug, platform = body.get("name"), body.get("slug"), body.get("platform")
    default_rules = body.get("default_rules", True)
    if field_errors := _name_errors(name):
        errors["name"] = field_errors
    if field_errors := _slug_errors(slug, max_slug_length):
        errors["slug"] = field_errors
    if platform not in (None, "") and (not isinstance(platform, str) or platform not in PLATFORMS):
        errors["platform"] = ["Invalid platform"]
    if not isinstance(default_rules, bool):
        errors["default_rules"] = ["Must be a valid boolean."]
    if errors:
        raise ApiError(400, body=errors)
    return str(name), slug, platform or None, bool(default_rules)
