"""KeyedTable: a DataTable fed by stable row keys and diffed, never rebuilt.

`sync(rows)` takes (key, cells) pairs in the wanted order. It removes rows whose
key went away, updates only the cells that changed, adds new rows, and applies
the current sort, all inside one `app.batch_update()`. When most rows changed it
clears and re-adds instead (cheaper than thousands of single updates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from dumpdeck.backend.naming import printable

from ..actions import TABLE_KEYS

# one table row: its stable key, its cells, and the object it shows (for actions on the cursor row)
Row = tuple[str, tuple[Any, ...], Any]

TONE_VARIABLE = {
    "ok": "success",
    "warn": "warning",
    "bad": "error",
    "busy": "primary",
    "muted": "foreground-muted",
    "accent": "accent",
}


def tone_style(app, tone: str) -> str:
    """A Rich style for a tone, taken from the current theme's variables (no colours here)."""
    variables = app.theme_variables if hasattr(app, "theme_variables") else app.get_css_variables()
    colour = variables.get(TONE_VARIABLE.get(tone, "foreground"))
    if not colour:
        return ""
    return colour if tone not in ("bad",) else f"bold {colour}"


def toned(app, text: str, tone: str) -> Text:
    return Text(text, style=tone_style(app, tone))


def bar(app, fraction: float | None, width: int = 10, tone: str = "busy") -> Text:
    """A text progress bar, coloured by tone, in eighths of a cell (it moves smoothly); an unknown
    fraction shows as dots. Past 1.0 (more bytes than estimated) it is full, in the warning tone."""
    if fraction is None:
        return Text("·" * width, style=tone_style(app, "muted"))
    if fraction > 1.0:
        return Text("█" * width, style=tone_style(app, "warn"))
    eighths = int(max(0.0, fraction) * width * 8)
    full, part = divmod(eighths, 8)
    t = Text("█" * full, style=tone_style(app, tone))
    if full < width:
        t.append(_EIGHTHS[part] if part else "░", style=tone_style(app, tone if part else "muted"))
        t.append("░" * (width - full - 1), style=tone_style(app, "muted"))
    return t


_EIGHTHS = " ▏▎▍▌▋▊▉"


