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


# --------------------------------------------------------------------------- names on screens and in logs

# C0 and C1 control characters, DEL, and the invisible formatting characters that reorder or hide
# text on a terminal (bidirectional overrides and isolates, line and paragraph separators, BOM).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """`text` made safe to print on a terminal, in a log line or a table cell: every control character
    (ESC, BEL, CR, LF, …) and every invisible reordering character becomes a visible escape (`\\x1b`,
    `\\x07`, `\\r`, `\\n`, `\\u202e`). Names from servers, dumps and files go through here before they
    are shown anywhere. `keep_newlines` leaves LF alone (multi-line text composed by dumpdeck)."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable() or not _UNPRINTABLE.search(s):  # isprintable: the fast path, in C
        return s
    if keep_newlines:
        return "\n".join(_UNPRINTABLE.sub(_escape_char, part) for part in s.split("\n"))
    return _UNPRINTABLE.sub(_escape_char, s)
