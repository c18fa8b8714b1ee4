"""Durations (`90s`, `2h`, `1h30m`) and sizes (`5GiB`, `100MB`) parsed and formatted."""

from __future__ import annotations

import re

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from `90`, `90s`, `5m`, `2h`, `1h30m`, `7d`. Raises ValueError with a hint."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 5m or 2h")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 5m or 2h")
    text = value.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; use e.g. 90s, 5m, 2h, 1h30m or 7d")
    return total


def parse_size(value: object) -> int:
    """Bytes from `512`, `100MB`, `5GiB`, `1.5G`. Raises ValueError with a hint."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 100MiB or 5GiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError("expected a size such as 100MiB or 5GiB")
    match = _SIZE_RE.match(value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size; use e.g. 512MiB, 5GiB or 100MB")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def format_bytes(n: float | int | None) -> str:
    """Binary units, one decimal: 1.5 GiB. Fixed width friendly."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_duration(seconds: float | None) -> str:
    """Compact: 45s, 3m05s, 2h10m, 3d4h."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 0:
        return "-" + format_duration(-s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"
