"""Parsing of human durations (`30s`, `5m`, `24h`) and sizes (`256MiB`) used by every command-line option."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>|B|KB|MB|GB|KiB|MiB|GiB|k|K|M|G|Ki|Mi|Gi)")
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
}


def parse_duration(text: str) -> float:
    """Seconds in `text`: one or more `<number><unit>` parts (`1h30m`, `250ms`, `10s`); a bare number is seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match["num"]) * _DURATION_UNITS[match["unit"]]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}: use forms like 250ms, 30s, 5m, 24h")
    return total


def parse_size(text: str) -> int:
    """Bytes in `text`, e.g. `256MiB`, `10MB`, `1048576`."""
    match = _SIZE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"invalid size {text!r}: use forms like 1048576, 10MB, 256MiB")
    return int(float(match["num"]) * _SIZE_UNITS[match["unit"]])
