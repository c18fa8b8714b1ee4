"""Modal screens: confirmation (optionally typing a name), restore-test target chooser."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from dumpdeck.backend.naming import printable


class ConfirmModal(ModalScreen[bool]):
    """Yes/no for a destructive action. With `require_text`, the user must type it first.

    Both buttons name what they do ("Cancel run #6" / "Keep running"): a bare "Cancel" beside
    "Cancel run" leaves the operator guessing which one stops the run. `y` confirms, `n` and
    Esc keep things as they are."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("n", "cancel", "No", show=False),
    ]

    def __init__(
        self,
        title: str,
        message: str,
        *,
        confirm_label: str = "Yes",
        cancel_label: str = "No",
        require_text: str | None = None,
        danger: bool = True,
    ):
        super().__init__(classes="modal")
        self.title_text = title
        self.message = message
        self.confirm_label = confirm_label
        self.cancel_label = cancel_label
        self.require_text = require_text
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(Text(printable(self.message, keep_newlines=True)), classes="dialog-body")
            if self.require_text is not None:
                yield Label(f"Type {self.require_text!r} to confirm:")
                yield Input(placeholder=self.require_text, id="confirm-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    self.confirm_label,
                    id="yes",
                    variant="error" if self.danger else "primary",
                    disabled=self.require_text is not None,
                )
                yield Button(self.cancel_label, id="no")
            hint = "Enter the focused button · y " + self.confirm_label + " · n/Esc " + self.cancel_label
            yield Static(hint if self.require_text is None else "Esc " + self.cancel_label, classes="dialog-hint")

    def on_mount(self) -> None:
        if self.require_text is not None:
            self.query_one("#confirm-text", Input).focus()
        else:
            self.query_one("#no", Button).focus()

    def on_key(self, event) -> None:
        if event.key == "y" and self.require_text is None:
            event.stop()
            self.dismiss(True)

    @on(Input.Changed, "#confirm-text")
    def _typed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = event.value != self.require_text

    @on(Input.Submitted, "#confirm-text")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value == self.require_text:
            self.dismiss(True)

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class TargetChooser(ModalScreen["str | None"]):
    """Where a restore-test loads the dump: same server, another server, or a sandbox."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, dump_label: str, targets: list[tuple[str, str]], default: str | None = None):
        super().__init__(classes="modal")
        self.dump_label = dump_label
        self.targets = targets
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            yield Static("Restore-test", classes="dialog-title")
            yield Static(
                Text(f"{printable(self.dump_label)}\nLoad it into a scratch database on:"), classes="dialog-body"
            )
            yield OptionList(*[Option(label, id=value) for value, label in self.targets], id="targets")
            yield Static("Enter choose · Esc cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.focus()
        for i, (value, _) in enumerate(self.targets):
            if value == self.default:
                ol.highlighted = i
                break
        else:
            ol.highlighted = 0

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