class KeyedTable(DataTable):
    """DataTable with keyed diffing and column sort (click a header, or `sort` cycles).

    `pinned` rows (running work) stay first, in the order given, whatever the sort. With
    `follow_top`, a cursor on the first row stays on the first row when rows are added above
    it, and the view stays scrolled to the top: new work appears in sight."""

    DEFAULT_CSS = ""
    BINDINGS = list(TABLE_KEYS)

    def __init__(self, columns: Sequence[tuple[str, str]], *, follow_top: bool = False, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = list(columns)  # (key, label)
        self._rows: dict[str, tuple] = {}  # key -> cells as last rendered
        self._raw: dict[str, Any] = {}  # key -> the object the row was made from (for sorting)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.pinned: tuple[str, ...] = ()
        self.follow_top = follow_top

    async def _on_idle(self, event) -> None:
        # DataTable measures new rows on idle but keeps lines it rendered before measuring
        # (textual 8.2.8): columns stay as wide as their labels until some later update.
        # Invalidate the rendered lines whenever widths were recomputed.
        pending = bool(self._updated_cells) or self._require_update_dimensions
        await super()._on_idle(event)
        if pending:
            self._update_count += 1
            self._line_cache.clear()
            self.refresh()

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    @property
    def row_keys(self) -> list[str]:
        return [str(r.key.value) for r in self.ordered_rows]

    def raw(self, key: str) -> Any:
        return self._raw.get(key)

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def sync(self, rows: Sequence[Row], pinned: Sequence[str] = ()) -> None:
        """rows: (key, cells, raw object). Order is kept for new tables; sort applies after,
        except to the `pinned` keys, which stay first. Cells are shown with their control
        characters escaped (names from servers, evidence)."""
        rows = [(k, safe_cells(cells), raw) for k, cells, raw in rows]
        new_keys = {k for k, _, _ in rows}
        old_keys = set(self._rows)
        cursor = self.cursor_key
        at_top = self.follow_top and (not self.row_count or self.cursor_row == 0)
        self.pinned = tuple(k for k in pinned if k in new_keys)
        with self.app.batch_update():
            stale = old_keys - new_keys
            changed = sum(1 for k, cells, _ in rows if self._rows.get(k) != cells)
            rebuild = (len(stale) + changed > 200 and (len(stale) + changed) > len(rows) // 2) or (
                not old_keys and rows
            )
            if rebuild:
                self.clear()
                self._rows.clear()
                self._raw.clear()
                self.add_rows_keyed(rows)
            else:
                for key in stale:
                    self.remove_row(key)
                    self._rows.pop(key, None)
                    self._raw.pop(key, None)
                col_keys = [c for c, _ in self._columns]
                for key, cells, raw in rows:
                    self._raw[key] = raw
                    old = self._rows.get(key)
                    if old is None:
                        self.add_row(*cells, key=key)
                    elif old is not cells and old != cells:
                        for i, (a, b) in enumerate(zip(old, cells, strict=False)):
                            if a != b:
                                self._update_cell(key, col_keys[i], b)
                    self._rows[key] = cells
            if self.sort_column is not None:
                self._apply_sort()
            elif not rebuild and self.row_keys != [k for k, _, _ in rows]:
                # new rows were appended out of place: restore the wanted order
                self.clear()
                self._rows.clear()
                self._raw.clear()
                self.add_rows_keyed(rows)
            if at_top:
                if self.cursor_row != 0:
                    self.move_cursor(row=0, animate=False, scroll=False)
                self.scroll_to(y=0, animate=False, immediate=True)
            elif cursor is not None and cursor in self._rows:
                try:
                    idx = self.get_row_index(cursor)
                    if idx != self.cursor_row:
                        self.move_cursor(row=idx, animate=False, scroll=False)
                except Exception:
                    pass

    def _update_cell(self, key: str, column: str, value: Any) -> None:
        """update_cell, asking DataTable to re-measure only when the cell outgrows its column.

        A narrower value keeps the column's width: re-measuring it makes DataTable measure
        every cell of the column (500 rows for a one-cell change, each jobs poll)."""
        width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
        col = self.columns.get(ColumnKey(column))
        self.update_cell(key, column, value, update_width=col is None or width > col.content_width)

    def add_rows_keyed(self, rows: Sequence[tuple[str, tuple, Any]]) -> None:
        for key, cells, raw in rows:
            self.add_row(*cells, key=key)
            self._rows[key] = cells
            self._raw[key] = raw

    def _apply_sort(self) -> None:
        """DataTable.sort, keeping the pinned rows first (in their given order)."""
        if self.sort_column is None:
            return
        column = ColumnKey(self.sort_column)
        rank = {k: i for i, k in enumerate(self.pinned)}
        items = list(self._data.items())
        pinned = sorted((kv for kv in items if kv[0].value in rank), key=lambda kv: rank[str(kv[0].value)])
        rest = sorted(
            (kv for kv in items if kv[0].value not in rank),
            key=lambda kv: _sortable(kv[1].get(column)),
            reverse=self.sort_reverse,
        )
        self._row_locations = TwoWayDict({row_key: i for i, (row_key, _) in enumerate(pinned + rest)})
        self._update_count += 1
        self.refresh()

    def sort_by(self, column: str) -> None:
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._apply_sort()
        self._update_sort_labels()

    def cycle_sort(self) -> None:
        keys = [c for c, _ in self._columns]
        if self.sort_column is None:
            nxt = keys[0]
        elif not self.sort_reverse:
            self.sort_by(self.sort_column)
            return
        else:
            i = keys.index(self.sort_column)
            nxt = keys[(i + 1) % len(keys)]
        self.sort_column, self.sort_reverse = nxt, False
        self._apply_sort()
        self._update_sort_labels()

    def _update_sort_labels(self) -> None:
        for key, label in self._columns:
            col = self.columns.get(ColumnKey(key))
            if col is None:
                continue
            mark = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_column else ""
            col.label = Text(label + mark)
        self._require_update_dimensions = True
        self.refresh()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))


def safe_cells(cells: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row's cells made safe: the very same tuple when nothing needed escaping (sync skips an
    unchanged row by identity)."""
    safe = tuple(safe_cell(c) for c in cells)
    return cells if all(a is b for a, b in zip(safe, cells, strict=True)) else safe


def safe_cell(value: Any) -> Any:
    """A cell as it may reach the terminal: strings and Texts with control characters (ESC, BEL,
    newline, …) escaped by the backend's `printable`, and a string that could read as Rich markup
    (`[red]x`, a name a server or a destination holds) made plain Text, shown as written; other values
    unchanged."""
    if isinstance(value, str):
        safe = printable(value)
        return Text(safe) if "[" in safe else safe
    if isinstance(value, Text) and not value.plain.isprintable():
        safe = printable(value.plain)
        if safe != value.plain:
            if isinstance(value, Cell):
                return Cell(safe, value.value, style=str(value.style), justify=value.justify)
            return Text(safe, style=value.style, justify=value.justify)
    return value


class OpenableTable(KeyedTable):
    """A KeyedTable whose rows open a detail with Enter, which the footer shows while it has the focus."""

    BINDINGS = [Binding("enter", "select_cursor", "Detail", key_display="Enter")]


class Cell(Text):
    """A Text cell that sorts by `value` (bytes, seconds, a level) rather than by its text."""

    def __init__(self, text: str, value: Any = None, style: str = "", justify=None):
        super().__init__(text, style=style, justify=justify)
        self.value = value

    @classmethod
    def of(cls, text: Text, value: Any = None) -> Cell:
        cell = cls("", value)
        cell.append_text(text)
        return cell

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Cell)
            and self.plain == other.plain
            and self.value == other.value
            and self.style == other.style
        )

    __hash__ = None  # type: ignore[assignment]


def _sortable(v: Any) -> tuple:
    if isinstance(v, Cell):
        v = v.value if v.value is not None else v.plain
    elif isinstance(v, Text):
        v = v.plain
    if v is None:
        return (2, 0, "")
    if isinstance(v, (int, float)):
        return (0, v, "")
    return (1, 0, str(v).lower())
