"""Modal screens: confirmation (optionally typing a name), restore-test target chooser, restore."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Static
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
                yield Label(Text(f"Type {printable(self.require_text)!r} to confirm:"))
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


class RestoreModal(ModalScreen["object | None"]):
    """Restore a dump for real: the target name, replace or not, the plan; `--replace` needs the
    target's name typed. Dismisses with a backend RestoreRequest, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    # layout only (colours come from the theme): the dialog scrolls on a small terminal, the plan in its own box
    DEFAULT_CSS = """
    RestoreModal #dialog { width: 96; }
    RestoreModal #restore-plan-box { height: auto; max-height: 10; margin-bottom: 1; }
    RestoreModal #restore-plan { margin-bottom: 0; }
    RestoreModal #restore-go { width: auto; min-width: 16; }
    RestoreModal .restore-row { height: auto; }
    RestoreModal .restore-row Input { width: 1fr; }
    RestoreModal .restore-row Checkbox { width: auto; }
    """

    class PlanReady(Message):
        def __init__(self, key: tuple, lines: list[str], refusal: str | None) -> None:
            super().__init__()
            self.key = key
            self.lines = lines
            self.refusal = refusal

    def __init__(self, config, dump_path, server: str, database: str, label: str):
        super().__init__(classes="modal")
        self.config = config
        self.dump_path = dump_path
        self.server = server if server in config.servers else next(iter(config.servers))
        self.database = database
        self.label = label
        self.refusal: str | None = "planning…"
        self.plan_key: tuple | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog", classes="dialog"):
            yield Static("Restore", classes="dialog-title")
            yield Static(Text(printable(self.label, keep_newlines=True)), classes="dialog-body")
            yield Label("Into database:")
            with Horizontal(classes="restore-row"):
                yield Input(value=f"{self.database}_restored", id="restore-into")
                yield Checkbox("Replace it (safety dump first)", id="restore-replace")
            with Horizontal(classes="restore-row"):
                yield Input(placeholder="only tables: t1, t2 (empty: all)", id="restore-tables")
                yield Checkbox("Definers: mine", id="restore-definer")
            with VerticalScroll(id="restore-plan-box"):
                yield Static("planning…", id="restore-plan", classes="dialog-body")
            yield Label("", id="restore-confirm-label")
            yield Input(id="restore-confirm")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Restore", id="restore-go", variant="error", disabled=True)
                yield Button("Don't restore", id="restore-no")

    def on_mount(self) -> None:
        self.query_one("#restore-confirm", Input).display = False
        self.query_one("#restore-confirm-label", Label).display = False
        self.query_one("#restore-into", Input).focus()
        self._replan()

    def request(self):
        from dumpdeck.backend.restore_real import RestoreRequest

        tables = [t.strip() for t in self.query_one("#restore-tables", Input).value.split(",") if t.strip()]
        return RestoreRequest(
            path=self.dump_path,
            target_server=self.server,
            target_db=self.query_one("#restore-into", Input).value.strip(),
            tables=tables or None,
            replace=self.query_one("#restore-replace", Checkbox).value,
            definer="current" if self.query_one("#restore-definer", Checkbox).value else "keep",
        )

    def _replan(self) -> None:
        req = self.request()
        self.plan_key = (req.target_db, req.replace, tuple(req.tables or ()), req.definer)
        self.refusal = "planning…"
        replace = req.replace
        confirm = self.query_one("#restore-confirm", Input)
        label = self.query_one("#restore-confirm-label", Label)
        confirm.display = label.display = replace
        label.update(Text(f"Type {printable(req.target_db)!r} to replace it:"))
        self._update_button()
        self._plan_worker(req, self.plan_key)

    @work(thread=True, exclusive=True, group="restore-plan", exit_on_error=False, description="plan a restore")
    def _plan_worker(self, req, key: tuple) -> None:
        from dumpdeck.backend.errors import DumpdeckError
        from dumpdeck.backend.restore_real import make_plan

        try:
            plan = make_plan(self.config, req)
            self.post_message(self.PlanReady(key, plan.lines(decision_first=True), plan.refusal))
        except DumpdeckError as exc:
            self.post_message(self.PlanReady(key, [str(exc)], str(exc)))

    @on(PlanReady)
    def _plan_ready(self, message: PlanReady) -> None:
        if message.key != self.plan_key:
            return
        self.refusal = message.refusal
        self.query_one("#restore-plan", Static).update(Text(printable("\n".join(message.lines), keep_newlines=True)))
        self._update_button()

    def _update_button(self) -> None:
        req = self.request()
        typed = self.query_one("#restore-confirm", Input).value
        ok = self.refusal is None and bool(req.target_db) and (not req.replace or typed == req.target_db)
        go = self.query_one("#restore-go", Button)
        go.disabled = not ok
        # the button names what it does (and to which database)
        name = printable(req.target_db)[:24] or "…"
        go.label = Text(f"Replace {name}" if req.replace else f"Restore into {name}")

    @on(Input.Changed, "#restore-into")
    @on(Input.Changed, "#restore-tables")
    @on(Checkbox.Changed, "#restore-replace")
    @on(Checkbox.Changed, "#restore-definer")
    def _changed(self) -> None:
        self._replan()

    @on(Input.Changed, "#restore-confirm")
    def _typed(self) -> None:
        self._update_button()

    @on(Button.Pressed, "#restore-go")
    def _go(self) -> None:
        if not self.query_one("#restore-go", Button).disabled:
            self.dismiss(self.request())

    @on(Input.Submitted, "#restore-confirm")
    def _submitted(self) -> None:
        self._go()

    @on(Button.Pressed, "#restore-no")
    def _no(self) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
