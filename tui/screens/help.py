"""`?` / F1: a searchable list of every key, generated from the action registry."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from ..actions import ACTIONS, key_label


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close", show=False), Binding("f1", "close", "Close", show=False)]

    def __init__(self, keymap: dict[str, str] | None = None, read_only: bool = False):
        super().__init__(classes="modal")
        self.keymap = keymap or {}
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static("Keys — type to search, Esc to close", classes="dialog-title")
            yield Input(placeholder="search keys and actions…", id="help-search")
            yield DataTable(id="help-table", cursor_type="row")
            note = "read-only mode: actions that change anything are hidden. " if self.read_only else ""
            yield Static(note + "Remap any key in the config: console.keys.<id>: KEY", classes="dialog-hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Key", "Action", "Where", "id")
        self._fill("")
        self.query_one(Input).focus()

    def rows(self, query: str) -> list[tuple[str, str, str, str]]:
        q = query.lower().strip()
        out = []
        for spec in ACTIONS:
            if self.read_only and spec.destructive:
                continue
            row = (key_label(spec, self.keymap), spec.description, spec.group, spec.id)
            if q and not any(q in c.lower() for c in row):
                continue
            out.append(row)
        return out

    def _fill(self, query: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in self.rows(query):
            table.add_row(*row, key=row[3])

    @on(Input.Changed, "#help-search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def action_close(self) -> None:
        self.dismiss(None)
