"""Settings declared once: a pydantic field per option gives the flag, its environment variable, default and help.

A settings group is a `SettingsGroup` subclass whose fields are written

    max_hold: Seconds = option("5m", "longest a rate-limited, failing or held project's data is kept")

The field name makes the flag (`--max-hold`) and the variable (`SENTRYROUTE_MAX_HOLD`); the default is written
as a user would type it and parsed like a flag value, so the command line, the environment and a test that
builds the settings object directly cannot disagree. The value kinds below (`Seconds`, `Bytes`, …) parse flag
text and say what `--help` shows for it; values given in code are checked by the same types.
"""

from __future__ import annotations

import argparse
import inspect
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, NamedTuple, Self, get_args

from annotated_types import Gt
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from sentryroute.durations import parse_duration, parse_size
from sentryroute.options import add_option

__all__ = [
    "Address",
    "Bytes",
    "ConfigError",
    "ConfigMapRef",
    "FilePath",
    "ListenAddress",
    "ObjectRef",
    "Seconds",
    "SettingsGroup",
    "Switch",
    "Text",
    "flag_name",
    "one_of",
    "option",
    "whole_number",
]


class ConfigError(ValueError):
    """A flag value that cannot be used; the message names the flag."""


class Address(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ObjectRef(NamedTuple):
    """`NAMESPACE/NAME` of a Kubernetes object (a ConfigMap)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


_ADDRESS_RE = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[A-Za-z0-9.\-]*)):(?P<port>\d{1,5})")
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def parse_address(text: str) -> Address:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces); port 0 picks a free port."""
    match = _ADDRESS_RE.fullmatch(text.strip())
    if not match or int(match["port"]) > 65535:
        raise ValueError(f"invalid address {text!r}: use HOST:PORT, e.g. 0.0.0.0:4318")
    host = match["v6"] or match["host"] or "0.0.0.0"
    return Address(host, int(match["port"]))


def parse_object_ref(text: str) -> ObjectRef:
    namespace, _, name = text.strip().partition("/")
    if not _DNS_LABEL_RE.fullmatch(namespace) or not _DNS_SUBDOMAIN_RE.fullmatch(name):
        raise ValueError(f"invalid object reference {text!r}: use NAMESPACE/NAME")
    return ObjectRef(namespace, name)


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return seconds


def _positive_size(text: str) -> int:
    size = parse_size(text)
    if size <= 0:
        raise ValueError(f"size {text!r} must be greater than zero")
    return size


def _switch(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not true or false")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """A parser of whole numbers from `low` to `high` (pair it with `Ge`/`Le` for values given in code)."""

    def convert(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()) or not low <= int(text) <= high:
            raise ValueError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return convert


def one_of(*choices: str) -> Callable[[str], str]:
    """A parser of one word out of `choices` (any case; the value is lower case)."""

    def convert(text: str) -> str:
        if text.strip().lower() not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text.strip().lower()

    return convert


@dataclass(frozen=True, slots=True)
class Text:
    """Field metadata: how flag text becomes the value (`parse`) and what `--help` calls it (`metavar`).

    Only strings are parsed; a value given in code goes straight to the field's type and constraints.
    """

    metavar: str
    parse: Callable[[str], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._from_text, handler(source))

    def _from_text(self, value: Any) -> Any:
        return self.parse(value) if isinstance(value, str) else value


# The kinds of values options take. Durations are seconds, sizes are bytes.
Seconds = Annotated[float, Text("DURATION", _positive_duration), Gt(0)]
Bytes = Annotated[int, Text("SIZE", _positive_size), Gt(0)]
FilePath = Annotated[Path, Text("PATH", Path)]
ListenAddress = Annotated[Address, Text("HOST:PORT", parse_address)]
ConfigMapRef = Annotated[ObjectRef, Text("NS/NAME", parse_object_ref)]
Switch = Annotated[bool, Text("", _switch)]  # a flag without a value: given means true


def option(default: str | bool | None, help: str) -> Any:
    """A field with its default written as flag text (None: unset) and its `--help` line."""
    return Field(default=default, description=help, validate_default=True)


def flag_name(field: str) -> str:
    """`max_hold` → `--max-hold`."""
    return "--" + field.replace("_", "-")


class SettingsGroup(BaseModel):
    """Base of the settings groups: frozen, no unknown fields; `add_arguments` and `from_args` work on any."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: Heading of the group's flags in `--help`.
    title: ClassVar[str] = "options"

    @classmethod
    def groups(cls) -> Iterator[tuple[type[SettingsGroup], list[str]]]:
        """(group, its own field names) of every group this class is made of, in declaration order."""
        for klass in cls.__mro__:
            own = [name for name in inspect.get_annotations(klass) if name in cls.model_fields]
            if own and issubclass(klass, SettingsGroup):
                yield klass, own

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Declare a flag for every field, one `--help` section per group (values stay text until `from_args`)."""
        for group, names in cls.groups():
            section = parser.add_argument_group(group.title)
            for name in names:
                _add_flag(section, name, cls.model_fields[name])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Self:
        """Parse the flag text of `args`; raise ConfigError naming the first bad flag."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = getattr(args, name, None)
            if raw is None or raw == "":
                continue
            values[name] = raw
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(_first_error(exc)) from None


def _add_flag(parser: argparse._ActionsContainer, name: str, field: FieldInfo) -> None:
    text = _text_of(field.metadata, field.annotation)
    help = field.description or ""
    if text is not None and text.parse is _switch:
        add_option(parser, flag_name(name), default=bool(field.default), help=help, action="store_true")
        return
    add_option(
        parser,
        flag_name(name),
        default=field.default,
        help=help,
        metavar=text.metavar if text is not None else "VALUE",
    )


def _text_of(metadata: Iterable[Any], annotation: Any) -> Text | None:
    """The `Text` of a field, also inside `Kind | None`."""
    for item in metadata:
        if isinstance(item, Text):
            return item
    for arg in get_args(annotation):
        found = _text_of(getattr(arg, "__metadata__", ()), arg)
        if found is not None:
            return found
    return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, Exception) else error["msg"]
    if error["loc"]:
        return f"{flag_name(str(error['loc'][0]))}: {message}"
    return message
