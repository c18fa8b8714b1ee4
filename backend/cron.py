"""Cron expressions as cron itself reads them: the standard 5-field grammar, plus @daily-style names.

What `dumpdeck schedule install` writes into a crontab must be accepted by the cron that reads it
(Debian's vixie cron, cronie). croniter — which dumpdeck uses to compute next run times — accepts
more: `L` (last day), `W` (weekday), `5#3` (third Friday), `?`, `H`, seconds and year fields. Those are
refused here with the reason, before they reach a crontab where cron would reject the whole file.

Grammar (per field): a list of items separated by commas; an item is `*`, `N`, or `N-M`, where `*`
and `N-M` may carry a step `/S`; month and day-of-week also take three-letter names (jan, mon).
"""

from __future__ import annotations

import re

SHORTCUTS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

Field = tuple[str, int, int, dict[str, int]]  # name, lowest, highest, names

FIELDS: tuple[Field, ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(MONTHS)}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(DAYS)}),
)

_EXTENSIONS = (
    ("#", "'N#M' (the Mth weekday N of the month) is a croniter/Quartz extension"),
    ("?", "'?' is a croniter/Quartz extension (write '*')"),
    ("L", "'L' (last day) is a croniter/Quartz extension"),
    ("W", "'W' (nearest weekday) is a croniter/Quartz extension"),
    ("H", "'H' (hashed value) is a Jenkins/croniter extension"),
)
_ITEM = re.compile(r"^(?P<base>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


class CronSyntaxError(ValueError):
    """Not a cron expression cron accepts; the message says why."""


def _value(token: str, field: Field) -> int:
    name, lo, hi, names = field
    if token in names:
        return int(names[token])
    if not token.isdigit():
        raise CronSyntaxError(f"{name}: {token!r} is not a number" + (" or a name" if names else ""))
    v = int(token)
    if not lo <= v <= hi:
        raise CronSyntaxError(f"{name}: {v} is out of range ({lo}-{hi})")
    return v


def _check_field(text: str, field: Field) -> None:
    name = field[0]
    for item in text.lower().split(","):
        m = _ITEM.match(item)
        if not m:
            raise CronSyntaxError(f"{name}: {item!r} is not a cron field item (*, N, N-M, */S or N-M/S)")
        base, step = m.group("base"), m.group("step")
        if step is not None:
            if int(step) == 0:
                raise CronSyntaxError(f"{name}: a step of 0 never matches")
            if base != "*" and "-" not in base:
                raise CronSyntaxError(
                    f"{name}: {item!r} (N/S) is not standard cron; write {base}-{field[2]}/{step} or */{step}"
                )
        if base == "*":
            continue
        if "-" in base:
            a, b = (_value(x, field) for x in base.split("-", 1))
            if a > b:
                raise CronSyntaxError(f"{name}: range {item!r} runs backwards")
        else:
            _value(base, field)


def check(expr: str) -> None:
    """Raise CronSyntaxError unless cron (vixie/cronie) accepts `expr` as a 5-field schedule."""
    e = expr.strip()
    if e.startswith("@"):
        if e.lower() in SHORTCUTS:
            return
        raise CronSyntaxError(f"{e!r} is not a cron shortcut (known: {' '.join(SHORTCUTS)})")
    fields = e.split()
    if len(fields) != 5:
        raise CronSyntaxError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
            + ("; seconds and year fields are croniter extensions" if len(fields) in (6, 7) else "")
        )
    for text in fields:
        for mark, why in _EXTENSIONS:
            token = mark.lower() if mark.isalpha() else mark
            # letters: only as a bare token or after digits (15W, 6L, L), never inside a month/day name
            if mark.isalpha():
                if re.search(rf"(^|[0-9,]){token}($|[,/0-9-])", text.lower()):
                    raise CronSyntaxError(f"{why}; cron does not understand it")
            elif mark in text:
                raise CronSyntaxError(f"{why}; cron does not understand it")
    for text, field in zip(fields, FIELDS, strict=True):
        _check_field(text, field)


def cron_problem(expr: str) -> str | None:
    """None when cron accepts `expr`, else a readable reason naming the expression."""
    try:
        check(expr)
    except CronSyntaxError as exc:
        return f"{expr!r} is not a standard cron expression: {exc}"
    return None
