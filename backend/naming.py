"""Safe, reversible file names for database names, and dump file names.

A database may be called `my db`, `a``b`, `ça-va` or `../etc`. Letters and
digits of any script, `_`, `-` and `.` stay; everything else becomes `@xxxx`
(the code point in hex, as MySQL itself names such directories), so the name
is safe on disk and can be read back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_SAFE = re.compile(r"[\w.-]", re.UNICODE)


def safe_name(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if _SAFE.fullmatch(ch) and ch != "@" and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.append(f"@{ord(ch):04x}")
    return "".join(out) or "@"


def unsafe_name(safe: str) -> str:
    return re.sub(r"@([0-9a-f]{4,6})", lambda m: chr(int(m.group(1), 16)), safe)


def stamp(when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return when.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def dump_basename(database: str, when: datetime, ext: str) -> str:
    """`<database>-<UTC stamp>.sql<ext>`, e.g. shop-20261124T020000Z.sql.zst"""
    return f"{safe_name(database)}-{stamp(when)}.sql{ext}"
