"""Terminal output helpers shared by the CLI commands: tables, JSON, colours, progress lines."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dumpdeck.backend.naming import printable
from dumpdeck.backend.outcome import Outcome


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def use_color(stream=None) -> bool:
    # NO_COLOR (no-color.org): set and not empty disables colour; an empty value is ignored
    return is_tty(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


class Styled(str):
    """Text that went through `style`: its control characters were escaped, its colour codes are ours."""


def style(
    text: str, *, ok: bool | None = None, warn: bool = False, bold: bool = False, dim: bool = False, stream=None
) -> str:
    """`text` (control characters escaped: it may hold names from a server) in a colour, on a terminal."""
    text = printable(text, keep_newlines=True)
    if not use_color(stream):
        return Styled(text)
    codes = []
    if ok is True:
        codes.append("32")
    elif ok is False:
        codes.append("31")
    elif warn:
        codes.append("33")
    if bold:
        codes.append("1")
    if dim:
        codes.append("2")
    return Styled(f"\033[{';'.join(codes)}m{text}\033[0m" if codes else text)


def outcome_style(text: str, outcome: Outcome, *, bold: bool = False, stream=None) -> str:
    """`text` in the colour of a verdict: green passed, red failed, yellow not checked."""
    ok = {Outcome.PASSED: True, Outcome.FAILED: False}.get(outcome)
    return style(text, ok=ok, warn=outcome is Outcome.NOT_CHECKED, bold=bold, stream=stream)


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    json.dump(to_jsonable(value), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def display_width(text: str) -> int:
    """Columns `text` takes on a terminal: colour codes take none, wide characters two (Rich measures)."""
    if "\x1b" not in text and text.isascii():
        return len(text)
    from rich.text import Text

    return Text.from_ansi(text).cell_len


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    """Fixed-width table; `align` is a string of l/r per column. Cells are printed with their
    control characters escaped (a name with a newline stays in its row), except what `style` made;
    widths are display widths, so coloured and wide cells line up with plain ones."""
    rows = [["" if c is None else (c if isinstance(c, Styled) else printable(c)) for c in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))
    align = align or "l" * len(headers)

    def fmt(row: Sequence[str]) -> str:
        cells = []
        for i, c in enumerate(row):
            pad = " " * (widths[i] - display_width(c))
            cells.append(pad + c if align[i] == "r" else c + pad)
        return "  ".join(cells).rstrip()

    lines = [fmt(headers)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def age(when: datetime | None, now: datetime | None = None) -> str:
    from dumpdeck.backend.units import format_duration

    if when is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = (now - when).total_seconds()
    return "just now" if seconds < 1 else format_duration(seconds) + " ago"


class ProgressLine:
    """One self-overwriting status line on a terminal (stderr); silent elsewhere."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = is_tty(self.stream)
        self._last = 0

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        text = printable(text)
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 80  # 0: a pty nobody sized
        except OSError:
            width = 80
        text = text[: max(10, width - 1)]
        self.stream.write("\r" + text + " " * max(0, self._last - display_width(text)))
        self.stream.flush()
        self._last = display_width(text)

    def clear(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\r" + " " * self._last + "\r")
            self.stream.flush()
            self._last = 0
